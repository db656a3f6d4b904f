"""The text of generated pages, on stub runs (no training): what issue 35 found wrong on results/cpu/ is
checked here at its generator."""

import types

import matplotlib

matplotlib.use("Agg")
import matplotlib.figure
import numpy as np
import pytest
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf import methods
from hiabp_tf.data import masks
from hiabp_tf.experiments import figures
from hiabp_tf.experiments import report
from hiabp_tf.serving import api

FACES = "images:/work/shared/data/celeba,image_size=32,image_crop=0.786517,test_images=1000"


@pytest.fixture
def stub_runs(monkeypatch):
    """Workdirs that are names only: each has a learning curve (its seed offsets the MSE), a config with
    `dataset`, and one-line details; the figure is kept instead of saved. Returns (set_dataset, figures)."""
    dataset, drawn = [FACES], []

    def curve(workdir):
        offset = 0.001 * (workdir.count("seed") + len(workdir) % 3)
        return [dict(step=s, mse_E=0.05 / s + offset, mse_EL=0.04 / s + offset, mse_L=0.045 / s + offset,
                     num_examples=1000, dataset=dataset[0]) for s in (250, 500, 750, 1000)]

    monkeypatch.setattr(report.workdir_lib, "read_learning_curve", curve)
    monkeypatch.setattr(report.workdir_lib, "load_config",
                        lambda workdir: (types.SimpleNamespace(dataset=dataset[0]), None))
    monkeypatch.setattr(report, "_run_details", lambda label, workdir, mask="none": f"- **{label}**: `{workdir}`.")
    monkeypatch.setattr(report.metrics, "mean_image_mse", lambda d: 0.05)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, path, **kw: drawn.append(fig))
    return dataset, drawn


def _seeds(name, n):
    return [name] + [f"{name}_seed{k}" for k in range(1, n)]


def test_a_faces_page_says_each_methods_seeds_and_names_its_data(stub_runs, tmp_path):
    """learning_curves_celeba said 'mean over 3 training seeds' for methods of one seed, and printed the
    raw dataset spec (a path and settings) in its prose and the figure's title."""
    _, drawn = stub_runs
    runs = {("CelebA", "vae"): _seeds("celeba_vae", 3), ("CelebA", "iabp"): _seeds("celeba_hiabp_l1", 1),
            ("CelebA", "hiabp_l4"): _seeds("celeba_hiabp_l4", 3)}
    text = open(report.write_learning_curves(str(tmp_path), runs, "pytest", name="learning_curves_celeba")).read()
    prose = text.split("\n")[4]
    assert prose.startswith("The evaluations during training (test MSE on the first 1,000 test images of CelebA "
                            "faces (32 x 32), test-time T = the training T), every 250 updates, each method's curve "
                            "the mean over its training seeds: 3, but 1 for IABP [E] (L=1), IABP [E+L] (L=1) (the "
                            "figure's band: lowest to highest seed; none for one seed).")
    assert "mean over 3 training seeds" not in text and "images:" not in prose
    (fig,) = drawn
    title = fig.axes[0].get_title()
    assert title.startswith("test MSE on the first 1,000 test images of CelebA faces (32 x 32)")
    assert "images:" not in title and "/work" not in title and "mean of 3 seeds (other numbers in the legend)" in title
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[:4] == ["VAE", "IABP [E] (L=1) (1 seed)", "IABP [E+L] (L=1) (1 seed)", "HiABP [E+L] (L=4)"]
    assert "paper CelebA (3e5 updates), in the method's colour" in legend


def test_a_page_of_equal_seeds_says_it_once(stub_runs, tmp_path):
    dataset, drawn = stub_runs
    dataset[0] = "mnist"
    runs = {("MNIST", "vae"): _seeds("mnist_vae", 3), ("MNIST", "hiabp_l4"): _seeds("mnist_hiabp_l4", 3)}
    text = open(report.write_learning_curves(str(tmp_path), runs, "pytest")).read()
    assert ("images of MNIST (28 x 28), test-time T = the training T), every 250 updates, mean over 3 training "
            "seeds (the figure's band: lowest to highest seed).") in text
    (fig,) = drawn
    assert "mean of 3 seeds, band: lowest to highest" in fig.axes[0].get_title()
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][:2] == ["VAE", "HiABP [E+L] (L=4)"]
    one = {("MNIST", "vae"): ["mnist_vae"]}
    assert "seeds" not in open(report.write_learning_curves(str(tmp_path), one, "pytest")).read().split("\n")[4]


def test_a_run_trained_longer_is_listed_once(stub_runs, tmp_path):
    """learning_curves.md listed IABP's long run twice: its one run makes two curves ([E] and [E+L])."""
    stub_runs[0][0] = "mnist"
    runs = {("MNIST", "vae"): _seeds("mnist_vae", 3), ("MNIST", "iabp"): _seeds("mnist_hiabp_l1", 3)}
    long = {("MNIST", "vae"): "mnist_vae_long", ("MNIST", "iabp"): "mnist_hiabp_l1_long"}
    text = open(report.write_learning_curves(str(tmp_path), runs, "pytest", long_runs=long)).read()
    details = [line for line in text.splitlines() if line.startswith("- **")]
    assert details == ["- **MNIST: vae, trained longer**: `mnist_vae_long`.",
                       "- **MNIST: iabp, trained longer**: `mnist_hiabp_l1_long`.",
                       "- **MNIST: vae**: `mnist_vae`.", "- **MNIST: vae (seed run 2)**: `mnist_vae_seed1`.",
                       "- **MNIST: vae (seed run 3)**: `mnist_vae_seed2`.", "- **MNIST: iabp**: `mnist_hiabp_l1`.",
                       "- **MNIST: iabp (seed run 2)**: `mnist_hiabp_l1_seed1`.",
                       "- **MNIST: iabp (seed run 3)**: `mnist_hiabp_l1_seed2`."]
    # Both panels keep each method's colour from the fixed mapping.
    fig = stub_runs[1][0]
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_label().startswith("IABP"):
                assert line.get_color() == figures.ROW_COLOURS["iabp"]


@pytest.mark.parametrize("dataset,name", [
    (FACES, "CelebA faces (32 x 32)"),
    ("images:/data/celeba", "CelebA faces (64 x 64)"),
    ("images:/home/me/cats,image_size=48", "the images of cats/ (48 x 48)"),
    ("mnist", "MNIST (28 x 28)"),
    ("celeb_a", "CelebA faces (64 x 64)"),
    ("npz:/data/my_digits.npz", "my_digits.npz"),
])
def test_dataset_names_for_titles(dataset, name):
    assert report.dataset_name(dataset) == name


@pytest.mark.parametrize("method", ["hiabp", "vae"])
def test_the_table2_figures_recovered_row_keeps_the_observed_pixels(method):
    """table2_*.png's last row showed the whole reconstruction; it is what inpaint returns: the input's
    observed pixels exactly, the model's pixels where occluded (an untrained model: the two differ)."""
    config = config_lib.RunConfig(dataset="mnist_5k", method=method, num_layers=2 if method == "hiabp" else 1,
                                  latent_dims=(4, 4) if method == "hiabp" else (8,), width=4, batch_size=50,
                                  langevin_steps=2)
    model = api.TrainedModel(methods.build_model(config, (28, 28, 1), 4000), config, (28, 28, 1), step=0)
    originals = np.random.default_rng(0).uniform(size=(3, 28, 28, 1)).astype(np.float32)
    mask = masks.make_masks(masks.parse_mask("region20"), originals.shape, tf.constant([1, 0])).numpy()
    rows = report.inpainting_rows(model, originals, mask, seed=0)
    assert rows.shape == (9, 28, 28, 1)
    np.testing.assert_array_equal(rows[:3], originals)
    np.testing.assert_array_equal(rows[3:6], np.where(mask == 1, originals, 0.5))
    recovered = rows[6:]
    observed = np.broadcast_to(mask == 1, recovered.shape)
    np.testing.assert_array_equal(recovered[observed], originals[observed])
    headline = model.network.reconstructions[-1]
    details = model.inpaint(originals, mask, langevin_steps=0 if headline == "E" else None, seed=(0, 2),
                            return_details=True)
    np.testing.assert_array_equal(recovered[~observed], details["reconstruction"][~observed])
    assert np.abs(details["reconstruction"][observed] - originals[observed]).max() > 0.1  # the old row's pixels

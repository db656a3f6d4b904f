"""The paper's figures (hiabp_tf/figures.py) and the Figure 7 command (hiabp_tf/disentangle.py)."""

import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.image
import numpy as np
import pytest

from hiabp_tf import config as config_lib
from hiabp_tf import methods
from hiabp_tf import train
from hiabp_tf.checks import errors
from hiabp_tf.core import algorithm
from hiabp_tf.core import models
from hiabp_tf.experiments import disentangle
from hiabp_tf.experiments import figures
from hiabp_tf.methods import variational

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIMS = (3, 4, 5)


def _assert_only_layer_varies(z, layer, num_rows, num_cols):
    """z = [z^1..z^L] of one panel: `layer` differs along every row, the others are constant
    along rows and differ between rows."""
    for k, z_k in enumerate(z, start=1):
        grid = np.asarray(z_k).reshape(num_rows, num_cols, -1)
        if k == layer:
            for row in grid:
                assert len({tuple(v) for v in row}) == num_cols, f"layer {k} repeats within a row"
        else:
            assert np.array_equal(grid, np.repeat(grid[:, :1], num_cols, axis=1)), f"layer {k} varies in a row"
            assert len({tuple(v) for v in grid[:, 0]}) == num_rows, f"layer {k} is the same in two rows"


def _assert_png(path):
    assert os.path.isfile(path), path
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 10 and image.shape[1] > 10
    return image


@pytest.fixture(scope="module")
def hiabp_l3():
    return methods.HiABP(models.Architecture((28, 28, 1), (2, 2, 2), width=4),
                           algorithm.Hyperparameters(langevin_steps=2))


def test_layer_resampled_latents_shapes_and_structure():
    for layer in (1, 2, 3):
        z = figures.layer_resampled_latents(DIMS, layer, 3, 4, seed=7)
        assert [z_l.shape for z_l in z] == [(12, d) for d in DIMS]
        assert all(z_l.dtype == np.float32 for z_l in z)
        _assert_only_layer_varies(z, layer, 3, 4)


def test_layer_resampled_latents_deterministic_in_seed():
    a = figures.layer_resampled_latents(DIMS, 2, 3, 4, seed=1)
    b = figures.layer_resampled_latents(DIMS, 2, 3, 4, seed=1)
    c = figures.layer_resampled_latents(DIMS, 2, 3, 4, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not any(np.array_equal(x, y) for x, y in zip(a, c))
    # The fixed draw of a layer is the same in every panel (row r starts from one base code).
    other = figures.layer_resampled_latents(DIMS, 3, 3, 4, seed=1)
    assert np.array_equal(a[0], other[0])


def test_layer_resampled_latents_single_layer_and_bad_input():
    (z,) = figures.layer_resampled_latents((6,), 1, 2, 5, seed=0)
    assert z.shape == (10, 6)
    _assert_only_layer_varies([z], 1, 2, 5)
    with pytest.raises(ValueError, match="layer"):
        figures.layer_resampled_latents(DIMS, 0, 2, 2, 0)
    with pytest.raises(ValueError, match="layer"):
        figures.layer_resampled_latents(DIMS, 4, 2, 2, 0)
    with pytest.raises(ValueError, match="num_rows"):
        figures.layer_resampled_latents(DIMS, 1, 0, 2, 0)


def test_panels_change_only_the_chosen_layer(hiabp_l3, monkeypatch):
    """The generator of an L = 3 HiABP receives, for panel l, latents where only z^l varies in a row."""
    received = []
    real = hiabp_l3.generator

    def recording_generator(latents, *args, **kwargs):
        received.append([np.asarray(z) for z in latents])
        return real(latents, *args, **kwargs)

    monkeypatch.setattr(hiabp_l3, "generator", recording_generator)
    panels = figures.disentanglement_panels(hiabp_l3, num_rows=3, num_cols=4, seed=0)
    assert len(panels) == len(received) == 3
    for layer, (latents, panel) in enumerate(zip(received, panels), start=1):
        assert [z.shape for z in latents] == [(12, 2)] * 3
        _assert_only_layer_varies(latents, layer, 3, 4)
        assert panel.shape == (3 * 29 + 1, 4 * 29 + 1, 1)


@pytest.mark.slow
def test_save_disentanglement_samples_and_curve(hiabp_l3, tmp_path):
    paths = figures.save_disentanglement(hiabp_l3, str(tmp_path / "fig7"), num_rows=2, num_cols=3, step=5)
    assert paths == [str(tmp_path / f"fig7_layer{l}.png") for l in (1, 2, 3)] + [str(tmp_path / "fig7.png")]
    single = _assert_png(paths[0])
    combined = _assert_png(paths[-1])
    assert combined.shape[1] > 2 * single.shape[1]  # three panels side by side

    path = figures.save_samples(hiabp_l3, str(tmp_path / "samples.png"), num=6, columns=3)
    assert path == str(tmp_path / "samples.png")
    _assert_png(path)

    rows = [{"init": init, "langevin_steps": t, "mse": mse}
            for init, scale in (("encoder (IABP)", 0.02), ("noise (ABP)", 0.08))
            for t, mse in ((0, 5 * scale), (1, 3 * scale), (5, 2 * scale), (15, scale))]
    path = figures.save_langevin_curve(rows, str(tmp_path / "sub" / "fig1.png"), "MSE against T")
    _assert_png(path)
    with pytest.raises(ValueError, match="mse"):
        figures.save_langevin_curve([{"init": "x", "langevin_steps": 1}], str(tmp_path / "bad.png"), "t")


@pytest.mark.slow
def test_save_reconstruction_comparison_and_one_layer_panels(hiabp_l3, tmp_path):
    hparams = algorithm.Hyperparameters(langevin_steps=2)
    vae = variational.VAE(models.Architecture((28, 28, 1), (6,), width=4), hparams)
    originals = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype(np.float32)
    path = figures.save_reconstruction_comparison([("VAE", vae), ("HiABP", hiabp_l3)], originals,
                                                  str(tmp_path / "fig4.png"))
    image = _assert_png(path)
    assert image.shape[0] > image.shape[1] * 0.5  # three rows of four images, plus the title
    # L = 1: one panel, and the combined figure.
    paths = figures.save_disentanglement(vae, str(tmp_path / "vae"), num_rows=2, num_cols=2)
    assert paths == [str(tmp_path / "vae_layer1.png"), str(tmp_path / "vae.png")]
    _assert_png(paths[1])
    assert figures.headline_reconstruction(vae) == "E" and figures.headline_reconstruction(hiabp_l3) == "E+L"
    with pytest.raises(ValueError, match="shape"):
        figures.save_reconstruction_comparison([("VAE", vae)], originals[:, :14, :14], str(tmp_path / "x.png"))


@pytest.mark.slow
def test_disentangle_command_end_to_end(tmp_path):
    """Train 1 step, then `python -m hiabp_tf.disentangle` writes 2 layer panels and the combined
    figure and prints their paths; a workdir without a checkpoint exits 2 with one error line."""
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "hiabp_tf.disentangle"]
    empty = tmp_path / "empty"
    empty.mkdir()
    # Started first: it spends most of its time importing TensorFlow, meanwhile we train.
    bad = subprocess.Popen(command + [f"--workdir={empty}"], cwd=REPO, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        workdir = str(tmp_path / "run")
        train.train(config_lib.RunConfig(num_layers=2, latent_dims=(2, 2), width=4, batch_size=20), workdir, 1,
                    log_every=1, eval_every=1, eval_examples=10, checkpoint_every=1)
        with pytest.raises(errors.ConfigError, match="--rows"):
            disentangle.disentangle(workdir, str(tmp_path / "x"), rows=0)

        out = str(tmp_path / "figs" / "fig7")
        good = subprocess.run(command + [f"--workdir={workdir}", f"--out={out}", "--rows=2", "--cols=3"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        _, bad_err = bad.communicate(timeout=120)
    finally:
        if bad.poll() is None:
            bad.kill()
            bad.communicate()
    good_out, good_err = good.stdout, good.stderr

    assert good.returncode == 0, good_err
    expected = [f"{out}_layer1.png", f"{out}_layer2.png", f"{out}.png"]
    assert good_out.strip().splitlines() == expected
    for path in expected:
        _assert_png(path)
    assert not os.path.exists(f"{out}_layer3.png")

    assert bad.returncode == 2
    error_lines = [line for line in bad_err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "--workdir" in error_lines[0] and "Traceback" not in bad_err


def test_learning_curves_keep_each_methods_colour_in_both_panels(tmp_path, monkeypatch):
    import matplotlib.figure

    drawn = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, path, **kw: drawn.append(fig))

    def curve(row, score, long=False):
        return dict(row=row, score=score, long=long, label=f"{row} {score} {long}", steps=[1, 2], mse=[0.2, 0.1])

    short = [curve(r, s) for r, s in (("vae", "mse_E"), ("lvae", "mse_E"), ("iabp", "mse_E"), ("iabp", "mse_EL"))]
    long = [curve("vae", "mse_E", True), curve("iabp", "mse_EL", True)]
    figures.save_learning_curves(short + long, str(tmp_path / "c.png"), "t")
    (fig,) = drawn
    colour = [{line.get_label(): line.get_color() for line in ax.get_lines() if not line.get_label().startswith("_")}
              for ax in fig.axes]
    assert len(set(colour[0].values())) == 3  # three methods, three colours: IABP's two scores share one
    assert colour[0]["iabp mse_E False"] == colour[0]["iabp mse_EL False"]
    for c in (short[0], short[3]):  # the second panel: the long runs' methods, in their first-panel colours
        assert colour[1][c["label"]] == colour[0][c["label"]]
    assert "lvae mse_E False" not in colour[1] and "iabp mse_E False" not in colour[1]
    for c in long:
        assert colour[1][c["label"]] == colour[0][c["label"].replace("True", "False")]


def test_every_table1_method_has_its_own_colour_on_every_page():
    """One colour per Table 1 row key, fixed (so the same on the MNIST and the CelebA page, whichever rows a
    page has): no two methods share one (LVAE without warm-up was drawn in the VAE's blue, the 11th colour
    of matplotlib's cycle of 10). A method's other score (IABP [E]) is its colour dotted, a long run dashed."""
    from hiabp_tf.experiments import plan

    rows = list(dict.fromkeys(row for row, _, _ in plan.TABLE1))
    assert set(figures.ROW_COLOURS) == set(rows)
    assert len({matplotlib.colors.to_hex(c) for c in figures.ROW_COLOURS.values()}) == len(rows)

    def curves(keys):
        return [dict(row=row, score=score, label=label, long=False) for row, label, score in plan.TABLE1
                if row in keys]

    mnist = figures.learning_curve_styles(curves(rows))
    celeba = figures.learning_curve_styles(curves(("vae", "vlae", "abp_persistent", "iabp", "hiabp_l4")))
    by_label = {c["label"]: s for c, s in zip(curves(rows), mnist)}
    for c, style in zip(curves(("vae", "vlae", "abp_persistent", "iabp", "hiabp_l4")), celeba):
        assert style == by_label[c["label"]], c["label"]
    assert by_label["LVAE (L=4), equal split, no KL warm-up"]["color"] != by_label["VAE"]["color"]
    equal = by_label["LVAE (L=4), equal split 12/12/12/12"]["color"]
    assert equal not in (by_label["VAE"]["color"], by_label["LVAE (L=4)"]["color"])
    assert by_label["IABP [E] (L=1)"]["color"] == by_label["IABP [E+L] (L=1)"]["color"]
    assert (by_label["IABP [E] (L=1)"]["linestyle"], by_label["IABP [E+L] (L=1)"]["linestyle"]) == (":", "-")
    long = figures.learning_curve_styles([dict(row="iabp", score="mse_E", label="a", long=True),
                                          dict(row="iabp", score="mse_EL", label="b", long=True)])
    assert [s["linestyle"] for s in long] == ["-.", "--"]


def test_the_papers_numbers_are_labelled_markers_in_the_legend(tmp_path, monkeypatch):
    """The paper's MSE of each method: a star in the method's colour (open for a dotted curve) right of the
    last update, explained by an entry of the legend (they were unlabelled ticks); when the methods average
    different numbers of seeds, the legend says each one's."""
    import matplotlib.figure

    drawn = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, path, **kw: drawn.append(fig))
    curves = [dict(row="vae", score="mse_E", label="VAE", steps=[1, 2], mse=[0.2, 0.1], paper=0.03, num_seeds=3),
              dict(row="iabp", score="mse_E", label="IABP [E]", steps=[1, 2], mse=[0.3, 0.2], paper=0.04, num_seeds=1),
              dict(row="iabp", score="mse_EL", label="IABP [E+L]", steps=[1, 2], mse=[0.2, 0.1], paper=0.02,
                   num_seeds=1)]
    figures.save_learning_curves(curves, str(tmp_path / "c.png"), "t", paper_label="paper CelebA (3e5 updates)")
    (fig,) = drawn
    ax = fig.axes[0]
    stars = {line.get_ydata()[0]: line for line in ax.get_lines() if line.get_marker() == "*"}
    assert set(stars) == {0.03, 0.04, 0.02}
    assert stars[0.03].get_color() == figures.ROW_COLOURS["vae"]
    assert stars[0.04].get_markerfacecolor() == "none" and stars[0.02].get_markerfacecolor() != "none"
    assert min(line.get_xdata()[0] for line in stars.values()) > 2  # beyond the last update
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["VAE (3 seeds)", "IABP [E]", "IABP [E+L]",  # the number of seeds where it is not the usual one
                      "paper CelebA (3e5 updates), in the method's colour",
                      "paper CelebA (3e5 updates), of a dotted curve"]

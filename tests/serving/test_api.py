"""The Python API of a trained model: hiabp_tf.load(workdir) and TrainedModel (hiabp_tf/api.py).

One tiny HiABP (L = 2) trained for 60 steps on mnist_5k is shared by the session (tests/conftest.py)."""

import os
import shutil
import subprocess
import sys

from conftest import TINY_TRAINED
import numpy as np
import pytest
import tensorflow as tf

import hiabp_tf
from hiabp_tf import config as config_lib
from hiabp_tf import train
from hiabp_tf.checks import errors
from hiabp_tf.data import input_pipeline
from hiabp_tf.runtime import workdir as workdir_lib
from hiabp_tf.serving import api

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = config_lib.RunConfig(**TINY_TRAINED)  # the tiny model of tests/conftest.py


@pytest.fixture(scope="module")
def workdir(tiny_trained_workdir):
    """The session's tiny trained HiABP (tests/conftest.py)."""
    return tiny_trained_workdir


@pytest.fixture(scope="module")
def model(workdir):
    return hiabp_tf.load(workdir)


@pytest.fixture(scope="module")
def x():
    """20 test digits, two of every class, float32 in [0, 1]."""
    _, _, x_test, _ = input_pipeline.mnist_5k_arrays()
    return x_test[::50].astype(np.float32) / 255.0


def mse(a, b):
    return float(np.mean((np.asarray(a) - np.asarray(b)) ** 2))


def test_import_hiabp_tf_does_not_import_tensorflow():
    """`import hiabp_tf` stays cheap: TensorFlow is imported only when load() is called."""
    code = "import sys, hiabp_tf; assert callable(hiabp_tf.load); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_load_restores_the_latest_checkpoint(model, workdir):
    assert isinstance(model, api.TrainedModel)
    assert model.method == "hiabp" and model.num_layers == 2 and model.latent_dims == (8, 8)
    assert model.image_shape == (28, 28, 1) and model.step == 60 and model.langevin_steps == 10
    assert model.workdir == workdir and "hiabp" in repr(model)


@pytest.mark.slow
def test_load_without_a_run_or_checkpoint_is_a_clear_error(tmp_path, workdir):
    with pytest.raises(errors.WorkdirError, match="no config.json"):
        hiabp_tf.load(str(tmp_path))
    shutil.copy(os.path.join(workdir, workdir_lib.CONFIG_FILE), tmp_path / workdir_lib.CONFIG_FILE)
    with pytest.raises(errors.WorkdirError, match="no checkpoint"):
        hiabp_tf.load(str(tmp_path))


@pytest.mark.slow
def test_encode_with_zero_steps_is_the_encoder_mean(model, x):
    """langevin_steps=0: exactly mu_phi(x) of the restored encoder, one (N, d_l) array per layer,
    whatever the seed; single images are promoted to a batch of one."""
    z = model.encode(x, langevin_steps=0, seed=1)
    mus, _ = model.network.encoder(tf.constant(x))
    assert [a.shape for a in z] == [(20, 8), (20, 8)]
    for a, mu in zip(z, mus):
        np.testing.assert_array_equal(a, mu.numpy())
    for a, b in zip(z, model.encode(x, langevin_steps=0, seed=2)):
        np.testing.assert_array_equal(a, b)
    single = model.encode(x[3], langevin_steps=0)
    grey = model.encode(x[3, ..., 0], langevin_steps=0)
    for a, b, c in zip(z, single, grey):
        assert b.shape == (1, 8)
        np.testing.assert_allclose(b[0], a[3], atol=1e-5)
        np.testing.assert_array_equal(b, c)


@pytest.mark.slow
def test_encode_with_langevin_is_seeded_and_decodes_better_than_random_latents(model, x):
    z = model.encode(x, seed=5)  # the run's T = 10 steps
    again = model.encode(tf.constant(x), seed=5)  # tensors are accepted too
    other = model.encode(x, seed=6)
    for a, b, c in zip(z, again, other):
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)
    random = [np.random.default_rng(0).standard_normal((20, d)).astype(np.float32) for d in model.latent_dims]
    assert mse(model.decode(z), x) < 0.9 * mse(model.decode(random), x)
    # A dict {"z1", "z2"} (as the SavedModel returns) decodes the same.
    np.testing.assert_array_equal(model.decode({"z1": z[0], "z2": z[1]}), model.decode(z))


@pytest.mark.slow
def test_reconstruct_modes_match_the_package_and_langevin_improves(model, x):
    """"E" = decode(encode(x, 0)); "E+L" = HiABP.reconstruct(x, [s, 0], T)["E+L"] of the package;
    after 30 Langevin steps "E+L" has a lower MSE than "E"."""
    e = model.reconstruct(x, mode="E")
    np.testing.assert_array_equal(e, model.decode(model.encode(x, langevin_steps=0)))
    el = model.reconstruct(x, seed=4)
    reference = model.network.reconstruct(tf.constant(x), tf.constant([4, 0]), 10)
    np.testing.assert_allclose(el, reference["E+L"].numpy(), atol=1e-5)
    np.testing.assert_allclose(e, reference["E"].numpy(), atol=1e-5)
    assert e.shape == el.shape == x.shape and 0.0 <= el.min() and el.max() <= 1.0
    assert mse(model.reconstruct(x, langevin_steps=30, seed=0), x) < mse(e, x)
    noise = model.reconstruct(x, mode="L", langevin_steps=30, seed=0)  # Langevin from N(0, I)
    assert noise.shape == x.shape
    with pytest.raises(ValueError, match="mode='X' is not available"):
        model.reconstruct(x, mode="X")


@pytest.mark.slow
def test_sample_is_reproducible_with_a_seed(model):
    a, b, c = model.sample(6, seed=3), model.sample(6, seed=3), model.sample(6, seed=4)
    assert a.shape == (6, 28, 28, 1) and 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_allclose(a, model.network.sample(6, tf.constant([3, 0])).numpy(), atol=1e-6)
    assert not np.allclose(model.sample(6), model.sample(6))  # seed None: fresh noise
    np.testing.assert_array_equal(model.sample(2, seed=[3, 0]), model.sample(2, seed=3))  # s = [s, 0]
    with pytest.raises(ValueError, match=r"n=0 must be an integer in 1\.\."):
        model.sample(0)


def test_resample_layer_changes_only_that_layer(model, x):
    z = model.encode(x, langevin_steps=0)
    for layer in (1, 2):
        new = model.resample_layer(z, layer, seed=1)
        for l, (before, after) in enumerate(zip(z, new), start=1):
            if l == layer:
                assert after.shape == before.shape and not np.allclose(after, before)
            else:
                np.testing.assert_array_equal(after, before)
        assert model.decode(new).shape == x.shape
    np.testing.assert_array_equal(model.resample_layer(z, 2, seed=1)[1], model.resample_layer(z, 2, seed=1)[1])
    assert not np.allclose(model.resample_layer(z, 2, seed=1)[1], model.resample_layer(z, 2, seed=2)[1])
    for bad in (0, 3, 1.5):
        with pytest.raises(ValueError, match="1-based"):
            model.resample_layer(z, bad)
    with pytest.raises(ValueError, match=r"\(N, 8\), \(N, 8\)"):
        model.resample_layer([z[0]], 1)
    with pytest.raises(ValueError, match=r"\(N, 8\), \(N, 8\)"):
        model.decode([z[0], z[1][:, :3]])


@pytest.mark.slow
def test_inpaint_keeps_observed_pixels_and_fills_missing_ones(model, x):
    mask = np.ones((20, 28, 28), np.float32)
    mask[:, 9:19, 9:19] = 0.0  # a 10x10 hole over the middle of every digit
    out = model.inpaint(x, mask, seed=2, return_details=True)
    recovered, hole = out["recovered"], mask[..., None] == 0
    assert recovered.shape == x.shape
    np.testing.assert_array_equal(recovered[~hole], x[~hole])  # observed: exactly x
    np.testing.assert_array_equal(recovered[hole], out["reconstruction"][hole])  # missing: g(z_T)
    assert recovered[hole].max() > 0.2  # filled, not left at 0
    np.testing.assert_array_equal(out["occluded"][hole], 0.0)
    # The same as the package's masked reconstruction (encoder on the occluded image, masked energy).
    reference = model.network.reconstruct(tf.constant(out["occluded"]), tf.constant([2, 0]), 10,
                                          tf.constant(out["mask"]))
    np.testing.assert_allclose(out["reconstruction"], reference["E+L"].numpy(), atol=1e-5)
    assert [z.shape for z in out["latents"]] == [(20, 8), (20, 8)]
    # The model fills the hole better than leaving it black (the digits' strokes are there).
    assert mse(recovered, x) < mse(out["occluded"], x)
    # Masks (N, H, W, 1), one (H, W) for all, and the plain call agree.
    np.testing.assert_array_equal(model.inpaint(x, mask[..., None], seed=2), recovered)
    np.testing.assert_array_equal(model.inpaint(x, mask[0], seed=2), recovered)


def test_inpaint_with_nothing_missing_changes_nothing(model, x):
    np.testing.assert_array_equal(model.inpaint(x, np.ones((28, 28)), seed=0), x)
    np.testing.assert_array_equal(model.inpaint(x, np.ones((20, 28, 28, 1), bool)), x)


def test_bad_inputs_are_clear_errors(model, x):
    with pytest.raises(ValueError, match="divided by 255"):
        model.encode((x * 255).astype(np.uint8))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 28, 28, 1\).*got shape \(20, 20, 28, 1\)"):
        model.reconstruct(x[:, :20])
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 28, 28, 1\)"):
        model.encode(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        model.encode(np.full((2, 28, 28, 1), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.inpaint(x - 0.5, np.ones((28, 28)))
    with pytest.raises(ValueError, match=r"expected a mask of shape \(20, 28, 28\)"):
        model.inpaint(x, np.ones((19, 28, 28)))
    with pytest.raises(ValueError, match="mask values must be in"):
        model.inpaint(x, 2 * np.ones((28, 28)))
    with pytest.raises(ValueError, match="langevin_steps"):
        model.encode(x, langevin_steps=-1)
    with pytest.raises(TypeError, match="seed"):
        model.sample(2, seed="zero")
    with pytest.raises(TypeError, match="numeric"):
        model.encode(np.array([["a"]]))


@pytest.mark.slow
def test_methods_without_an_encoder_start_from_noise(tmp_path, x):
    """abp: reconstruct has only mode "L" (= ABP.reconstruct of the package); encode needs T > 0."""
    config = config_lib.RunConfig(**{**TINY.to_json(), "method": "abp", "latent_dims": (8, 8)})
    train.train(config, str(tmp_path), 1, log_every=1000, eval_every=10**6, eval_examples=100)
    abp = hiabp_tf.load(str(tmp_path))
    assert not abp.has_encoder
    rec = abp.reconstruct(x[:4], seed=1, langevin_steps=3)
    reference = abp.network.reconstruct(tf.constant(x[:4]), tf.constant([1, 0]), 3)["L"].numpy()
    np.testing.assert_allclose(rec, reference, atol=1e-5)
    with pytest.raises(ValueError, match="no encoder"):
        abp.reconstruct(x[:4], mode="E")
    with pytest.raises(ValueError, match="no encoder"):
        abp.encode(x[:4], langevin_steps=0)
    assert [z.shape for z in abp.encode(x[:4], langevin_steps=2, seed=0)] == [(4, 8), (4, 8)]
    assert abp.inpaint(x[:4], np.ones((28, 28)), langevin_steps=2).shape == (4, 28, 28, 1)



@pytest.mark.slow
def test_variational_baselines_support_every_call(tmp_path, x):
    """lvae (hierarchical prior): "E" and samples are the package's; "E+L" runs Langevin on the
    LVAE's own energy; resample_layer changes only the chosen layer."""
    config = config_lib.RunConfig(**{**TINY.to_json(), "method": "lvae", "width": 4})
    train.train(config, str(tmp_path), 1, log_every=1000, eval_every=10**6, eval_examples=100)
    lvae = hiabp_tf.load(str(tmp_path))
    reference = lvae.network.reconstruct(tf.constant(x[:4]), tf.constant([0, 0]))["E"].numpy()
    np.testing.assert_allclose(lvae.reconstruct(x[:4], mode="E"), reference, atol=1e-6)
    np.testing.assert_allclose(lvae.sample(3, seed=1), lvae.network.sample(3, tf.constant([1, 0])).numpy(), atol=1e-5)
    assert lvae.reconstruct(x[:4], seed=0, langevin_steps=3).shape == (4, 28, 28, 1)
    z = lvae.encode(x[:4], langevin_steps=0)
    for layer in (1, 2):
        new = lvae.resample_layer(z, layer, seed=0)
        assert [np.array_equal(a, b) for a, b in zip(z, new)] == [layer != 1, layer != 2]

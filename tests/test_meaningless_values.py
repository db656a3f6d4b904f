"""Issue 38, class 5: values that were accepted but meaningless. NaN weights (they scored "mse_E": NaN,
exit 0, invalid JSON), complex arrays given to the API (the imaginary part was dropped), and image shapes
the docs and the error text did not name (they now agree: side 28, 32 or 64, grayscale or RGB)."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import hiabp_tf
from hiabp_tf import evaluate
from hiabp_tf.checks import errors
from hiabp_tf.core import models
from hiabp_tf.runtime import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "workdir_v1")
SHIPPED = os.path.join(REPO, "results", "cpu", "models", "mnist_vae")


def _poison(path, key=None, value=np.nan):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    key = key or sorted(arrays)[0]
    arrays[key] = arrays[key].copy()
    arrays[key].flat[0] = value
    np.savez(path, **arrays)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_shipped_weights_that_are_not_finite_are_refused(tmp_path, value):
    """The issue's NaN weights; of my own: +inf and -inf, in the last array as in the first."""
    if not os.path.isdir(SHIPPED):
        pytest.skip("no shipped model")
    model = tmp_path / "model"
    shutil.copytree(SHIPPED, model)
    with np.load(model / "weights.npz") as npz:
        last = sorted(npz.files)[-1]
    _poison(str(model / "weights.npz"), last, value)
    with pytest.raises(errors.WorkdirError, match=r"weights\.npz holds NaN or infinite weights"):
        hiabp_tf.load(str(model))
    with pytest.raises(errors.WorkdirError, match="NaN or infinite"):
        evaluate.evaluate(str(model))
    assert not [n for n in os.listdir(model) if n.startswith("eval_")]


def test_a_checkpoint_with_nan_weights_is_fallen_back_past(tmp_path):
    """A checkpoint of NaN weights (never saved by training: damage) is skipped like an unreadable one,
    with a warning; with no other checkpoint it is one error naming it."""
    workdir = str(tmp_path / "run")
    shutil.copytree(FIXTURE, workdir)
    model, config, shape, step = workdir_lib.restore(workdir)
    for w in workdir_lib.network_weights(model):
        w.assign(tf.fill(w.shape, np.nan))
    checkpoint, counter = workdir_lib.make_checkpoint(model)
    counter.assign(step + 1)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(workdir, "checkpoints"), max_to_keep=5)
    manager.save(checkpoint_number=step + 1)
    assert workdir_lib.restore(workdir)[3] == step  # the NaN one skipped
    for prefix in glob_checkpoints(workdir, step):
        os.remove(prefix)
    with pytest.raises(errors.WorkdirError, match="NaN or infinite weights"):
        workdir_lib.restore(workdir)


def glob_checkpoints(workdir, step):
    folder = os.path.join(workdir, "checkpoints")
    return [os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(f"ckpt-{step}.")]


def test_scores_that_are_not_finite_are_not_written(tmp_path, monkeypatch):
    """Whatever makes a score NaN, no result file holds it (NaN is not JSON)."""
    workdir = str(tmp_path / "run")
    shutil.copytree(FIXTURE, workdir)
    from hiabp_tf.evaluation import metrics  # pylint: disable=import-outside-toplevel
    real = metrics.reconstruction_mse
    monkeypatch.setattr(metrics, "reconstruction_mse",
                        lambda *a, **k: {**real(*a, **k), "mse_E": float("nan")})
    before = sorted(os.listdir(workdir))
    with pytest.raises(errors.WorkdirError, match="mse_E = nan are not finite"):
        evaluate.evaluate(workdir, batch_size=1000)
    assert sorted(os.listdir(workdir)) == before
    with open(os.path.join(workdir, "eval_mnist_5k_test.json")) as f:
        json.load(f, parse_constant=lambda c: pytest.fail(f"{c} in a result"))


@pytest.mark.slow
def test_complex_arrays_are_refused_by_the_api(tiny_trained_workdir):
    """The issue's complex images; of my own: complex masks and complex latents."""
    model = hiabp_tf.load(tiny_trained_workdir)
    x = np.full((2, 28, 28, 1), 0.5)
    with pytest.raises(ValueError, match="must be real numbers, got dtype complex128"):
        model.reconstruct(x + 0.1j, mode="E")
    with pytest.raises(ValueError, match="must be real numbers"):
        model.inpaint(x, np.ones((2, 28, 28)) * (1 + 0j), langevin_steps=1, seed=0)
    z = model.encode(x, langevin_steps=0)
    with pytest.raises(ValueError, match="must be real numbers, got dtype complex64"):
        model.decode([a.astype(np.complex64) for a in z])
    assert model.reconstruct(x, mode="E").shape == x.shape


@pytest.mark.parametrize("shape,ok", [((28, 28, 3), True), ((32, 32, 1), True), ((64, 64, 1), True),
                                      ((28, 28, 2), False), ((30, 30, 1), False), ((32, 28, 3), False)])
def test_the_shapes_the_networks_build_are_the_ones_the_message_names(shape, ok):
    """RGB at 28 and grayscale at 32 train, and the docs and the error text now say any side 28, 32 or 64,
    grayscale or RGB."""
    if ok:
        models.Architecture(shape, (4,), 4)
    else:
        with pytest.raises(ValueError, match=r"side 28, 32, 64, grayscale \(C = 1\) or RGB \(C = 3\)"):
            models.Architecture(shape, (4,), 4)
    with open(os.path.join(REPO, "docs", "data.md")) as f:
        assert "RGB at 28 and grayscale at 32 or 64 train too" in f.read()

"""Nothing lost, nothing silent: exact resume, signals, divergence guard, determinism, clipping."""

import os
import signal
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf.checks import errors
from hiabp_tf.core import langevin
from hiabp_tf.runtime import workdir as workdir_lib
from hiabp_tf.training import loop as train  # the loop itself: its module attributes are patched or called

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(dataset="mnist_5k", num_layers=2, latent_dims=(4, 4), width=4, batch_size=1500, langevin_steps=3)


def _train(workdir, steps, checkpoint_every=3, **overrides):
    return train.train(config_lib.RunConfig(**{**TINY, **overrides}), str(workdir), steps, log_every=100,
                       eval_every=10**6, eval_examples=10, checkpoint_every=checkpoint_every,
                       deterministic=True)


def _weights(model):
    weights = [v.numpy() for v in workdir_lib.network_weights(model)]
    assert len(weights) > 10  # generator and encoder layers: the comparisons below are not vacuous
    return weights


@pytest.mark.slow
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    """Stopping at step 3 and rerunning to 7 gives bit-identical weights to running 7 steps at once:
    step counter, optimisers, RNG (noise is a function of seed and step) and the input position
    (1,500-image batches of 4,000: the epoch boundary falls inside the resumed part) all resume."""
    straight = _weights(_train(tmp_path / "straight", 7))
    _train(tmp_path / "stopped", 3)
    resumed = _train(tmp_path / "stopped", 7)
    for a, b in zip(straight, _weights(resumed)):
        np.testing.assert_array_equal(a, b)
    assert int(resumed.generator_optimizer.iterations.numpy()) == 7


@pytest.mark.slow
def test_deterministic_runs_are_identical_and_seed_matters(tmp_path):
    """--deterministic: the same seed gives identical weights; another seed does not."""
    a = _weights(_train(tmp_path / "a", 2))
    b = _weights(_train(tmp_path / "b", 2))
    c = _weights(_train(tmp_path / "c", 2, seed=1))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c))


@pytest.mark.slow
def test_divergence_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """A non-finite loss at step 3 stops training with a message naming the step, the quantity and
    the flags; ckpt-2 stays the latest and no non-finite state is saved."""
    original = train.methods.build_model

    def poisoned(*args, **kwargs):
        model = original(*args, **kwargs)
        step_fn, calls = model.train_step, []

        def train_step(batch, seed, mask=None):
            out = step_fn(batch, seed, mask)
            calls.append(1)
            if len(calls) == 3:
                out = dict(out, energy_zT=tf.constant(np.nan))
            return out
        model.train_step = train_step
        return model

    monkeypatch.setattr(train.methods, "build_model", poisoned)
    with pytest.raises(errors.DivergenceError) as error:
        _train(tmp_path / "run", 10, checkpoint_every=2)
    message = str(error.value)
    assert "step 3" in message and "energy_zT" in message
    assert "--step_size" in message and "--sigma" in message and "--learning_rate" in message
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-2")


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_before_exiting(tmp_path):
    """SIGTERM during training: a checkpoint of the current step is written and the process exits
    with 128 + SIGTERM; rerunning continues from it."""
    workdir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hiabp_tf.train", f"--workdir={workdir}", "--num_steps=100000", "--width=4",
         "--latent_dims=4", "--batch_size=50", "--langevin_steps=2", "--checkpoint_every=100000",
         "--log_every=1", "--eval_every=100000", "--eval_examples=10"],
        cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # wait until a few steps have run
            if "step 3/" in line:
                break
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    assert latest is not None and int(latest.rsplit("-", 1)[1]) >= 3


def test_langevin_clip_bounds_the_gradient_step():
    """With --langevin_clip=c each component moves by at most s^2/2 * c (noise removed: s tiny
    relative effect is checked by comparing to the unclipped drift direction)."""
    target = tf.constant([[1000.0, -1000.0, 0.5]])

    def energy(z):
        return 0.5 * tf.reduce_sum(tf.square(z[0] - target))

    z0 = [tf.zeros((1, 3))]
    seed = tf.constant([0, 0])
    clipped, _ = langevin.langevin_dynamics(energy, z0, 1, 0.1, seed, clip=1.0)
    free, _ = langevin.langevin_dynamics(energy, z0, 1, 0.1, seed)
    noise = free[0] - 0.5 * 0.01 * target  # the same noise in both runs
    drift = (clipped[0] - noise).numpy()
    np.testing.assert_allclose(drift, 0.5 * 0.01 * np.array([[1.0, -1.0, 0.5]]), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["vae", "lvae_all_layers", "hiabp", "abp"])
def test_divergence_advice_fits_the_method(method):
    """A variational method has no Langevin chain: its advice names the learning rate and precision,
    not --step_size; a Langevin method's names the step size and sigma."""
    layers = 2 if method == "lvae_all_layers" else 1
    config = config_lib.RunConfig(**{**TINY, "method": method, "precision": "bfloat16", "num_layers": layers,
                                     "latent_dims": (4,) * layers})
    manager = types.SimpleNamespace(latest_checkpoint=None)
    message = train._divergence_message(53, ["loss", "kl"], config, manager)
    assert message.startswith("training diverged at step 53: loss, kl became non-finite") and "none yet" in message
    assert "--learning_rate" in message
    variational = method in ("vae", "lvae_all_layers")
    assert ("--step_size" in message) != variational
    assert ("--precision=bfloat16" in message and "float32" in message) == variational

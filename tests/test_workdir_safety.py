"""A workdir is never shared by accident or lost to one bad file (issue 12): the run lock, the
fallback past unreadable checkpoints, and every seed accepted or refused cleanly."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import hiabp_tf
from hiabp_tf import api
from hiabp_tf import disentangle
from hiabp_tf import evaluate
from hiabp_tf import experiment
from hiabp_tf import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
TINY = dict(dataset="mnist_5k", num_layers=2, latent_dims=(4, 4), width=4, batch_size=1500, langevin_steps=3)
# The same run on the command line (log_every and the evaluations do not change the weights).
TINY_FLAGS = ["--dataset=mnist_5k", "--num_layers=2", "--latent_dims=4,4", "--width=4", "--batch_size=1500",
              "--langevin_steps=3", "--log_every=1", "--eval_every=1000000", "--eval_examples=10", "--deterministic"]
DATA_FILE = ".data-00000-of-00001"


def _train(workdir, steps, checkpoint_every=2, timing=None, **overrides):
    return train.train(experiment.RunConfig(**{**TINY, **overrides}), str(workdir), steps, log_every=100,
                       eval_every=10**6, eval_examples=10, checkpoint_every=checkpoint_every,
                       deterministic=True, timing=timing)


def _command(workdir, steps, *extra):
    return [sys.executable, "-m", "hiabp_tf.train", f"--workdir={workdir}", f"--num_steps={steps}",
            "--checkpoint_every=2", *TINY_FLAGS, *extra]


def _weights(model):
    weights = [v.numpy() for v in experiment.network_weights(model)]
    assert len(weights) > 10  # generator and encoder layers: the comparisons are not vacuous
    return weights


def _assert_same_weights(a, b):
    for x, y in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(x, y)


def _snapshot(folder):
    """Every file under `folder` with its size and modification time."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            st = os.stat(path)
            out[os.path.relpath(path, folder)] = (st.st_size, st.st_mtime_ns)
    return out


def _lock_holder(workdir):
    try:
        with open(os.path.join(workdir, experiment.LOCK_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _unreadable_warnings(caplog):
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "is unreadable" in r.getMessage()]


# ------------------------------------------------------------------------------------ run lock

def test_a_second_training_is_refused_and_the_first_ends_as_a_lone_run(tmp_path):
    """Two trainings into one workdir: the second (other flags) exits 2 with one `error:` naming the
    workdir and the first's pid, and writes nothing; the first finishes with the weights of a lone
    run. The first is paused (SIGSTOP) while it holds the lock, so the race is not left to timing."""
    workdir = tmp_path / "run"
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(_command(workdir, 6), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 300
        while _lock_holder(workdir).get("pid") != first.pid:
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGSTOP)
        try:
            before = _snapshot(workdir)
            second = subprocess.run(_command(workdir, 6, "--learning_rate=0.01"), cwd=REPO, env=ENV,
                                    capture_output=True, text=True, timeout=600)
            after = _snapshot(workdir)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2, second.stderr[-3000:]
    assert f"error: --workdir={workdir} is in use: process {first.pid} on " in second.stderr
    assert len([line for line in second.stderr.splitlines() if line.startswith("error:")]) == 1
    assert "Traceback" not in second.stderr
    assert after == before  # the second run wrote nothing
    model, config, _, step = experiment.restore(str(workdir))
    assert step == 6 and config.learning_rate == experiment.RunConfig().learning_rate
    _assert_same_weights(model, _train(tmp_path / "lone", 6))


def test_training_is_refused_while_the_lock_is_held_and_readers_are_not(tmp_path):
    """In one process too: while the lock is held, train() raises WorkdirError naming the holder and
    writes nothing, while load and evaluate read the workdir; released, training resumes."""
    workdir = str(tmp_path / "run")
    _train(workdir, 2)
    with experiment.training_lock(workdir):
        before = _snapshot(workdir)
        with pytest.raises(experiment.WorkdirError) as error:
            _train(workdir, 4)
        assert f"--workdir={workdir} is in use: process {os.getpid()}" in str(error.value)
        assert _snapshot(workdir) == before
        assert hiabp_tf.load(workdir).step == 2
        assert evaluate.evaluate(workdir)["step"] == 2
    timing = {}
    _train(workdir, 4, timing=timing)
    assert timing["steps"] == 2


def test_a_sigkilled_training_can_be_trained_again_at_once(tmp_path):
    """SIGKILL leaves no stale lock (the kernel drops it): the next training resumes at once."""
    workdir = tmp_path / "run"
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(_command(workdir, 100_000), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 300
        while tf.train.latest_checkpoint(str(workdir / "checkpoints")) is None:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()[-3000:]
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and _lock_holder(workdir)["pid"] == proc.pid
    saved = int(tf.train.latest_checkpoint(str(workdir / "checkpoints")).rsplit("-", 1)[1])
    timing = {}
    _train(workdir, saved + 1, timing=timing)
    assert timing["steps"] == 1  # resumed from the killed run's checkpoint
    assert _lock_holder(workdir)["pid"] == os.getpid()


def test_an_unwritable_workdir_is_named_before_the_lock(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(experiment.WorkdirError, match="--workdir=.*file/run is not a writable folder"):
        with experiment.training_lock(str(tmp_path / "file" / "run")):
            pass

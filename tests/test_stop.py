"""Issue 22, class 6: a stop request that waited minutes. SIGINT / SIGTERM skip the evaluation and the
image summaries (or end an evaluation between its batches), save and exit; the resumed run does the
evaluation it missed. An absurd T warns first."""

import logging
import os
import signal
import subprocess
import sys
import types

import pytest
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf.runtime import sittings
from hiabp_tf.runtime import workdir as workdir_lib
from hiabp_tf.training import loop as train  # the loop itself: its module attributes are patched or called

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
TINY = dict(dataset="mnist_5k", num_layers=2, latent_dims=(4, 4), width=4, batch_size=50, langevin_steps=2)


def test_an_evaluation_ends_between_batches_on_a_stop_request():
    stop = types.SimpleNamespace(signal=None)
    batches = train._until_stopped(iter([1, 2, 3]), stop)
    assert next(batches) == 1
    stop.signal = signal.SIGTERM
    with pytest.raises(train._Stopped):
        next(batches)


def test_the_evaluation_a_stop_skipped_is_due_when_the_run_resumes(tmp_path):
    workdir = str(tmp_path)
    assert not train._evaluation_missed(workdir, 5)  # no record: a run of earlier code, or nothing skipped
    sittings.record(workdir, dict(started="t1", machine="m", precision="float32", from_step=0, to_step=5, seconds=1.0,
                                  evaluation_skipped=5))
    assert train._evaluation_missed(workdir, 5) and not train._evaluation_missed(workdir, 4)
    workdir_lib.append_learning_curve(workdir, {"step": 5, "mse_E": 0.1})  # evaluated since
    assert not train._evaluation_missed(workdir, 5)


def test_an_absurd_langevin_t_warns(caplog):
    config = config_lib.RunConfig(**{**TINY, "langevin_steps": 100000})
    with caplog.at_level(logging.WARNING):
        train._warn_if_long_langevin(config, (28, 28, 1))
    assert "--langevin_steps=100000: every update (batch 50) runs 100000 Langevin steps" in caplog.text
    assert "SIGINT/SIGTERM stop the run only once the current one ends" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        train._warn_if_long_langevin(config_lib.RunConfig(**TINY), (28, 28, 1))
    assert not caplog.text


@pytest.mark.slow
def test_a_stop_during_an_evaluation_ends_it_saves_and_the_resume_evaluates(tmp_path, monkeypatch):
    """SIGTERM arrives while the first of two evaluation batches is scored: the second is not, no
    score is recorded, the step is saved, exit 128 + 15; the rerun evaluates that step first."""
    workdir = tmp_path / "run"
    original = train.methods.build_model
    calls = []

    def signalling(*args, **kwargs):
        model = original(*args, **kwargs)
        reconstruct = model.reconstruct

        def reconstruct_and_signal(*a, **k):
            calls.append(1)
            os.kill(os.getpid(), signal.SIGTERM)  # the handler sets the flag; scoring this batch goes on
            return reconstruct(*a, **k)
        model.reconstruct = reconstruct_and_signal
        return model
    monkeypatch.setattr(train.methods, "build_model", signalling)
    kwargs = dict(log_every=100, eval_every=2, eval_examples=600, checkpoint_every=100)
    with pytest.raises(SystemExit) as stopped:
        train.train(config_lib.RunConfig(**TINY), str(workdir), 4, **kwargs)
    assert stopped.value.code == 128 + signal.SIGTERM and len(calls) == 1  # one batch of 500 of the 600
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-2")
    assert workdir_lib.read_learning_curve(str(workdir)) == []
    assert sittings.read(str(workdir))[-1]["evaluation_skipped"] == 2
    monkeypatch.undo()
    train.train(config_lib.RunConfig(**TINY), str(workdir), 4, **kwargs)
    assert [(r["step"], r["num_examples"]) for r in workdir_lib.read_learning_curve(str(workdir))] == [
        (2, 600), (4, 600)]


@pytest.mark.slow
def test_sigterm_during_a_long_step_skips_the_end_of_run_evaluation(tmp_path):
    """The issue's `--langevin_steps=100000 --num_steps=1`, scaled down: SIGTERM during the one long
    step; the end-of-run evaluation (as long as the step again) and the image summaries are skipped,
    the step is saved, exit 128 + 15; the same command then evaluates it and ends."""
    workdir = tmp_path / "run"
    command = [sys.executable, "-m", "hiabp_tf.train", f"--workdir={workdir}", "--num_steps=1", "--width=4",
               "--latent_dims=4", "--batch_size=50", "--langevin_steps=3000", "--log_every=1", "--eval_every=100",
               "--eval_examples=50"]
    proc = subprocess.Popen(command, cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)
    log = []
    try:
        for line in proc.stderr:  # the step starts once training is announced
            log.append(line)
            if "] Training " in line:
                proc.send_signal(signal.SIGTERM)
                break
        log += proc.stderr.read()
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(log)
    assert proc.returncode == 128 + signal.SIGTERM, text[-3000:]
    assert "--langevin_steps=3000: every update" in text  # warned before training
    assert "Stopped by signal 15 at step 1; checkpoint saved" in text and "step 1: test" not in text
    assert workdir_lib.read_learning_curve(str(workdir)) == []
    again = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True)
    assert again.returncode == 0 and "Step 1 was not evaluated (a stop request came first)" in again.stderr
    assert [r["step"] for r in workdir_lib.read_learning_curve(str(workdir))] == [1]

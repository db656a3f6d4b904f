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
from hiabp_tf import config as config_lib
from hiabp_tf import evaluate
from hiabp_tf import methods
from hiabp_tf import train
from hiabp_tf.checks import errors
from hiabp_tf.experiments import disentangle
from hiabp_tf.runtime import workdir as workdir_lib
from hiabp_tf.serving import api

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
TINY = dict(dataset="mnist_5k", num_layers=2, latent_dims=(4, 4), width=4, batch_size=1500, langevin_steps=3)
# The same run on the command line (log_every and the evaluations do not change the weights).
TINY_FLAGS = ["--dataset=mnist_5k", "--num_layers=2", "--latent_dims=4,4", "--width=4", "--batch_size=1500",
              "--langevin_steps=3", "--log_every=1", "--eval_every=1000000", "--eval_examples=10", "--deterministic"]
DATA_FILE = ".data-00000-of-00001"


def _train(workdir, steps, checkpoint_every=2, timing=None, **overrides):
    return train.train(config_lib.RunConfig(**{**TINY, **overrides}), str(workdir), steps, log_every=100,
                       eval_every=10**6, eval_examples=10, checkpoint_every=checkpoint_every,
                       deterministic=True, timing=timing)


def _command(workdir, steps, *extra):
    return [sys.executable, "-m", "hiabp_tf.train", f"--workdir={workdir}", f"--num_steps={steps}",
            "--checkpoint_every=2", *TINY_FLAGS, *extra]


def _weights(model):
    weights = [v.numpy() for v in workdir_lib.network_weights(model)]
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
        with open(os.path.join(workdir, workdir_lib.LOCK_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _unreadable_warnings(caplog):
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "is unreadable" in r.getMessage()]


# ------------------------------------------------------------------------------------ run lock

@pytest.mark.slow
def test_a_second_training_is_refused_and_the_first_ends_as_a_lone_run(tmp_path):
    """Two trainings into one workdir: the second (other flags) exits 2 with one `error:` naming the
    workdir and the first's pid, and writes nothing; the first finishes with the weights of a lone
    run. The first is paused (SIGSTOP) while it holds the lock, so the race is not left to timing.
    Batches of 100: the lock does not need TINY's epoch-crossing 1,500, which took most of the test's time."""
    workdir = tmp_path / "run"
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(_command(workdir, 6, "--batch_size=100"), cwd=REPO, env=ENV,
                                 stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 300
        while _lock_holder(workdir).get("pid") != first.pid:
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGSTOP)
        try:
            before = _snapshot(workdir)
            second = subprocess.run(_command(workdir, 6, "--batch_size=100", "--learning_rate=0.01"), cwd=REPO, env=ENV,
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
    model, config, _, step = workdir_lib.restore(str(workdir))
    assert step == 6 and config.learning_rate == config_lib.RunConfig().learning_rate
    assert config.batch_size == 100
    _assert_same_weights(model, _train(tmp_path / "lone", 6, batch_size=100))


@pytest.mark.slow
def test_training_is_refused_while_the_lock_is_held_and_readers_are_not(tmp_path):
    """In one process too: while the lock is held, train() raises WorkdirError naming the holder and
    writes nothing, while load and evaluate read the workdir; released, training resumes."""
    workdir = str(tmp_path / "run")
    _train(workdir, 2)
    with workdir_lib.training_lock(workdir):
        before = _snapshot(workdir)
        with pytest.raises(errors.WorkdirError) as error:
            _train(workdir, 4)
        assert f"--workdir={workdir} is in use: process {os.getpid()}" in str(error.value)
        assert _snapshot(workdir) == before
        assert hiabp_tf.load(workdir).step == 2
        assert evaluate.evaluate(workdir)["step"] == 2
    timing = {}
    _train(workdir, 4, timing=timing)
    assert timing["steps"] == 2


@pytest.mark.slow
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
    with pytest.raises(errors.WorkdirError, match="--workdir=.*file/run is not a writable folder"):
        with workdir_lib.training_lock(str(tmp_path / "file" / "run")):
            pass


# -------------------------------------------------------------------------- checkpoint fallback

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run with checkpoints at steps 2, 4 and 6 ("at6"), a copy taken at step 4 ("at4",
    with its evaluation), and the run continued to step 8 ("at8"): deterministic, so these are the
    checkpoints of one uninterrupted run."""
    root = tmp_path_factory.mktemp("fallback")
    at6, at4, at8 = (str(root / name) for name in ("at6", "at4", "at8"))
    _train(at6, 4)
    shutil.copytree(at6, at4)
    _train(at6, 6)
    shutil.copytree(at6, at8)
    _train(at8, 8)
    return {"at4": at4, "at6": at6, "at8": at8, "eval_at4": evaluate.evaluate(at4),
            "root": root}


def _damaged_copy(runs, tmp_path, damage, steps=(6,)):
    """A copy of the run at step 6 whose checkpoints `steps` are truncated, deleted or replaced by
    one that holds only the generator and its optimiser (of ckpt-6; the generator's weights are
    saved through its optimiser): a restore assigns them, then fails on the missing encoder."""
    workdir = str(tmp_path / "damaged")
    shutil.copytree(runs["at6"], workdir)
    for number in steps:
        prefix = os.path.join(workdir, "checkpoints", f"ckpt-{number}")
        if damage == "truncated":
            with open(prefix + DATA_FILE, "r+b") as f:
                f.truncate(os.path.getsize(prefix + DATA_FILE) // 2)
        elif damage == "deleted":
            os.remove(prefix + DATA_FILE)
            os.remove(prefix + ".index")
        elif damage == "partial":
            model, _, _, step = workdir_lib.restore(workdir)
            tf.train.Checkpoint(step=tf.Variable(step, dtype=tf.int64), generator=model.generator,
                                generator_optimizer=model.generator_optimizer).write(prefix)
        else:
            raise ValueError(damage)
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "deleted", "partial"])
def test_load_and_evaluate_fall_back_to_the_previous_checkpoint(runs, tmp_path, damage, caplog):
    """A damaged latest checkpoint: one warning naming it, then the model of ckpt-4 exactly (also
    after a restore that assigned the generator of ckpt-6 before failing) and the evaluation of
    step 4; the readers change nothing in the workdir."""
    workdir = _damaged_copy(runs, tmp_path, damage)
    before = _snapshot(workdir)
    clean = hiabp_tf.load(runs["at4"])
    if damage == "partial":  # the failed restore assigns ckpt-6's generator: the fallback must reassign it
        six = hiabp_tf.load(runs["at6"]).network
        config, shape, n = workdir_lib.load_run(workdir)
        probe = methods.build_model(config, shape, n)
        with pytest.raises(AssertionError):
            workdir_lib.make_checkpoint(probe)[0].restore(os.path.join(workdir, "checkpoints", "ckpt-6")) \
                .expect_partial().assert_existing_objects_matched()
        for assigned, of_six in zip(probe.generator.trainable_variables, six.generator.trainable_variables):
            np.testing.assert_array_equal(assigned.numpy(), of_six.numpy())
        assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in
                   zip(six.generator.trainable_variables, clean.network.generator.trainable_variables))
    with caplog.at_level(logging.WARNING):
        model = hiabp_tf.load(workdir)
    warnings = _unreadable_warnings(caplog)
    assert len(warnings) == 1 and os.path.join(workdir, "checkpoints", "ckpt-6") in warnings[0]
    assert model.step == 4
    _assert_same_weights(model.network, clean.network)
    result = evaluate.evaluate(workdir)
    expected = runs["eval_at4"]
    assert result["step"] == 4 and (result["mse_E"], result["mse_EL"]) == (expected["mse_E"], expected["mse_EL"])
    after = _snapshot(workdir)
    assert {k: v for k, v in after.items() if not k.startswith("eval_")} == before


@pytest.mark.slow
def test_evaluate_command_warns_in_one_line_and_scores_the_previous_checkpoint(runs, tmp_path):
    """The issue's reproduction: a truncated newest data file no longer stops `hiabp_tf.evaluate`."""
    workdir = _damaged_copy(runs, tmp_path, "truncated")
    result = subprocess.run([sys.executable, "-m", "hiabp_tf.evaluate", f"--workdir={workdir}"], cwd=REPO,
                            env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "is unreadable" in line]
    assert len(warnings) == 1 and "ckpt-6.data-00000-of-00001" in warnings[0] and "IndexError" in warnings[0]
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["step"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_resume_falls_back_keeps_the_damaged_files_and_ends_like_an_uninterrupted_run(runs, tmp_path, damage, caplog):
    """Resuming past a damaged ckpt-6 continues from step 4 (input position and noise come with the
    checkpoint), so step 8 has the weights of the uninterrupted run; the damaged files are moved,
    byte for byte, into checkpoints/unreadable/ (the manager saves a new ckpt-6 beside them)."""
    workdir = _damaged_copy(runs, tmp_path, damage)
    checkpoints = os.path.join(workdir, "checkpoints")
    damaged = {name: open(os.path.join(checkpoints, name), "rb").read()
               for name in ("ckpt-6.index", "ckpt-6" + DATA_FILE) if os.path.exists(os.path.join(checkpoints, name))}
    timing = {}
    with caplog.at_level(logging.WARNING):
        model = _train(workdir, 8, timing=timing)
    assert len(_unreadable_warnings(caplog)) == 1
    assert timing["steps"] == 4  # from step 4 to step 8
    _assert_same_weights(model, hiabp_tf.load(runs["at8"]).network)
    aside = os.path.join(checkpoints, workdir_lib.UNREADABLE_DIR)
    kept = {name: open(os.path.join(aside, name), "rb").read() for name in os.listdir(aside)} if damaged else {}
    assert kept == damaged
    state = tf.train.get_checkpoint_state(checkpoints)
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["ckpt-4", "ckpt-6", "ckpt-8"]
    assert hiabp_tf.load(workdir).step == 8


def test_no_readable_checkpoint_is_one_error_listing_the_files_tried(runs, tmp_path):
    """Every checkpoint truncated: evaluate and training both refuse, naming each checkpoint tried;
    training moves nothing."""
    workdir = _damaged_copy(runs, tmp_path, "truncated", steps=(2, 4, 6))
    checkpoints = os.path.join(workdir, "checkpoints")
    before = _snapshot(checkpoints)
    with pytest.raises(errors.WorkdirError) as error:
        evaluate.evaluate(workdir)
    message = str(error.value)
    assert f"--workdir={workdir}: none of its checkpoints can be read" in message
    assert all(f"ckpt-{n} (IndexError" in message for n in (2, 4, 6))
    with pytest.raises(errors.WorkdirError, match="none of its checkpoints can be read"):
        _train(workdir, 8)
    assert _snapshot(checkpoints) == before


@pytest.mark.slow
def test_an_unreadable_checkpoint_index_falls_back_to_the_files_beside_it(runs, tmp_path, caplog):
    """An emptied `checkpoint` index: readers restore the newest checkpoint file found; training
    resumes from it, keeping the bad index in checkpoints/unreadable/ and writing a new one."""
    workdir = str(tmp_path / "run")
    shutil.copytree(runs["at6"], workdir)
    index = os.path.join(workdir, "checkpoints", "checkpoint")
    open(index, "w").close()
    with caplog.at_level(logging.WARNING):
        assert hiabp_tf.load(workdir).step == 6
    assert any("checkpoint index" in r.getMessage() and index in r.getMessage() for r in caplog.records)
    timing = {}
    model = _train(workdir, 8, timing=timing)
    assert timing["steps"] == 2
    _assert_same_weights(model, hiabp_tf.load(runs["at8"]).network)
    assert os.path.getsize(os.path.join(workdir, "checkpoints", workdir_lib.UNREADABLE_DIR, "checkpoint")) == 0
    assert os.path.basename(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))) == "ckpt-8"


# ----------------------------------------------------------------------------------------- seeds

@pytest.mark.parametrize("seed", [-1, 2**31, 99999999999999999999])
def test_a_training_seed_outside_its_range_is_refused(seed):
    with pytest.raises(errors.ConfigError, match=rf"^--seed={seed} must be an integer in 0\.\.2147483647"):
        config_lib.RunConfig(**TINY, seed=seed)


@pytest.mark.slow
def test_the_largest_seed_trains_evaluates_and_draws(runs, tmp_path):
    """2**31 - 1, the top of every --seed's range, works for training, evaluate and disentangle."""
    timing = {}
    _train(tmp_path / "run", 1, timing=timing, seed=config_lib.SEED_MAX)
    assert timing["steps"] == 1
    assert evaluate.evaluate(runs["at4"], seed=config_lib.SEED_MAX)["seed"] == config_lib.SEED_MAX
    paths = disentangle.disentangle(runs["at4"], str(tmp_path / "fig"), rows=1, cols=2,
                                    seed=config_lib.SEED_MAX)
    assert all(os.path.isfile(p) for p in paths)
    for bad in (-1, 2**31):
        with pytest.raises(errors.ConfigError, match=rf"--seed={bad} must be an integer in 0\.\.2147483647"):
            evaluate.evaluate(runs["at4"], seed=bad)
        with pytest.raises(errors.ConfigError, match=rf"--seed={bad} must be an integer"):
            disentangle.disentangle(runs["at4"], str(tmp_path / "bad"), seed=bad)


@pytest.mark.slow
def test_seed_on_the_command_line_is_one_error_line(tmp_path):
    """The issue's reproduction: --seed=99999999999999999999 is an `error:`, exit status 2."""
    workdir = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "hiabp_tf.train", "--seed=99999999999999999999",
                             f"--workdir={workdir}", "--num_steps=1"], cwd=REPO, env=ENV, capture_output=True,
                            text=True)
    assert result.returncode == 2
    assert "error: --seed=99999999999999999999 must be an integer in 0..2147483647" in result.stderr
    assert "Traceback" not in result.stderr and not workdir.exists()


def test_api_seeds_are_any_int32_and_nothing_else():
    """The API's seed= is the SavedModel's int32 seed: an int s is [s, 0], a pair is itself."""
    top, bottom = 2**31 - 1, -2**31
    assert api.as_seed(top).numpy().tolist() == [top, 0]
    assert api.as_seed(bottom).numpy().tolist() == [bottom, 0]
    assert api.as_seed([top, bottom]).numpy().tolist() == [top, bottom]
    assert api.as_seed(np.array([top, bottom], np.int64)).numpy().tolist() == [top, bottom]
    for bad in (2**31, bottom - 1, [0, 2**31], (2**70, 0), np.array([2**40, 0])):
        with pytest.raises(ValueError, match=r"out of range: .* integer in -2147483648\.\.2147483647"):
            api.as_seed(bad)
    for bad in ("zero", [1.5, 2.0], [1, 2, 3], True):
        with pytest.raises(TypeError, match="seed must be None, an int or a pair of ints"):
            api.as_seed(bad)

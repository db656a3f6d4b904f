"""Issue 22, class 2: a resumed run whose settings changed. A resume with a setting that changes the
model's training is refused, naming the flags and both values, unless --allow_config_change; then
sittings.json keeps each sitting's settings. Settings that do not change the training (num_steps,
cadences, eval_examples, keep_checkpoints, precision) stay changeable, and identical settings resume
silently."""

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest

from hiabp_tf import config as config_lib
from hiabp_tf import train
from hiabp_tf.checks import errors
from hiabp_tf.runtime import sittings
from hiabp_tf.runtime import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
TINY = dict(dataset="mnist_5k", num_layers=2, latent_dims=(4, 4), width=4, batch_size=100, langevin_steps=2)
TINY_FLAGS = ["--dataset=mnist_5k", "--num_layers=2", "--latent_dims=4,4", "--width=4", "--batch_size=100",
              "--langevin_steps=2"]
SHAPE = (28, 28, 1)


def _snapshot(folder):
    """Every file of the run with its size and modification time (train.lock names whoever tried last)."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in set(names) - {workdir_lib.LOCK_FILE}:
            st = os.stat(os.path.join(root, name))
            out[os.path.relpath(os.path.join(root, name), folder)] = (st.st_size, st.st_mtime_ns)
    return out


def _train(workdir, steps, **kwargs):
    overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in config_lib.RunConfig.__dataclass_fields__}
    return train.train(config_lib.RunConfig(**{**TINY, **overrides}), str(workdir), steps,
                       **{**dict(log_every=100, eval_every=10**6, eval_examples=10, checkpoint_every=2), **kwargs})


def test_a_changed_setting_is_refused_naming_the_flags_and_both_values(tmp_path):
    """The issue's --sigma=1.0 --learning_rate=0.01, and my own: T, the test-time T (unset -> 5) and
    the Langevin clip; config.json stays as it was."""
    workdir = str(tmp_path)
    workdir_lib.prepare_workdir(workdir, config_lib.RunConfig(**TINY), SHAPE, 4000)
    with open(tmp_path / workdir_lib.CONFIG_FILE, "rb") as f:
        recorded = f.read()
    cases = [(dict(sigma=1.0, learning_rate=0.01),
              r"--sigma=0\.3 --learning_rate=0\.0003 \(config\.json\), but this command asks for "
              r"--sigma=1\.0 --learning_rate=0\.01\..*--allow_config_change"),
             (dict(langevin_steps=30), "--langevin_steps=2 .*asks for --langevin_steps=30"),
             (dict(eval_langevin_steps=5), "--eval_langevin_steps unset .*asks for --eval_langevin_steps=5"),
             (dict(langevin_clip=1.0), "--langevin_clip unset .*asks for --langevin_clip=1.0")]
    for overrides, expected in cases:
        with pytest.raises(errors.WorkdirError, match=rf"^--workdir={workdir} was trained with {expected}"):
            workdir_lib.prepare_workdir(workdir, config_lib.RunConfig(**{**TINY, **overrides}), SHAPE, 4000)
        with open(tmp_path / workdir_lib.CONFIG_FILE, "rb") as f:
            assert f.read() == recorded
    # The same settings (a new RunConfig of the same flags) resume, and say nothing.
    assert workdir_lib.prepare_workdir(workdir, config_lib.RunConfig(**TINY), SHAPE, 4000) == {}


def test_allowed_changes_are_returned_and_written(tmp_path, caplog):
    workdir = str(tmp_path)
    workdir_lib.prepare_workdir(workdir, config_lib.RunConfig(**TINY), SHAPE, 4000)
    new = config_lib.RunConfig(**{**TINY, "sigma": 1.0})
    with caplog.at_level(logging.WARNING):
        changes = workdir_lib.prepare_workdir(workdir, new, SHAPE, 4000, allow_config_change=True)
    assert changes == {"sigma": (0.3, 1.0)} and "sigma=0.3 -> 1.0" in caplog.text
    assert workdir_lib.load_run(workdir)[0] == new
    # A change of networks stays refused, flag or not: the checkpoints could not be restored.
    with pytest.raises(errors.WorkdirError, match="cannot be resumed with these flags"):
        workdir_lib.prepare_workdir(workdir, config_lib.RunConfig(**{**TINY, "width": 8}), SHAPE, 4000,
                                    allow_config_change=True)


def test_the_summary_of_sittings_says_which_settings_changed(tmp_path):
    workdir = str(tmp_path / "run_a")
    os.makedirs(workdir)
    base = dict(machine="m", precision="float32", seconds=10.0)
    sittings.record(workdir, dict(base, started="t1", from_step=0, to_step=10))
    sittings.record(workdir, dict(base, started="t2", from_step=10, to_step=10, seconds=0.0,
                                  changed={"sigma": [0.3, 1.0]}))  # recorded before its first step...
    assert sittings.summary([workdir]).startswith("training summed over 1 run: 10 s in 1 sitting on m")
    sittings.record(workdir, dict(base, started="t2", from_step=10, to_step=20, changed={"sigma": [0.3, 1.0]}))
    text = sittings.summary([workdir])
    assert "20 s in 2 sittings" in text and text.endswith("; settings changed on resuming: run_a at step 10 "
                                                          "(sigma 0.3 -> 1.0)")


@pytest.mark.slow
def test_a_resumed_run_keeps_its_record(tmp_path, caplog):
    """Trained 2 steps; resumed with --sigma/--learning_rate changed: refused, nothing written. Then
    resumed with the same settings and other bookkeeping (num_steps, cadences, eval_examples,
    keep_checkpoints): silently. Then with --allow_config_change: sittings.json says how each
    sitting trained, config.json how the run trains now."""
    workdir = tmp_path / "run"
    _train(workdir, 2)
    before = _snapshot(workdir)
    with pytest.raises(errors.WorkdirError, match=r"--sigma=0\.3 --learning_rate=0\.0003 .* --sigma=1\.0"):
        _train(workdir, 4, sigma=1.0, learning_rate=0.01)
    assert _snapshot(workdir) == before
    with caplog.at_level(logging.WARNING):
        _train(workdir, 4, log_every=1, eval_every=3, eval_examples=20, checkpoint_every=1, keep_checkpoints=5)
    assert "changed settings" not in caplog.text and "was trained with" not in caplog.text
    _train(workdir, 6, sigma=1.0, learning_rate=0.01, allow_config_change=True)
    recorded = sittings.read(str(workdir))
    assert [(s["from_step"], s["to_step"]) for s in recorded] == [(0, 2), (2, 4), (4, 6)]
    assert [(s["settings"]["sigma"], s["settings"]["learning_rate"]) for s in recorded] == [
        (0.3, 3e-4), (0.3, 3e-4), (1.0, 0.01)]
    assert recorded[-1]["changed"] == {"sigma": [0.3, 1.0], "learning_rate": [3e-4, 0.01]}
    assert "changed" not in recorded[0] and "changed" not in recorded[1]
    config, _, _ = workdir_lib.load_run(str(workdir))
    assert (config.sigma, config.learning_rate) == (1.0, 0.01)
    # Resuming now with the first settings is a change again, the other way.
    with pytest.raises(errors.WorkdirError, match=r"was trained with --sigma=1\.0 --learning_rate=0\.01"):
        _train(workdir, 8)


@pytest.mark.slow
def test_a_workdir_of_todays_code_resumes_and_the_command_line_refuses_a_change(tmp_path):
    """A workdir whose sittings.json has no settings (written before they were recorded; config.json
    as today) resumes with its flags; on the command line a changed setting is one `error:` line."""
    workdir = tmp_path / "run"
    _train(workdir, 2)
    path = workdir / sittings.SITTINGS_FILE
    old = [{k: v for k, v in s.items() if k != "settings"} for s in json.loads(path.read_text())]
    path.write_text(json.dumps(old))
    _train(workdir, 3)
    assert [s.get("settings", {}).get("sigma") for s in sittings.read(str(workdir))] == [None, 0.3]
    before = _snapshot(workdir)
    done = subprocess.run([sys.executable, "-m", "hiabp_tf.train", f"--workdir={workdir}", "--num_steps=4",
                           *TINY_FLAGS, "--sigma=1.0", "--learning_rate=0.01"], cwd=REPO, env=ENV,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (f"error: --workdir={workdir} was trained with --sigma=0.3 --learning_rate=0.0003 (config.json), but "
            "this command asks for --sigma=1.0 --learning_rate=0.01.") in done.stderr
    assert _snapshot(workdir) == before


@pytest.mark.slow
def test_the_oldest_workdir_format_resumes_with_its_own_settings(tmp_path):
    """tests/fixtures/workdir_v1 (written by the flat-package version) resumes with the settings of
    its config.json: nothing in it reads as a change."""
    workdir = tmp_path / "v1"
    shutil.copytree(os.path.join(REPO, "tests", "fixtures", "workdir_v1"), workdir)
    config, _, _ = workdir_lib.load_run(str(workdir))
    model = train.train(config, str(workdir), 3, log_every=100, eval_every=10**6, eval_examples=10)
    assert int(model.generator_optimizer.iterations.numpy()) == 3

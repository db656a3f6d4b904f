"""Issue 38, class 3: every file the project reads back (record.json, shipped.json, sittings.json,
learning_curve.jsonl, config.json, the run lock, the folders training writes) is validated where it is
read: one user error naming the file and what to do, never a traceback, and a record that cannot be
read stops the plan instead of being retrained over."""

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest

from hiabp_tf import config as config_lib
from hiabp_tf.checks import errors
from hiabp_tf.experiments import plan
from hiabp_tf.experiments import records
from hiabp_tf.experiments import run as runner
from hiabp_tf.runtime import sittings
from hiabp_tf.runtime import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "workdir_v1")
SHIPPED = os.path.join(REPO, "results", "cpu", "models", "mnist_vae")


def _record(tmp_path, text):
    folder = tmp_path / "results" / "cpu" / "runs" / "mnist_vae_seed1"
    folder.mkdir(parents=True)
    if text is None:
        (folder / "record.json").mkdir()
    else:
        (folder / "record.json").write_text(text)
    return str(folder)


@pytest.mark.parametrize("text", ['{"step": 35', None, '{"step": "3500"}', "[]", '{"step": 3500, "model": 7}',
                                  '{"step": NaN}'])
def test_a_record_that_cannot_be_read_stops_the_plan(tmp_path, text):
    """The issue's corrupt record.json read as an unfinished run (retrained for hours over it, and left
    out of Table 1 by --report_only without a word); of my own: a folder, a string step, a list, a
    model that is a number, NaN."""
    record = _record(tmp_path, text)
    for read in (records.recorded_step, records.diverged, records.shipped_model):
        with pytest.raises(errors.WorkdirError, match=r"record\.json is unreadable|record\.json is a folder"):
            read(record)
    run = {r.name: r for r in plan.runs("table1", "cpu")}["mnist_vae_seed1"]
    with pytest.raises(errors.WorkdirError, match="delete .* to train the run again|move it aside"):
        runner.recorded("cpu", run, str(tmp_path / "results"), os.path.join(REPO, "flags"))
    assert records.recorded_step(str(tmp_path)) is None  # no record.json: no record, as before


def test_a_shipped_model_without_a_readable_shipped_json_is_one_error(tmp_path):
    """The issue: shipped.json missing or corrupt gave a traceback in evaluate, load, export and
    inpaint (all of which restore through workdir.restore); of my own: a negative step, a folder."""
    if not os.path.isdir(SHIPPED):
        pytest.skip("no shipped model")
    model = tmp_path / "model"
    shutil.copytree(SHIPPED, model)
    for change, match in ((lambda p: os.remove(p), "without their shipped.json"),
                          (lambda p: open(p, "w").write('{"step": '), "shipped.json is unreadable"),
                          (lambda p: open(p, "w").write('{"step": -1}'), "integer \"step\""),
                          (lambda p: os.remove(p) or os.mkdir(p), "shipped.json is a folder")):
        path = str(model / "shipped.json")
        if os.path.isdir(path):
            os.rmdir(path)
        elif os.path.exists(path):
            os.remove(path)
        shutil.copy(os.path.join(SHIPPED, "shipped.json"), path)
        change(path)
        with pytest.raises(errors.WorkdirError, match=match):
            workdir_lib.restore(str(model))


def test_sittings_that_are_not_sittings_are_unreadable_not_a_traceback(tmp_path, caplog):
    """The issue's {"from_step": null}; of my own: seconds as text, a changed setting that is no pair.
    Each file is named in a warning, not counted, and kept aside when the next sitting is recorded."""
    good = {"started": "a", "from_step": 0, "to_step": 5, "seconds": 1.0}
    for bad in ({**good, "from_step": None}, {**good, "seconds": "1"}, {**good, "changed": {"sigma": 1}}):
        folder = tmp_path / str(len(os.listdir(tmp_path)))
        folder.mkdir()
        (folder / "sittings.json").write_text(json.dumps([good, bad]))
        with caplog.at_level(logging.WARNING):
            assert sittings.read(str(folder)) == []
            assert sittings.summary([str(folder)]) == ""
        assert "sittings.json is unreadable" in caplog.text
        sittings.record(str(folder), {**good, "started": "b"})
        assert [s["started"] for s in sittings.read(str(folder))] == ["b"]
        assert any(name.startswith("sittings.json.unreadable") for name in os.listdir(folder))


@pytest.mark.parametrize("line", ["42", '{"no_step": 1}', '{"step": "5"}', "[1, 2]", "null"])
def test_learning_curve_lines_that_are_not_evaluations_name_the_file_and_line(tmp_path, line):
    (tmp_path / "learning_curve.jsonl").write_text('{"step": 1, "mse_E": 0.1}\n' + line + "\n")
    with pytest.raises(errors.WorkdirError, match=r"learning_curve\.jsonl, line 2, is not an evaluation record"):
        workdir_lib.read_learning_curve(str(tmp_path))


def test_a_line_cut_short_by_a_crash_is_still_skipped(tmp_path):
    (tmp_path / "learning_curve.jsonl").write_text('{"step": 1, "mse_E": 0.1}\n{"step": 2, "mse_E"')
    assert workdir_lib.read_learning_curve(str(tmp_path)) == [{"step": 1, "mse_E": 0.1}]


def test_files_and_folders_of_the_wrong_kind_are_named(tmp_path):
    """The issue: config.json, learning_curve.jsonl or tensorboard of the wrong kind gave tracebacks; a
    train.lock that is a folder was reported without naming it. Of my own: checkpoints a file, and the
    readers (load_run, read_learning_curve) as well as the writers."""
    config = config_lib.RunConfig(latent_dims=(4,), width=4)
    cases = {"config.json": (True, "config.json is a folder"), "learning_curve.jsonl": (True, "is a folder"),
             "tensorboard": (False, "tensorboard is a file, where the summaries must be a folder"),
             "checkpoints": (False, "checkpoints is a file")}
    for name, (make_folder, match) in cases.items():
        workdir = tmp_path / name.replace(".", "_")
        workdir.mkdir()
        (workdir / name).mkdir() if make_folder else (workdir / name).write_text("x")
        with pytest.raises(errors.WorkdirError, match=match):
            workdir_lib.prepare_workdir(str(workdir), config, (28, 28, 1), 4000)
    with pytest.raises(errors.WorkdirError, match="config.json is a folder"):
        workdir_lib.load_run(str(tmp_path / "config_json"))
    with pytest.raises(errors.WorkdirError, match="learning_curve.jsonl is a folder"):
        workdir_lib.read_learning_curve(str(tmp_path / "learning_curve_jsonl"))
    with pytest.raises(errors.WorkdirError, match="learning_curve.jsonl is a folder"):
        workdir_lib.append_learning_curve(str(tmp_path / "learning_curve_jsonl"), {"step": 1})
    (tmp_path / "lock" / "train.lock").mkdir(parents=True)
    with pytest.raises(errors.WorkdirError, match=r"lock/train\.lock is a folder, where the run lock must be a file"):
        with workdir_lib.training_lock(str(tmp_path / "lock")):
            pass


@pytest.mark.slow
def test_the_commands_end_on_one_error_line(tmp_path):
    """evaluate and export on a shipped model with a corrupt shipped.json, and training into a workdir whose
    tensorboard is a file: one `error:` line naming the file, exit status 2, no traceback."""
    if not os.path.isdir(SHIPPED):
        pytest.skip("no shipped model")
    model = tmp_path / "model"
    shutil.copytree(SHIPPED, model)
    (model / "shipped.json").write_text("{")
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "tensorboard").write_text("x")
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for args, name in ((["hiabp_tf.evaluate", f"--workdir={model}"], "shipped.json"),
                       (["hiabp_tf.export", f"--workdir={model}", f"--out={tmp_path / 'exported'}"], "shipped.json"),
                       (["hiabp_tf.train", f"--workdir={workdir}", "--num_steps=1", "--width=4", "--latent_dims=4"],
                        "tensorboard")):
        done = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert "error: " in done.stderr and name in done.stderr.split("error: ", 1)[1]

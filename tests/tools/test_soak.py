"""The soak script's log reading (the soak itself runs as `python -m hiabp_tf.tools.soak`)."""

import os

import pytest

from hiabp_tf.tools import soak

LOG = """I1124 08:00:00.0 1 train.py:150] Resumed from runs/x/checkpoints/ckpt-65 at step 65.
I1124 08:00:01.0 1 train.py:160] Training hiabp (L=2, latent dims [8, 8]) on mnist_5k for 200 steps.
I1124 08:00:02.0 1 train.py:170] step 66/200  3.1 steps/s  ETA 0m43s  generator_loss=400
I1124 08:00:03.0 1 train.py:170] step 67/200  3.1 steps/s  ETA 0m43s  generator_loss=399
I1124 08:00:04.0 1 train.py:180] step 100: test mse_E=0.1  (100 examples)
"""


def test_log_reading():
    """The last training step, the resume point, a fresh start and a kill during start-up."""
    assert soak._last_step(LOG) == 67
    assert soak._resumed_from(LOG) == 65
    fresh = LOG.split("\n", 1)[1]
    assert soak._resumed_from(fresh) == 0
    assert soak._resumed_from("I1124 loading...\n") is None and soak._last_step("") == 0


def test_kill_plan_mixes_random_steps_and_checkpoint_saves():
    import random
    plan = soak.kill_plan(random.Random(0), kills=5, save_kills=2, num_steps=200, checkpoint_every=5)
    steps = [step for step, _ in plan]
    assert steps == sorted(steps) and len(set(steps)) == 7 and all(0 < s < 200 for s in steps)
    saves = [step for step, kind in plan if kind == "save"]
    assert len(saves) == 2 and all(s % 5 == 0 for s in saves)


def test_what_a_kill_during_a_save_left():
    outcome = soak.save_kill_outcome
    assert outcome({"ckpt-60_temp", "ckpt-55.index"}, "ckpt-60", False) == "while writing ckpt-60 (its temporary files)"
    assert outcome({"ckpt-60.index", "ckpt-60.data-00000-of-00001"}, "ckpt-60", False).startswith(
        "after writing ckpt-60, before the checkpoint index")
    assert outcome({"ckpt-60.index"}, "ckpt-60", True).startswith("just after the save")


def test_corrupting_the_newest_checkpoint(tmp_path):
    """The newest checkpoint of the index is the one truncated, to half its size."""
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-10"\nall_model_checkpoint_paths: "ckpt-5"\n'
                                         'all_model_checkpoint_paths: "ckpt-10"\n')
    for n in (5, 10):
        (tmp_path / f"ckpt-{n}.data-00000-of-00001").write_bytes(bytes(range(100)))
        (tmp_path / f"ckpt-{n}.index").write_bytes(b"index")
    done = soak._corrupt_newest(str(tmp_path))
    assert done["checkpoint"] == "ckpt-10" and (done["size"], done["truncated_to"]) == (100, 50)
    assert (tmp_path / "ckpt-10.data-00000-of-00001").read_bytes() == bytes(range(50))
    assert (tmp_path / "ckpt-5.data-00000-of-00001").read_bytes() == bytes(range(100))
    assert soak._index_lists(str(tmp_path), "ckpt-5") and not soak._index_lists(str(tmp_path), "ckpt-15")


def _result(kept=True, refused=2):
    scores = {"mse_E": 0.1, "mse_EL": 0.09, "step": 20}
    events = [{"run": 1, "kind": "random", "target": 7, "returncode": -9, "resumed_from": 0, "reached": 7,
               "outcome": None, "warnings": []},
              {"run": 2, "kind": "save", "target": 15, "returncode": -9, "resumed_from": 5, "reached": 15,
               "outcome": "while writing ckpt-15 (its temporary files)", "warnings": []},
              {"run": 3, "kind": None, "target": None, "returncode": 0, "resumed_from": 5, "reached": 20,
               "outcome": None, "warnings": ["Checkpoint /w/killed/checkpoints/ckpt-10 (...) is unreadable (...)"]}]
    return {"reference": scores, "soaked": dict(scores), "events": events, "redone": 12, "restore_ok": True,
            "restored": ["ckpt-20", "20"], "reference_seconds": 3.0, "workdir": "/w",
            "second": {"returncode": refused, "error": "error: --workdir=/w/killed is in use: process 1 on h",
                       "names_pid": True, "untouched": True},
            "corruption": {"checkpoint": "ckpt-10", "file": "ckpt-10.data-00000-of-00001", "size": 100,
                           "truncated_to": 50, "kept": kept, "aside": ["ckpt-10.data-00000-of-00001"]}}


def test_report_says_nothing_was_lost_only_when_every_check_passed(tmp_path):
    settings = dict(kills=1, save_kills=1, num_steps=20, checkpoint_every=5, seed=0, corrupt=True,
                    second_training=True)
    path = str(tmp_path / "reliability.md")
    assert soak.write_report(path, _result(), settings)
    text = open(path).read()
    assert "Nothing was lost." in text and "killed during a save: while writing ckpt-15" in text
    assert "refused (exit status 2" in text and "`error: --workdir=killed is in use" in text
    assert "fell back to step 5 and finished" in text and "kept byte for byte" in text
    assert "--save_kills=1" in text and "--corrupt" in text
    for broken in (_result(kept=False), _result(refused=0)):
        assert not soak.write_report(path, broken, settings)
        assert "SOMETHING WAS LOST OR NOT REFUSED" in open(path).read()


def _with_faults(stop_ok=True, full=None):
    result = _result()
    result["stop"] = {"run": 2, "step": 15, "returncode": 143 if stop_ok else -9, "seconds": 1.5, "saved": True,
                      "recorded": False, "needed": True, "evaluated_on_resume": True}
    result["disk_full"] = full if full is not None else {
        "run": 3, "returncode": 2, "one_line": True, "size": 3 * 2**20, "checkpoint_bytes": 2**21,
        "error": "error: no space left on the device (/w/killed/checkpoints/ckpt-20_temp/part; No space left on "
                 "device). Nothing finished was lost: the latest checkpoint of --workdir=/w/killed, ckpt-15 (step 15), "
                 "is intact", "before": "ckpt-15", "after": "ckpt-15", "unfinished": [], "resumed_from_kept": True}
    result.update(curves_match=True, curve_steps=[10, 20], load=(3.2, 3.5, 2))
    return result


def test_report_of_the_stop_and_disk_full_faults(tmp_path):
    settings = dict(kills=1, save_kills=1, num_steps=20, checkpoint_every=5, eval_every=10, seed=0, corrupt=True,
                    second_training=True, stop_during_eval=True, disk_full=True)
    path = str(tmp_path / "reliability.md")
    assert soak.write_report(path, _with_faults(), settings)
    text = open(path).read()
    assert "Stop during an evaluation: SIGTERM on the progress line of step 15" in text
    assert "exited with status 143 1.5 s later, the evaluation not recorded, ckpt-15 saved; run 3 evaluated step 15" \
        in text
    assert "Full disk: run 3 had its workdir on a 3.0 MiB tmpfs" in text and "one error line, no traceback" in text
    assert "the latest checkpoint stayed ckpt-15, no unfinished save left; run 4 resumed from it" in text
    assert "`error: no space left on the device (killed/checkpoints/ckpt-20_temp" in text
    assert "identical in both runs" in text and "shared with other work" in text and "Nothing was lost." in text
    broken_full = dict(_with_faults()["disk_full"], after="ckpt-10")
    broken_curves = dict(_with_faults(), curves_match=False)
    not_redone = _with_faults()
    not_redone["stop"]["evaluated_on_resume"] = False
    for broken in (_with_faults(stop_ok=False), _with_faults(full=broken_full), broken_curves, not_redone):
        assert not soak.write_report(path, broken, settings)
    skipped = _with_faults(full={"skipped": "cannot mount a small file system here", "run": 3})
    assert soak.write_report(path, skipped, settings)
    assert "Full disk: not run: cannot mount a small file system here." in open(path).read()


def test_the_kills_can_be_kept_to_the_start_of_the_run():
    import random
    plan = soak.kill_plan(random.Random(1), kills=5, save_kills=2, num_steps=100, checkpoint_every=5, horizon=60)
    assert all(0 < step < 60 for step, _ in plan) and len(plan) == 7


@pytest.mark.slow
def test_a_run_on_a_small_file_system_sees_a_full_disk_and_leaves_the_workdir_as_it_ended(tmp_path):
    """_disk_full_run with a command that fills the disk (no training): the tmpfs is mounted over the
    workdir in a private namespace, the run's files are copied back, the real disk was never full."""
    workdir = tmp_path / "killed"
    (workdir / "checkpoints").mkdir(parents=True)
    (workdir / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n')
    (workdir / "checkpoints" / "ckpt-5.data-00000-of-00001").write_bytes(b"x" * 2**20)
    fill = ["sh", "-c", f"echo started > {workdir}/marker; head -c 50000000 /dev/zero > {workdir}/checkpoints/ckpt-10"
                        "_temp || { echo 'error: no space left' >&2; exit 2; }"]
    full = soak._disk_full_run(fill, str(workdir))
    if "skipped" in full:
        pytest.skip(full["skipped"])
    assert full["returncode"] == 2 and full["one_line"] and full["error"] == "error: no space left"
    assert (workdir / "marker").read_text() == "started\n"  # the run's own files came back
    assert full["before"] == full["after"] == "ckpt-5" and full["unfinished"] == ["ckpt-10_temp"]
    assert os.path.getsize(workdir / "checkpoints" / "ckpt-10_temp") < full["size"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".disk_full-")]


def _with_damaged(case_ok=True, cache_kept=True):
    result = _with_faults()
    case = {"file": "record.json", "damage": '{"step": 35', "command": "hiabp_tf.evaluate --workdir=case1",
            "returncode": 2, "error": "error: /w/damaged/case1/record.json is unreadable (JSONDecodeError: ...)",
            "changed": [], "expected": "error", "ok": case_ok}
    result["damaged"] = {"cases": [case], "cache": {"returncodes": [0, 0, 0], "rebuilt": True, "same": True,
                                                     "results": 2, "first_kept": cache_kept, "tracebacks": 0}}
    return result


def test_report_of_the_damaged_files(tmp_path):
    """Issue 38: the files read back, damaged one at a time, each in a row; a wrong outcome or a lost first
    result makes the report say so."""
    settings = dict(kills=1, save_kills=1, num_steps=20, checkpoint_every=5, eval_every=10, seed=0, corrupt=True,
                    second_training=True, stop_during_eval=True, disk_full=True, damaged_files=True)
    path = str(tmp_path / "reliability.md")
    assert soak.write_report(path, _with_damaged(), settings)
    text = open(path).read()
    assert "Damaged files (after the last run" in text and "1 of 1 handled as they must be" in text
    assert "| record.json | {\"step\": 35 | `hiabp_tf.evaluate --workdir=case1` | 2 | right: `error: damaged/case1" \
        in text
    assert "the first was kept byte for byte." in text and "--damaged_files" in text
    for broken in (_with_damaged(case_ok=False), _with_damaged(cache_kept=False)):
        assert not soak.write_report(path, broken, settings)
    assert soak.write_report(path, dict(_with_damaged(), damaged={"skipped": "shipping failed"}), settings)
    assert "Damaged files: not run: shipping failed." in open(path).read()

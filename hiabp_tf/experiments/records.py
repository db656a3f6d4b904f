"""Run records: what the reports read of a finished run, committed under results/, so that a table
built over several sessions (or machines) keeps every finished run although runs/ is not committed.

Knows a workdir's files (runtime): which to keep, and its step; knows nothing of the plan, the runs'
fields or the reports.

A record, results/<scale>/runs/<name>/, holds a finished run's small files: config.json,
sittings.json, learning_curve.jsonl, every eval_*.json and evaluate*.out (tens of kilobytes, no
checkpoints) and record.json (the run's step, its workdir, and the shipped model that stands in for
its checkpoints when there is one, results/<scale>/models/<name>). `./run.sh` writes a run's record
once it is trained and evaluated, never retrains a run that has one (delete the record to retrain),
and reports read the record when runs/ lacks the run. `python -m hiabp_tf.experiments.records
WORKDIR...` records finished workdirs by hand (`python -m hiabp_tf.experiments.run --rebuild_records SCALE
NAME...` rebuilds the record of a run whose workdir is lost, from its shipped model).

Knows the workdir and its files (runtime), not the plan, the runs or the reports: `run` writes records
and the reports read them.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys

from hiabp_tf.runtime import sittings
from hiabp_tf.runtime import workdir as workdir_lib

RECORD_FILE = workdir_lib.RECORD_FILE
SCALES = ("cpu", "paper")  # the quick scale's runs take minutes: retrained rather than recorded
_FILES = (workdir_lib.CONFIG_FILE, sittings.SITTINGS_FILE, workdir_lib.LEARNING_CURVE_FILE)
_PATTERNS = ("eval_*.json", "evaluate.out", "evaluate.*.out")


def record_dir(scale: str, name: str, results_root: str = "results") -> str:
    return os.path.join(results_root, scale, "runs", name)


def model_dir(scale: str, name: str, results_root: str = "results") -> str:
    return os.path.join(results_root, scale, "models", name)


def recorded_step(record: str) -> int | None:
    """The step a record was made at, or None if `record` is not a record (it has no record.json). A
    record.json that cannot be read is a WorkdirError naming it (`workdir.read_record`): read as no record,
    the plan would train the run again over it, and a table would leave it out without a word."""
    data = workdir_lib.read_record(record)
    return None if data is None else data["step"]


def diverged(record: str) -> str | None:
    """The error of a record of a run whose training diverged (`save_diverged`), else None."""
    data = workdir_lib.read_record(record)
    return str(data["diverged"]) if data and data.get("diverged") else None


def save_diverged(workdir: str, record: str, step: int, message: str) -> str:
    """Records a run whose training diverged at `step` (training here is deterministic, so a retry
    diverges again): its config and curve so far, and the error, which a table names beside the
    seeds it has. The plan counts the run as finished; delete the record to retry it."""
    return save(workdir, record, step, diverged=message)


def latest_step(workdir: str) -> int:
    """The step of a workdir's newest checkpoint (from its index, without restoring it)."""
    candidates, _ = workdir_lib.checkpoint_candidates(os.path.join(workdir, workdir_lib.CHECKPOINT_DIR))
    if not candidates:
        raise workdir_lib.WorkdirError(f"{workdir} has no checkpoint: train it before recording it.")
    return int(candidates[0].rsplit("-", 1)[1])


def save(workdir: str, record: str, step: int, model: str | None = None, source: str | None = None,
         **notes) -> str:
    """Writes (or replaces) the record of the finished `workdir` at `record`: its small files, copied
    into a temporary folder that then replaces the old record whole (an interrupted save leaves the
    old record, or none, never half of one). `model`: a shipped model of the run, if there is one;
    `source`: the run's workdir to name, if not `workdir` (a copy); `notes`: more entries of record.json."""
    files = [os.path.join(workdir, f) for f in _FILES if os.path.isfile(os.path.join(workdir, f))]
    files += sorted(p for pattern in _PATTERNS for p in glob.glob(os.path.join(workdir, pattern)))
    if not any(os.path.basename(f) == workdir_lib.CONFIG_FILE for f in files):
        raise workdir_lib.WorkdirError(f"{workdir} has no {workdir_lib.CONFIG_FILE}: it is not a trained workdir, "
                                       "so there is nothing to record.")
    tmp = record.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for path in files:
        shutil.copy2(path, tmp)
    with open(os.path.join(tmp, RECORD_FILE), "w") as f:
        json.dump({"step": int(step), "workdir": source or workdir, "model": model, **notes}, f, indent=1)
    old = record.rstrip("/") + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.isdir(record):
        os.replace(record, old)
    os.replace(tmp, record)
    shutil.rmtree(old, ignore_errors=True)
    return record


def shipped_model(record: str) -> str | None:
    """The shipped model that stands in for a record's checkpoints, if it has one and it exists."""
    data = workdir_lib.read_record(record)
    model = data.get("model") if data else None
    return model if model and os.path.isfile(os.path.join(model, workdir_lib.WEIGHTS_FILE)) else None


def main(argv=None) -> int:
    """Records finished workdirs by hand: python -m hiabp_tf.experiments.records runs/cpu/NAME ..."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or any(a.startswith("-") for a in argv):
        print("usage: python -m hiabp_tf.experiments.records runs/SCALE/NAME ...  (writes results/SCALE/runs/NAME)",
              file=sys.stderr)
        return 2
    for workdir in argv:
        workdir = os.path.normpath(workdir)
        scale, name = os.path.basename(os.path.dirname(workdir)), os.path.basename(workdir)
        try:
            step = latest_step(workdir)
            model = model_dir(scale, name)
            print(save(workdir, record_dir(scale, name), step, model if os.path.isdir(model) else None))
        except workdir_lib.WorkdirError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

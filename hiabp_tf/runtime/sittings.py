"""A run's sittings: each training call that advanced it, recorded in <workdir>/sittings.json.

A run can be trained over several sessions and even machines (./run.sh resumes from checkpoints),
so a table's wall time cannot say what its runs cost. train.py records, at every checkpoint, when
its call started, the machine, the precision and the steps it took the run from and to, with the
seconds spent; `summary` turns the records of a table's runs into its provenance line. No
TensorFlow here: the runner reads these files between trainings.
"""

from __future__ import annotations

import json
import os

from absl import logging

SITTINGS_FILE = "sittings.json"


def record(workdir: str, sitting: dict) -> None:
    """Adds `sitting` ({"started", "machine", "precision", "from_step", "to_step", "seconds", and
    "settings", the run's settings in this sitting; "changed", {setting: [before, after]}, when the
    sitting resumed with other settings: --allow_config_change}) to <workdir>/sittings.json, or
    replaces the record of the same call (same "started"): a call killed after a checkpoint keeps
    the record of the steps it saved. Replaced atomically."""
    path = os.path.join(workdir, SITTINGS_FILE)
    if os.path.exists(path) and _load(path) is None:  # unreadable: kept aside, never overwritten
        aside = f"{path}.unreadable-{sitting['started']}".replace(":", "")
        os.replace(path, aside)
        logging.warning("Moved the unreadable %s to %s (kept intact); a new one starts with this sitting.", path, aside)
    sittings = [s for s in read(workdir) if s.get("started") != sitting["started"]]
    with open(path + ".tmp", "w") as f:
        json.dump(sittings + [sitting], f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def read(workdir: str) -> list[dict]:
    """The recorded sittings of `workdir`, oldest first; [] if none were recorded (a run trained
    before sittings were recorded) or the file is unreadable (a warning says so)."""
    path = os.path.join(workdir, SITTINGS_FILE)
    if not os.path.exists(path):
        return []
    sittings = _load(path)
    if sittings is None:
        logging.warning("%s is unreadable: its sittings are not counted.", path)
        return []
    return sorted((s for s in sittings if isinstance(s, dict) and {"from_step", "to_step", "seconds"} <= set(s)),
                  key=lambda s: s["from_step"])


def _load(path: str) -> list | None:
    """The list in sittings.json, or None if it cannot be read as one: not JSON, not a list, or an entry
    whose steps are not integers, seconds not a number, or changed settings not pairs (a file not written
    here, which the sums of a table's provenance would stop on)."""
    try:
        with open(path) as f:
            sittings = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(sittings, list) or not all(_valid(s) for s in sittings if isinstance(s, dict)):
        return None
    return sittings


def _valid(sitting: dict) -> bool:
    def integer(value):
        return isinstance(value, int) and not isinstance(value, bool)

    steps = [sitting[key] for key in ("from_step", "to_step") if key in sitting]
    seconds = sitting.get("seconds", 0)
    changed = sitting.get("changed") or {}
    pairs = isinstance(changed, dict) and all(isinstance(v, (list, tuple)) and len(v) == 2 for v in changed.values())
    return all(integer(step) for step in steps) and (integer(seconds) or isinstance(seconds, float)) and pairs


def summary(workdirs: list[str]) -> str:
    """One clause on what the runs' recorded sittings cost: training seconds summed over runs and
    sittings, how many sittings, on which machines and in which precisions, and which updates
    predate the records. "" when none of the runs has a record (results made before them)."""
    per_run = {workdir: read(workdir) for workdir in workdirs}
    # A sitting that changed the settings is recorded before its first step; if it saved none, it
    # trained nothing.
    recorded = [s for sittings in per_run.values() for s in sittings if s["to_step"] > s["from_step"]]
    if not recorded:
        return ""
    seconds = round(sum(s["seconds"] for s in recorded))
    machines = sorted({s.get("machine", "an unrecorded machine") for s in recorded})
    precisions = sorted({s.get("precision", "an unrecorded precision") for s in recorded})
    text = (f"training summed over {len(per_run)} run{'s' * (len(per_run) != 1)}: {seconds} s in {len(recorded)} "
            f"sitting{'s' * (len(recorded) != 1)} on {'; '.join(machines)}, in {' and '.join(precisions)}")
    unrecorded = [os.path.basename(os.path.normpath(w)) + (f" to step {s[0]['from_step']}" if s else " (all of it)")
                  for w, s in per_run.items() if not s or s[0]["from_step"] > 0]
    if unrecorded:
        text += f" (trained earlier without a record: {', '.join(unrecorded)})"
    changes = [f"{os.path.basename(os.path.normpath(w))} at step {s['from_step']} ("
               + ", ".join(f"{name} {old} -> {new}" for name, (old, new) in sorted(s["changed"].items())) + ")"
               for w, sittings in per_run.items() for s in sittings if s.get("changed")]
    if changes:
        text += f"; settings changed on resuming: {'; '.join(changes)}"
    return text

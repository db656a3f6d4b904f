"""A run's workdir: what train.py writes and evaluate.py (or any user) reads.

A workdir holds
    config.json          the RunConfig that trained it (networks, algorithm, data, seed)
    checkpoints/         tf.train.CheckpointManager checkpoints (step counter, networks, optimisers)
    tensorboard/         summaries
    learning_curve.jsonl the test scores of the evaluations during training, one JSON line each
    sittings.json        each training call ("sitting") that advanced the run: when, on what machine,
                         in what precision, from which step to which checkpointed step, in how long
    eval_*.json          results of evaluate.py, named by the data they scored (`dataset_slug`)
    train.lock           the run lock: held (flock) by the one training that writes the workdir
so a model can be rebuilt and scored from the workdir alone. Writes are atomic (a temporary file
renamed into place) and a damaged checkpoint is fallen back past, never deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import glob
import hashlib
import json
import os
import re
import socket
import tempfile
import time
import zipfile

from absl import logging
from google.protobuf.message import DecodeError
import keras
import numpy as np
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf import methods
from hiabp_tf.checks.errors import ConfigError
from hiabp_tf.checks.errors import WorkdirError
from hiabp_tf.data import spec as data_spec
from hiabp_tf.runtime import sittings

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
LEARNING_CURVE_FILE = "learning_curve.jsonl"
LOCK_FILE = "train.lock"
# Inside checkpoints/: the files of checkpoints a resumed training could not read, kept intact.
UNREADABLE_DIR = "unreadable"
# A shipped model (python -m hiabp_tf.serving.ship): the networks' weights in 16 bits instead of
# checkpoints/, and what it was shipped from (step, source, the full-precision scores).
WEIGHTS_FILE = "weights.npz"
SHIPPED_FILE = "shipped.json"
RECORD_FILE = "record.json"  # a finished run's record under results/ (experiments/records.py)


def path_problem(path: str) -> str | None:
    """Why `path` cannot be a folder, when it is not one for a reason worth naming (a symbolic link
    loop or to nothing, a file); None otherwise (a folder, or nothing there yet)."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symbolic link loop (it leads, through one or more links, back to itself)"
        if os.path.islink(path):
            return f"is a symbolic link to {os.readlink(path)}, which does not exist"
        return None
    return None if os.path.isdir(path) else "is a file, not a folder"


def check_slot(path: str, folder: bool = False, what: str = "") -> None:
    """A WorkdirError naming `path` when something of the wrong kind is there: a folder where a file belongs
    (or, `folder`, a file where a folder belongs). Nothing there is fine: it is written."""
    if not os.path.lexists(path) or os.path.isdir(path) == folder:
        return
    kind, belongs = ("a file", "a folder") if folder else ("a folder", "a file")
    raise WorkdirError(f"{path} is {kind}, where {what or os.path.basename(path)} must be {belongs}; move it "
                       "aside (nothing here deletes it), then rerun.")


def read_json_file(path: str, what: str, advice: str, check=None):
    """The JSON value of the file `path`, validated by `check(value)` (which returns a problem or None); a
    WorkdirError naming the file, what it holds (`what`) and what to do (`advice`) for a folder, a file
    that cannot be read or parsed, or a value `check` refuses. FileNotFoundError where nothing is there."""
    check_slot(path, what=what)
    try:
        with open(path) as f:
            value = json.load(f, parse_constant=_no_constant)
        problem = check(value) if check else None
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        problem = f"{type(e).__name__}: {e}"
    if problem:
        raise WorkdirError(f"{path} is unreadable ({problem}); it holds {what}. {advice}")
    return value


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_shipped(folder: str) -> dict:
    """A shipped model's shipped.json (`serving.ship`): a JSON object with its integer "step"; a
    WorkdirError naming the file for a missing or unreadable one."""
    path = os.path.join(folder, SHIPPED_FILE)
    advice = (f"Ship the model again (python -m hiabp_tf.serving.ship --workdir=RUN --out={folder}), or restore "
              "the file from where the model came from (git, a backup).")
    try:
        return read_json_file(path, "what the weights beside it were shipped from (its step, source, scores)",
                              advice, lambda v: None if isinstance(v, dict) and _is_int(v.get("step")) and
                              v["step"] >= 0 else "not an object with an integer \"step\"")
    except FileNotFoundError:
        raise WorkdirError(f"--workdir={folder} holds shipped weights ({WEIGHTS_FILE}) without their {SHIPPED_FILE}, "
                           f"which says what step they are of. {advice}") from None


def read_record(folder: str) -> dict | None:
    """A finished run's record.json (experiments/records.py): a JSON object with its integer "step", the
    shipped "model" standing in for its checkpoints (a path or null) and, for a diverged run, "diverged";
    None if `folder` has no record.json; a WorkdirError naming the file for one that cannot be read, so that
    nothing retrains over the run or leaves it out of a table without saying so."""

    def check(value):
        if not isinstance(value, dict) or not _is_int(value.get("step")) or value["step"] < 0:
            return "not an object with an integer \"step\""
        if not isinstance(value.get("model"), (str, type(None))) or not isinstance(value.get("diverged"),
                                                                                   (str, type(None))):
            return "\"model\" and \"diverged\" must be text or null"
        return None

    try:
        return read_json_file(os.path.join(folder, RECORD_FILE), f"the record of a finished run ({folder})",
                              f"Restore it (git checkout -- {os.path.join(folder, RECORD_FILE)}, if it is "
                              f"committed), or delete {folder} to train the run again.", check)
    except FileNotFoundError:
        return None


def _not_writable(workdir: str, error: OSError) -> WorkdirError:
    problem = path_problem(workdir)
    if problem:  # os.makedirs says only "File exists"
        return WorkdirError(f"--workdir={workdir} {problem}; give a folder (or a link to one) you can write to.")
    return WorkdirError(f"--workdir={workdir} is not a writable folder ({error.strerror or error}); "
                        "choose a folder you can write to.")


def prepare_workdir(workdir: str, config: config_lib.RunConfig, image_shape, num_train_examples: int,
                    allow_config_change: bool = False, write_config: bool = True) -> dict:
    """Creates `workdir` and records `config` (unless `write_config` is False: the caller saves it
    with `save_config` once it has recorded the change); refuses a workdir trained with other
    networks, and one trained with other settings (`RunConfig.training_changes`: the steps to come
    would be trained unlike those before, and config.json would no longer say how those were) unless
    `allow_config_change`. Returns those changes, {field: (before, now)}."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=workdir)
        probe.close()
    except OSError as e:
        raise _not_writable(workdir, e) from None
    # Everything training writes, of the kind it writes, before it writes any of it.
    for name, folder, what in ((CHECKPOINT_DIR, True, "the checkpoints"), (TENSORBOARD_DIR, True, "the summaries"),
                               (LEARNING_CURVE_FILE, False, "the learning curve"), (CONFIG_FILE, False, "the "
                               "run's configuration")):
        check_slot(os.path.join(workdir, name), folder, what)
    if os.path.lexists(os.path.join(workdir, CONFIG_FILE)):  # a folder or a broken one: load_run says so
        previous, previous_shape, previous_n = load_run(workdir)
        if previous.precision != config.precision:  # allowed (float32 weights either way), but said
            logging.warning("--workdir=%s was trained in %s until now and continues in %s (--precision, or "
                            "`auto` on this CPU); %s records the precision of each sitting.", workdir,
                            previous.precision, config.precision, sittings.SITTINGS_FILE)
        if (previous.model_fields() != config.model_fields() or tuple(previous_shape) != tuple(image_shape)
                or (config.method == "abp_persistent" and previous_n != num_train_examples)):
            raise WorkdirError(
                f"--workdir={workdir} holds a run of {previous.model_fields()} on {previous_n} images "
                f"{tuple(previous_shape)}, but the flags ask for {config.model_fields()} on "
                f"{num_train_examples} images {tuple(image_shape)}; "
                "its checkpoints cannot be resumed with these flags. "
                "Use a new --workdir, or the flags of the earlier run to resume it.")
        changes = previous.training_changes(config)
        if changes and not allow_config_change:
            before = " ".join(config_lib.flag_text(name, old) for name, (old, _) in changes.items())
            now = " ".join(config_lib.flag_text(name, new) for name, (_, new) in changes.items())
            raise WorkdirError(
                f"--workdir={workdir} was trained with {before} ({CONFIG_FILE}), but this command asks for {now}. "
                "Resuming would train the next steps unlike the ones before, and the record would no longer say "
                "how those were trained, so it is refused. Resume with the run's own flags, train into a new "
                "--workdir, or pass --allow_config_change to continue with the new settings "
                f"({sittings.SITTINGS_FILE} then records each sitting's settings).")
        if changes:
            logging.warning("--workdir=%s continues with changed settings (--allow_config_change): %s; %s records "
                            "each sitting's settings.", workdir, ", ".join(
                                f"{config_lib.flag_text(name, old)[2:]} -> {new}" for name, (old, new) in
                                changes.items()), sittings.SITTINGS_FILE)
    else:
        changes = {}
    if write_config:
        save_config(workdir, config, image_shape, num_train_examples)
    return changes


@contextlib.contextmanager
def training_lock(workdir: str):
    """Holds the run lock of `workdir` while the block runs: an exclusive flock on <workdir>/train.lock.

    The kernel drops the lock when its file is closed or its process dies (even by SIGKILL), so no
    lock is ever stale; the file stays, naming the last holder (pid, host, start time). Creates
    `workdir`. Raises WorkdirError, naming the holder, when another process (or another open of the
    file in this one) holds the lock, so a second training on one workdir stops before writing."""
    path = os.path.join(workdir, LOCK_FILE)
    check_slot(path, what="the run lock")
    try:
        os.makedirs(workdir, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise _not_writable(workdir, e) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirError(_in_use_message(workdir, path, _lock_holder(fd))) from None
        except OSError as e:  # a file system without flock: train as before, but say so
            logging.warning("--workdir=%s: cannot lock %s (%s), so a second training into this workdir "
                            "would not be refused.", workdir, path, e.strerror or e)
        else:
            holder = {"pid": os.getpid(), "host": socket.gethostname(),
                      "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _lock_holder(fd: int) -> dict:
    for _ in range(40):  # the holder writes its pid just after taking the lock: wait a moment for it
        try:
            return json.loads(os.pread(fd, 4096, 0))
        except ValueError:
            time.sleep(0.05)
    return {}


def _in_use_message(workdir: str, path: str, holder: dict) -> str:
    who = (f"process {holder.get('pid')} on {holder.get('host')} (training since {holder.get('since')})"
           if holder.get("pid") else "another process")
    return (f"--workdir={workdir} is in use: {who} holds its run lock {path}. Two trainings must not "
            "write one workdir, so this one stops without writing anything. Wait for that training to "
            "finish (or stop it), then rerun to resume; or give this one another --workdir. Evaluate, "
            "export, inpaint and hiabp_tf.load can read the workdir meanwhile.")


def network_weights(model) -> list:
    """Every weight of the model's networks (generator, encoder, LVAE prior) and its persistent
    chains: what must stay finite. (Keras 3 variables are not found by tf.Module's traversal.)"""
    weights = []
    for item in model.checkpoint_items().values():
        if isinstance(item, keras.Model):
            weights += item.trainable_variables
        elif isinstance(item, (list, tuple)):
            weights += list(item)
    return weights


def make_checkpoint(model, data_iterator=None) -> tuple[tf.train.Checkpoint, tf.Variable]:
    """Checkpoint of the step counter, the model's networks, optimisers (and chains) and, in
    training, the input pipeline's position (`data_iterator`, a tf.data iterator)."""
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    items = dict(step=step, **model.checkpoint_items())
    if data_iterator is not None:
        items["data_iterator"] = data_iterator
    return tf.train.Checkpoint(**items), step


def dataset_slug(dataset) -> str:
    """The part of a result file's name (eval_<slug>_<split>...json) that says which data it scored
    (`spec.DataSpec.slug`): a registered dataset's name (mnist_5k, mnist, svhn_cropped, celeb_a) is
    itself; npz:PATH is npz-<file name>-<digest of its bytes>; images:DIR is images-<folder name>-<size,
    crop and test split>-<digest of its image files' bytes>. Two files of one name in two folders, a
    file or folder changed, or other settings never share a result; two copies of one file do."""
    return data_spec.parse(dataset).slug()


def legacy_dataset_slug(dataset: str) -> str:
    """The slug of results written before `dataset_slug` digested a folder's content (issue 38): KIND-<stem>-
    <digest of the path's bytes or listing>, where an images: name's settings were part of the path (so its
    digest was of the text) and its stem was cut at the crop's decimal point. Only read, never written."""
    if ":" not in dataset:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)
    kind, path = dataset.split(":", 1)
    stem = os.path.splitext(os.path.basename(os.path.normpath(path)))[0] or "data"
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", part) for part in (kind, stem)) + "-" + _legacy_digest(path)[:12]


def _legacy_digest(path: str) -> str:
    real = os.path.realpath(os.path.expanduser(path))
    if os.path.isfile(real):
        return data_spec.content_digest(real)
    if not os.path.isdir(real):
        return hashlib.sha256(real.encode()).hexdigest()
    sha = hashlib.sha256()
    for root, dirs, names in os.walk(real):
        dirs.sort()
        for name in sorted(names):
            st = os.stat(os.path.join(root, name))
            sha.update(f"{os.path.relpath(os.path.join(root, name), real)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return sha.hexdigest()


def write_json_atomic(path: str, data) -> None:
    """Writes JSON to a temporary file in the same folder, then renames it into place, so a
    reader (or a crash) never sees a half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def append_learning_curve(workdir: str, record: dict) -> None:
    """Appends one evaluation during training ({"step", "mse_E", ...}) as a JSON line: a crash can
    at worst leave a partial last line, which `read_learning_curve` skips."""
    path = os.path.join(workdir, LEARNING_CURVE_FILE)
    check_slot(path, what="the learning curve")
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_learning_curve(workdir: str) -> list[dict]:
    """The evaluations during training of `workdir`, by step; a step evaluated twice (a run resumed
    from a checkpoint older than its last evaluation) keeps its latest record. A line that is not JSON
    (cut short by a crash) is skipped; one that is JSON but no evaluation ({"step": integer, ...}) is a
    WorkdirError naming the file and the line: it was not written here."""
    path = os.path.join(workdir, LEARNING_CURVE_FILE)
    check_slot(path, what="the learning curve")
    if not os.path.isfile(path):
        return []
    by_step = {}
    try:
        with open(path) as f:
            lines = list(f)
    except (OSError, UnicodeDecodeError) as e:
        raise WorkdirError(f"{path} is unreadable ({type(e).__name__}: {e}); it holds the run's evaluations during "
                           "training. Restore it from a backup, or move it aside to lose the curve.") from None
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if not isinstance(record, dict) or not _is_int(record.get("step")):
            raise WorkdirError(f"{path}, line {number}, is not an evaluation record (a JSON object with an integer "
                               f"\"step\"): {line.strip()[:80]}. Remove that line (the others are the run's "
                               "evaluations during training), or move the file aside to lose the curve.")
        by_step[record["step"]] = record
    return [by_step[step] for step in sorted(by_step)]


def load_config(workdir: str) -> tuple[config_lib.RunConfig, tuple[int, int, int]]:
    """(RunConfig, image_shape) saved by train.py in `workdir` (see also `load_run`)."""
    config, image_shape, _ = load_run(workdir)
    return config, image_shape


def load_run(workdir: str) -> tuple[config_lib.RunConfig, tuple[int, int, int], int]:
    """(RunConfig, image_shape, num_train_examples) saved by train.py in `workdir`."""
    path = os.path.join(workdir, CONFIG_FILE)
    check_slot(path, what="the run's configuration")
    if not os.path.isfile(path) and path_problem(workdir):
        raise WorkdirError(f"--workdir={workdir} {path_problem(workdir)}: point --workdir at the folder that "
                           "training wrote.")
    if not os.path.isfile(path):
        raise WorkdirError(
            f"--workdir={workdir}: no {CONFIG_FILE} found, so this is not a training workdir. "
            "Train first with `python -m hiabp_tf.train --flagfile=flags/NAME.flags --workdir=DIR`, "
            "or point --workdir at the folder that training wrote.")
    try:
        with open(path) as f:
            data = json.load(f)
        image_shape, num_train_examples = tuple(int(s) for s in data["image_shape"]), int(data["num_train_examples"])
        return config_lib.RunConfig.from_json(data["config"]), image_shape, num_train_examples
    except ConfigError as e:
        raise WorkdirError(f"--workdir={workdir}: {path} records settings this version refuses ({e}).") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:  # truncated, garbled, not ours
        raise WorkdirError(
            f"--workdir={workdir}: {path} is unreadable ({type(e).__name__}: {e}); it records how the run was "
            "trained, so nothing can restore or resume its checkpoints without it, and nothing overwrites it. "
            "Copy it back from a backup (or from the run's other copy); if you know the flags it was trained "
            "with, move it aside and rerun the training command with those flags to write a new one.") from None


def save_config(workdir: str, config: config_lib.RunConfig, image_shape, num_train_examples: int) -> None:
    write_json_atomic(os.path.join(workdir, CONFIG_FILE),
                      {"config": config.to_json(), "image_shape": list(image_shape),
                       "num_train_examples": int(num_train_examples)})


# What restoring a damaged checkpoint raises: a truncated data file IndexError ("Read less bytes
# than requested"); a missing, truncated or garbled file a tf.errors.OpError (NotFoundError,
# DataLossError, ...); a checkpoint lacking some of the model's objects an AssertionError (from
# assert_existing_objects_matched); a garbled object graph a DecodeError or ValueError.
UNREADABLE_CHECKPOINT_ERRORS = (tf.errors.OpError, IndexError, ValueError, KeyError, AssertionError, OSError,
                                DecodeError)
_CHECKPOINT_INDEX = "checkpoint"  # tf.train.CheckpointManager's list of the checkpoints it keeps


@dataclasses.dataclass(frozen=True)
class Restored:
    """What `restore_newest_readable` did."""

    path: str | None  # the checkpoint restored; None when the folder holds none
    unreadable: tuple[str, ...] = ()  # the newer checkpoints that could not be restored, newest first
    index_unreadable: bool = False  # the checkpoint index file exists but cannot be parsed


def _checkpoint_number(prefix: str) -> int:
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else -1


def _read_checkpoint_index(checkpoint_dir: str):
    """(tf.train.CheckpointState or None, whether the index file exists but cannot be parsed)."""
    try:
        state = tf.train.get_checkpoint_state(checkpoint_dir)
    except ValueError:  # parsed, but without a latest checkpoint (e.g. an emptied file)
        state = None
    return state, state is None and os.path.exists(os.path.join(checkpoint_dir, _CHECKPOINT_INDEX))


def checkpoint_candidates(checkpoint_dir: str) -> tuple[list[str], bool]:
    """The checkpoints of `checkpoint_dir`, newest first: those of the index file, then any other
    complete-looking one (a ckpt-N.index) in the folder; and whether the index file is unreadable."""
    state, index_unreadable = _read_checkpoint_index(checkpoint_dir)
    listed = [state.model_checkpoint_path, *reversed(state.all_model_checkpoint_paths)] if state else []
    indexes = glob.glob(os.path.join(glob.escape(checkpoint_dir), "ckpt-*.index"))
    found = sorted((path[:-len(".index")] for path in indexes), key=_checkpoint_number, reverse=True)
    by_file = {}  # the first spelling of each checkpoint, in order (the index may list paths relatively)
    for path in listed + found:
        by_file.setdefault(os.path.abspath(path), path)
    return list(by_file.values()), index_unreadable


def _checkpoint_files(prefix: str) -> list[str]:
    return [path for path in [prefix + ".index", *sorted(glob.glob(glob.escape(prefix) + ".data-*"))]
            if os.path.exists(path)]


def _reason(error: Exception) -> str:
    text = (getattr(error, "message", None) or str(error) or "").strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def restore_newest_readable(restore_fn, checkpoint_dir: str, workdir: str) -> Restored:
    """Restores the newest checkpoint of `checkpoint_dir` that can be read: calls `restore_fn(path)`
    on each checkpoint, newest first, until one does not raise an UNREADABLE_CHECKPOINT_ERRORS.

    Each unreadable one is one warning line naming its files. A failed attempt may have assigned
    some variables; the next restore assigns them all again (restore_fn must check that every
    object was matched). Never modifies the folder. Raises WorkdirError, listing the files tried and
    why each failed, when checkpoints exist but none can be read."""
    candidates, index_unreadable = checkpoint_candidates(checkpoint_dir)
    if index_unreadable:
        logging.warning("The checkpoint index %s is unreadable; using the checkpoints found beside it.",
                        os.path.join(checkpoint_dir, _CHECKPOINT_INDEX))
    failed = []
    for path in candidates:
        try:
            restore_fn(path)
        except UNREADABLE_CHECKPOINT_ERRORS as e:
            files = ", ".join(os.path.basename(f) for f in _checkpoint_files(path)) or "its files are missing"
            logging.warning("Checkpoint %s (%s) is unreadable (%s); falling back to the checkpoint before it.",
                            path, files, _reason(e))
            failed.append((path, _reason(e)))
            continue
        return Restored(path, tuple(p for p, _ in failed), index_unreadable)
    if failed:
        raise WorkdirError(
            f"--workdir={workdir}: none of its checkpoints can be read, so there is nothing to restore. Tried, "
            f"newest first: {'; '.join(f'{p} ({reason})' for p, reason in failed)}. Copy intact checkpoint "
            f"files back into {checkpoint_dir} (e.g. from a backup), or train again into a new --workdir.")
    return Restored(None, (), index_unreadable)


def set_aside_unreadable(checkpoint_dir: str, restored: Restored) -> str | None:
    """After a training fell back (`restored`): moves the files of the checkpoints it could not
    read, and an unreadable index file, intact into checkpoints/unreadable/ (or unreadable/2, ...
    if those names are taken), then rewrites the index to end at the checkpoint restored. So the
    CheckpointManager, created afterwards, neither overwrites them when it saves those step numbers
    again nor counts them among the checkpoints it keeps. Returns the folder they went to, if any.

    Files are moved before the index is rewritten: a crash in between leaves an index naming
    missing files, which the next start falls back past."""
    checkpoint_dir = os.path.abspath(checkpoint_dir)
    state, _ = _read_checkpoint_index(checkpoint_dir)
    moving = [f for prefix in restored.unreadable for f in _checkpoint_files(prefix)]
    if restored.index_unreadable:
        moving.append(os.path.join(checkpoint_dir, _CHECKPOINT_INDEX))
    target = None
    if moving:
        target, n = os.path.join(checkpoint_dir, UNREADABLE_DIR), 1
        while any(os.path.exists(os.path.join(target, os.path.basename(f))) for f in moving):
            n += 1
            target = os.path.join(checkpoint_dir, UNREADABLE_DIR, str(n))
        os.makedirs(target, exist_ok=True)
        for f in moving:
            os.rename(f, os.path.join(target, os.path.basename(f)))
        logging.warning("Moved the unreadable %s to %s (kept intact); training continues from %s.",
                        ", ".join(os.path.basename(f) for f in moving), target, restored.path)
    gone = {os.path.abspath(p) for p in restored.unreadable}
    latest = os.path.abspath(restored.path)
    kept = []  # (path, timestamp), oldest first, as the manager lists them
    if state is not None:
        stamps = list(state.all_model_checkpoint_timestamps) or [state.last_preserved_timestamp] * len(
            state.all_model_checkpoint_paths)
        kept = [(os.path.abspath(p), t) for p, t in zip(state.all_model_checkpoint_paths, stamps)]
    kept = [(p, t) for p, t in kept if p not in gone]
    if not kept or kept[-1][0] != latest:  # restored from the folder, not from the index
        kept = [(p, t) for p, t in kept if p != latest] + [(latest, os.path.getmtime(latest + ".index"))]
    preserved = state.last_preserved_timestamp if state is not None else min(t for _, t in kept) - 1.0
    # The function CheckpointManager writes its index with (relative paths); its public v1 alias is
    # deprecated and says so in the log.
    tf.__internal__.train.update_checkpoint_state(
        checkpoint_dir, latest, [p for p, _ in kept], save_relative_paths=True,
        all_model_checkpoint_timestamps=[t for _, t in kept], last_preserved_timestamp=preserved)
    return target


def network_models(model) -> dict:
    """{name: keras.Model} of the model's networks (generator, encoder, the LVAE variant's prior):
    what a shipped model keeps (no optimiser, no persistent chains)."""
    return {name: item for name, item in model.checkpoint_items().items() if isinstance(item, keras.Model)}


def save_weights(model, path: str, dtype=np.float16) -> int:
    """Writes every weight of the model's networks to the npz `path` in `dtype` (16 bits by default:
    half the size of float32, enough for the scores, `serving.ship` checks it), keyed network/index
    in Keras' weight order; returns the bytes written."""
    arrays = {f"{name}/{i}": np.asarray(w.numpy(), dtype) for name, net in network_models(model).items()
              for i, w in enumerate(net.weights)}
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)
    return os.path.getsize(path)


def load_weights(model, path: str) -> None:
    """Sets the model's networks from `save_weights`' npz (cast to each weight's dtype); a file of
    other networks is a WorkdirError naming it."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise WorkdirError(f"{path} could not be read as shipped weights ({type(e).__name__}: {e}).") from e
    expected = {f"{name}/{i}": w for name, net in network_models(model).items() for i, w in enumerate(net.weights)}
    wrong = sorted(k for k, w in expected.items() if k not in arrays or tuple(arrays[k].shape) != tuple(w.shape))
    if wrong or len(arrays) != len(expected):
        raise WorkdirError(f"{path} holds other networks than its {CONFIG_FILE} builds (first mismatch: "
                           f"{(wrong or sorted(set(arrays) - set(expected)))[0]}); ship the model again.")
    bad = sorted(k for k, a in arrays.items() if not np.all(np.isfinite(a)))
    if bad:  # training never saves such weights (its divergence guard): the file was damaged
        raise WorkdirError(f"{path} holds NaN or infinite weights ({len(bad)} of {len(arrays)} arrays, first "
                           f"{bad[0]}); such a model scores NaN. Ship the model again from its run, or restore the "
                           "file.")
    for key, weight in expected.items():
        weight.assign(arrays[key].astype(weight.dtype))  # Keras 3: the dtype's name, e.g. "float32"


def _restore_record(record: str):
    """A run's record keeps no checkpoints: its shipped model (record.json's "model") stands in."""
    model = read_record(record).get("model")
    if not model or not os.path.isfile(os.path.join(model, WEIGHTS_FILE)):
        raise WorkdirError(
            f"--workdir={record} is the record of a finished run ({RECORD_FILE}: its scores, no checkpoints) "
            f"and no shipped model stands in for it{f' ({model} has no {WEIGHTS_FILE})' if model else ''}: "
            "retrain the run (delete the record first) to rebuild its model.")
    return restore(model)


def restore(workdir: str):
    """Rebuilds the model of a workdir from its newest readable checkpoint (falling back past
    unreadable ones, see `restore_newest_readable`), or a shipped model from its weights.npz (the
    workdir is not modified): (model, config, image_shape, step)."""
    config, image_shape, num_train_examples = load_run(workdir)
    model = methods.build_model(config, image_shape, num_train_examples)
    checkpoint_dir = os.path.join(workdir, CHECKPOINT_DIR)
    weights = os.path.join(workdir, WEIGHTS_FILE)
    if not os.path.isdir(checkpoint_dir) and not os.path.isfile(weights) and os.path.isfile(
            os.path.join(workdir, RECORD_FILE)):
        return _restore_record(workdir)
    if not os.path.isdir(checkpoint_dir) and os.path.isfile(weights):
        step = read_shipped(workdir)["step"]  # before the weights: a missing record stops at once
        load_weights(model, weights)
        return model, config, image_shape, step
    checkpoint, step = make_checkpoint(model)

    def restore_finite(path):
        checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
        # Training never saves non-finite weights (its divergence guard), so these are damage: a ValueError,
        # which falls back to the checkpoint before it like any unreadable one.
        if not all(np.all(np.isfinite(w.numpy())) for w in network_weights(model)):
            raise ValueError("it holds NaN or infinite weights")

    restored = restore_newest_readable(restore_finite, checkpoint_dir, workdir)
    if restored.path is None:
        raise WorkdirError(
            f"--workdir={workdir}: no checkpoint in {checkpoint_dir}. "
            "Train (or resume training) with the same --workdir first.")
    return model, config, image_shape, int(step.numpy())


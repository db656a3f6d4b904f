"""A run's configuration and its workdir: what train.py writes and evaluate.py (or any user) reads.

A workdir holds
    config.json          the RunConfig that trained it (networks, algorithm, data, seed)
    checkpoints/         tf.train.CheckpointManager checkpoints (step counter, networks, optimisers)
    tensorboard/         summaries
    learning_curve.jsonl the test scores of the evaluations during training, one JSON line each
    eval_*.json          results of evaluate.py
    train.lock           the run lock: held (flock) by the one training that writes the workdir
so a model can be rebuilt and scored from the workdir alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import socket
import sys
import tempfile
import time

from absl import app
from absl import logging

import keras
import tensorflow as tf

from hiabp_tf import algorithm
from hiabp_tf import baselines
from hiabp_tf import fid
from hiabp_tf import input_pipeline
from hiabp_tf import masks
from hiabp_tf import models

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
LEARNING_CURVE_FILE = "learning_curve.jsonl"
LOCK_FILE = "train.lock"
# Every row of Table 1: HiABP (IABP is L = 1) and its baselines, all with the same networks.
METHOD_CLASSES = {"hiabp": algorithm.HiABP, **baselines.METHODS}
METHODS = tuple(METHOD_CLASSES)


class WorkdirError(ValueError):
    """A workdir that cannot be used as asked; the message says what to do."""


class ConfigError(ValueError):
    """A flag value the model cannot use; the message names the flag."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite value; the message names the step, the quantity and the flags
    that usually cause it. The last good checkpoint is kept."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run (the absl flags of train.py, minus bookkeeping)."""

    method: str = "hiabp"
    dataset: str = "mnist_5k"
    num_layers: int = 1
    latent_dims: tuple[int, ...] = (48,)
    width: int = 64
    langevin_steps: int = 15
    step_size: float = 0.15
    sigma: float = 0.3
    learning_rate: float = 3e-4
    batch_size: int = 100
    seed: int = 0
    # Test-time Langevin steps for [E+L] / [L] reconstructions (None: the training T).
    eval_langevin_steps: int | None = None
    # Occlusion of the training images (learning from incomplete data, Table 2): none, pepper, ...
    mask: str = "none"
    # Optional clip of the Langevin gradient per component (off: the paper has none).
    langevin_clip: float | None = None
    # Arithmetic of the networks: float32 (exact, default) or bfloat16 (opt-in, faster on AVX512_BF16).
    precision: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "latent_dims", tuple(int(d) for d in self.latent_dims))
        try:
            self._validate()
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def _validate(self):
        if self.method not in METHODS:
            raise ValueError(f"--method={self.method!r} is unknown; choose one of {', '.join(METHODS)}.")
        if not 1 <= self.num_layers <= 4:
            raise ValueError(f"--num_layers (L) must be between 1 and 4, got {self.num_layers}.")
        if len(self.latent_dims) != self.num_layers:
            raise ValueError(
                f"--latent_dims has {len(self.latent_dims)} sizes {list(self.latent_dims)} but "
                f"--num_layers={self.num_layers}: give one size per latent layer, bottom layer first "
                f"(e.g. --latent_dims={','.join(['16'] * self.num_layers)}).")
        if self.width < 1:
            raise ValueError(f"--width must be >= 1, got {self.width}.")
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {self.batch_size}.")
        if self.eval_langevin_steps is not None and self.eval_langevin_steps < 0:
            raise ValueError(f"--eval_langevin_steps must be >= 0, got {self.eval_langevin_steps}.")
        masks.parse_mask(self.mask)  # a ValueError naming --mask
        if self.precision not in models.PRECISIONS:
            raise ValueError(f"--precision={self.precision!r} is unknown: use one of {', '.join(models.PRECISIONS)}.")
        if self.method == "vae" and self.num_layers != 1:
            raise ValueError(f"--method=vae has one latent layer: --num_layers must be 1, got "
                             f"{self.num_layers} (use --method=vlae or lvae for hierarchical latents).")
        self.hyperparameters()  # validates T, s, sigma and the learning rate

    def hyperparameters(self) -> algorithm.Hyperparameters:
        return algorithm.Hyperparameters(
            langevin_steps=self.langevin_steps, step_size=self.step_size, sigma=self.sigma,
            learning_rate=self.learning_rate, langevin_clip=self.langevin_clip)

    @property
    def test_langevin_steps(self) -> int:
        return self.langevin_steps if self.eval_langevin_steps is None else self.eval_langevin_steps

    @property
    def mask_spec(self) -> masks.MaskSpec:
        return masks.parse_mask(self.mask)

    def architecture(self, image_shape) -> models.Architecture:
        try:
            return models.Architecture(tuple(image_shape), self.latent_dims, self.width, self.precision)
        except ValueError as e:
            raise ConfigError(f"--dataset={self.dataset}: {e}") from None

    def model_fields(self) -> dict:
        """The fields a checkpoint depends on: resuming with others would not restore (the
        networks, and the input pipeline whose position the checkpoint holds)."""
        return {k: getattr(self, k) for k in ("method", "num_layers", "latent_dims", "width", "dataset",
                                              "batch_size", "seed", "mask")}

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _not_writable(workdir: str, error: OSError) -> WorkdirError:
    return WorkdirError(f"--workdir={workdir} is not a writable folder ({error.strerror or error}); "
                        "choose a folder you can write to.")


def prepare_workdir(workdir: str, config: RunConfig, image_shape, num_train_examples: int) -> None:
    """Creates `workdir` and records `config`; refuses a workdir trained with other networks."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=workdir)
        probe.close()
    except OSError as e:
        raise _not_writable(workdir, e) from None
    if os.path.isfile(os.path.join(workdir, CONFIG_FILE)):
        previous, previous_shape, previous_n = load_run(workdir)
        if (previous.model_fields() != config.model_fields() or tuple(previous_shape) != tuple(image_shape)
                or (config.method == "abp_persistent" and previous_n != num_train_examples)):
            raise WorkdirError(
                f"--workdir={workdir} holds a run of {previous.model_fields()} on {previous_n} images "
                f"{tuple(previous_shape)}, but the flags ask for {config.model_fields()} on "
                f"{num_train_examples} images {tuple(image_shape)}; its checkpoints cannot be resumed with these flags. "
                "Use a new --workdir, or the flags of the earlier run to resume it.")
    save_config(workdir, config, image_shape, num_train_examples)


@contextlib.contextmanager
def training_lock(workdir: str):
    """Holds the run lock of `workdir` while the block runs: an exclusive flock on <workdir>/train.lock.

    The kernel drops the lock when its file is closed or its process dies (even by SIGKILL), so no
    lock is ever stale; the file stays, naming the last holder (pid, host, start time). Creates
    `workdir`. Raises WorkdirError, naming the holder, when another process (or another open of the
    file in this one) holds the lock, so a second training on one workdir stops before writing."""
    path = os.path.join(workdir, LOCK_FILE)
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


def build_model(config: RunConfig, image_shape, num_train_examples: int):
    """The method's model object (networks, optimisers, compiled steps; for persistent ABP, one
    chain per training example)."""
    cls = METHOD_CLASSES[config.method]
    return cls(config.architecture(image_shape), config.hyperparameters(), num_train_examples)


USER_ERRORS = (ConfigError, WorkdirError, input_pipeline.DataError, fid.FIDError, DivergenceError)


TRAINED_WORKDIR = "a folder written by `python -m hiabp_tf.train`"


def check_command_line(argv, workdir, workdir_is=TRAINED_WORKDIR) -> None:
    """The start of every command's main(): no positional arguments, and --workdir given."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not workdir:
        raise app.UsageError(f"--workdir is required: {workdir_is}.")


def exit_with_user_error(error: Exception) -> None:
    """Ends a command on bad input: one paragraph on stderr, exit status 2, no stack trace unless
    --verbosity=1 (debug) or higher asks for one."""
    if logging.get_verbosity() >= logging.DEBUG:
        logging.exception("Traceback of the error below:")
    print(f"error: {error}", file=sys.stderr, flush=True)
    sys.exit(2)


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
    with open(os.path.join(workdir, LEARNING_CURVE_FILE), "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_learning_curve(workdir: str) -> list[dict]:
    """The evaluations during training of `workdir`, by step; a step evaluated twice (a run resumed
    from a checkpoint older than its last evaluation) keeps its latest record."""
    path = os.path.join(workdir, LEARNING_CURVE_FILE)
    if not os.path.isfile(path):
        return []
    by_step = {}
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            by_step[int(record["step"])] = record
    return [by_step[step] for step in sorted(by_step)]


def load_config(workdir: str) -> tuple[RunConfig, tuple[int, int, int]]:
    """(RunConfig, image_shape) saved by train.py in `workdir` (see also `load_run`)."""
    config, image_shape, _ = load_run(workdir)
    return config, image_shape


def load_run(workdir: str) -> tuple[RunConfig, tuple[int, int, int], int]:
    """(RunConfig, image_shape, num_train_examples) saved by train.py in `workdir`."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise WorkdirError(
            f"--workdir={workdir}: no {CONFIG_FILE} found, so this is not a training workdir. "
            "Train first with `python -m hiabp_tf.train --flagfile=flags/NAME.flags --workdir=DIR`, "
            "or point --workdir at the folder that training wrote.")
    with open(path) as f:
        data = json.load(f)
    return RunConfig.from_json(data["config"]), tuple(data["image_shape"]), int(data["num_train_examples"])


def save_config(workdir: str, config: RunConfig, image_shape, num_train_examples: int) -> None:
    write_json_atomic(os.path.join(workdir, CONFIG_FILE),
                      {"config": config.to_json(), "image_shape": list(image_shape),
                       "num_train_examples": int(num_train_examples)})


def restore(workdir: str):
    """Rebuilds the model of a workdir from its latest checkpoint: (model, config, image_shape, step)."""
    config, image_shape, num_train_examples = load_run(workdir)
    model = build_model(config, image_shape, num_train_examples)
    checkpoint, step = make_checkpoint(model)
    latest = tf.train.latest_checkpoint(os.path.join(workdir, CHECKPOINT_DIR))
    if latest is None:
        raise WorkdirError(
            f"--workdir={workdir}: no checkpoint in {os.path.join(workdir, CHECKPOINT_DIR)}. "
            "Train (or resume training) with the same --workdir first.")
    checkpoint.restore(latest).expect_partial().assert_existing_objects_matched()
    return model, config, image_shape, int(step.numpy())

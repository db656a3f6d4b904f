r"""The training loop behind `python -m hiabp_tf.train`: trains a method of Table 1 (Algorithm 1 for
IABP / HiABP) and writes checkpoints and TensorBoard summaries to a workdir.

    python -m hiabp_tf.train --flagfile=flags/mnist5k_hiabp_l3.flags --workdir=runs/hiabp_l3

Rerun the same command to resume from the latest checkpoint (e.g. with a larger --num_steps).
Then score the model with `python -m hiabp_tf.evaluate --workdir=...`.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import os
import shutil
import signal
import tempfile
import threading
import time

from absl import flags
from absl import logging
import keras
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf import methods
from hiabp_tf.checks import errors
from hiabp_tf.checks import limits
from hiabp_tf.core import hardware
from hiabp_tf.data import images
from hiabp_tf.data import input_pipeline
from hiabp_tf.data import masks
from hiabp_tf.evaluation import metrics
from hiabp_tf.runtime import distribute
from hiabp_tf.runtime import sittings
from hiabp_tf.runtime import workdir as workdir_lib


def define_flags():
    """Defines the command-line flags (only when run as a command, so modules import cleanly): one
    per RunConfig field and bookkeeping argument (config.py), and where the run goes and runs."""
    config_lib.define_run_flags()
    flags.DEFINE_string("workdir", None, "Where checkpoints, summaries and config.json go.")
    flags.DEFINE_string("data_dir", None, "tensorflow-datasets data_dir with prepared datasets.")
    flags.DEFINE_enum("strategy", "default", distribute.STRATEGIES,
                      "tf.distribute strategy: default (one device), mirrored (this machine's GPUs), "
                      "multi_worker (MultiWorkerMirroredStrategy, cluster from TF_CONFIG) or tpu. The "
                      "global --batch_size is split evenly across the replicas.")
    flags.DEFINE_string("tpu", "", "--strategy=tpu: the TPU's name or grpc:// address for "
                        "TPUClusterResolver ('local' on a TPU VM; empty: from the environment).")


FLAGS = flags.FLAGS

GRID_COLUMNS = 10


def _format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _write_image_summaries(model, test_images, step, seed, langevin_steps):
    rows, caption = metrics.reconstruction_rows(model, test_images, seed, langevin_steps)
    tf.summary.image(f"reconstructions ({caption})", images.grid(rows, len(test_images))[None], step=step)
    samples = model.sample(tf.constant(2 * GRID_COLUMNS), tf.constant([seed, 3], tf.int32)).numpy()
    tf.summary.image("samples", images.grid(samples, GRID_COLUMNS)[None], step=step)


def _all_finite(tensors) -> bool:
    return bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors]))


def _divergence_message(step, quantities, config, manager) -> str:
    kept = manager.latest_checkpoint or "none yet"
    head = (f"training diverged at step {step}: {', '.join(quantities)} became non-finite (NaN or inf). "
            f"Nothing after the last good checkpoint was saved ({kept}). ")
    if config.method in methods.VARIATIONAL:  # no Langevin chain: the optimiser or the precision
        return head + (f"--method={config.method} has no Langevin chain; the usual causes are too high a "
                       f"--learning_rate ({config.learning_rate}) or, with --precision={config.precision}, "
                       f"a posterior log-variance beyond its range (try --precision=float32).")
    return head + (f"This is usually a Langevin step size too large for the likelihood (--step_size="
                   f"{config.step_size} with --sigma={config.sigma}: try a smaller --step_size or a larger "
                   f"--sigma), or too high a --learning_rate ({config.learning_rate}); --langevin_clip=C bounds "
                   f"the Langevin gradient if the chains blow up.")


class _Stopped(Exception):
    """A stop request came during an evaluation (raised between its batches)."""


def _until_stopped(dataset, stop):
    """The batches of `dataset` until a stop request: then _Stopped, before the next batch is scored."""
    for batch in dataset:
        if stop.signal is not None:
            raise _Stopped()
        yield batch


def _evaluation_missed(workdir, step) -> bool:
    """Whether a stop request skipped the evaluation of `step`, the step the run resumes from (the
    sitting that saved it says so) and no evaluation of it was recorded since."""
    skipped = any(s.get("evaluation_skipped") == step and s["to_step"] == step for s in sittings.read(workdir))
    return skipped and all(int(record["step"]) != step for record in workdir_lib.read_learning_curve(workdir))


class _StopRequest:
    """SIGINT / SIGTERM set a flag; the loop saves a checkpoint at the end of the current step, skipping
    (or ending between batches) the evaluation that step would have, and exits."""

    def __init__(self):
        self.signal = None

    def __enter__(self):
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        del frame
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(config: config_lib.RunConfig, workdir: str, num_steps: int, data_dir=None,
          log_every=100, eval_every=5000, eval_examples=1000, checkpoint_every=1000,
          keep_checkpoints=3, deterministic=False, timing=None, strategy="default", tpu="",
          allow_config_change=False):
    """Trains (or resumes) `config` in `workdir` up to `num_steps` updates; returns the model.

    The checkpoint holds the step counter, the networks, both optimisers, (for persistent ABP) the
    chains and the input pipeline's position; every step's noise is a function of (seed, step). So
    a run stopped at any point (even by SIGKILL) and started again with the same command continues
    as if it had not stopped, redoing at most `checkpoint_every` steps. SIGINT/SIGTERM end the run
    after the current step (the first, if they come during the set-up), skipping that step's
    evaluation and image summaries (or ending an evaluation under way between its batches), with a
    checkpoint saved; the resumed run does the evaluation it skipped before it trains. A non-finite
    loss, energy or weight stops training (DivergenceError) without saving the bad state. A full
    disk or exhausted memory is a ResourceError naming the intact latest checkpoint.

    While it runs, the call holds the workdir's run lock (workdir_lib.training_lock): a second
    training on the same workdir raises WorkdirError naming this process, before writing anything.
    Resuming falls back past unreadable checkpoints (a warning line each) to the newest readable
    one, and moves their files, intact, into checkpoints/unreadable/. Resuming with settings that
    change the training (`RunConfig.training_changes`: T, s, sigma, the learning rate, ...) raises
    WorkdirError naming them unless `allow_config_change`; sittings.json records each sitting's
    settings (and, for a sitting that changed them, the values before and after).

    If `timing` is a dict, it receives this call's "steps" (updates trained, 0 if the run was
    already at `num_steps`), "train_seconds" (wall time of those updates and their checkpoints,
    the first step's tracing included, the in-training evaluations excluded), "eval_seconds" (those
    evaluations) and "setup_seconds" (data, model and checkpoint restore before the first step).

    `strategy` ("default", "mirrored", "multi_worker", "tpu", see `distribute.py`, or a
    tf.distribute.Strategy) places networks, optimisers and the step on its replicas; each replica
    trains on its share of the global --batch_size. In a multi-worker run only the chief writes to
    `workdir` (checkpoints, config.json, summaries, evaluation); the others restore from it (so it
    must be a folder every worker sees) and write their identical checkpoints to a temporary folder,
    removed after each save."""
    call_start = time.perf_counter()
    # First: MultiWorkerMirroredStrategy must be created before TensorFlow runs any op.
    if isinstance(strategy, str):
        strategy = distribute.make_strategy(strategy, tpu)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    config_lib.check_train_flags(num_steps=num_steps, log_every=log_every, eval_every=eval_every,
                                 eval_examples=eval_examples, checkpoint_every=checkpoint_every,
                                 keep_checkpoints=keep_checkpoints)
    distribute.local_batch_size(strategy, config.batch_size)  # --batch_size splits across replicas
    # tf.data's shuffle combines its op seed (config.seed) with the global seed: clear the global
    # seed so the data order is that of a fresh process, whatever ran before in this one.
    tf.random.set_seed(None)
    train_ds, train_info = input_pipeline.make_train_dataset(
        config.dataset, config.batch_size, seed=config.seed, data_dir=data_dir)
    test_ds, test_info = input_pipeline.make_eval_dataset(
        config.dataset, "test", batch_size=min(500, eval_examples), data_dir=data_dir, max_examples=eval_examples)
    image_shape = train_info.image_shape
    config.architecture(image_shape)  # fails early, with a clear message, on an unsupported shape
    _warn_if_long_langevin(config, image_shape)
    try:  # checked here, before the pipeline below: in tf.data a region too large is a traceback
        mask_spec = masks.check_fits(config.mask_spec, image_shape)
    except ValueError as e:
        raise errors.ConfigError(str(e)) from None
    if mask_spec.kind != "none":
        # Every training image keeps one fixed occlusion; the models see only the occluded image
        # and the mask (observed pixels alone enter the energy and the likelihood).
        train_ds = train_ds.map(lambda batch: masks.occlude_batch(batch, mask_spec, config.seed),
                                num_parallel_calls=tf.data.AUTOTUNE)
    chief = distribute.writes_checkpoints(strategy)
    # The chief holds the workdir's run lock before writing anything there, until it returns: a second
    # training on the same workdir stops here. The other workers write only temporary folders.
    # A stop request from here on ends the run after its current (or first) step, saved.
    with workdir_lib.training_lock(workdir) if chief else contextlib.nullcontext(), _StopRequest() as stop:
        try:
            return _train(config, workdir, num_steps, data_dir, log_every, eval_every, eval_examples,
                          checkpoint_every, keep_checkpoints, timing, strategy, chief, call_start,
                          train_ds, train_info, test_ds, test_info, allow_config_change, stop)
        except Exception as e:  # noqa: BLE001 - re-raised unless the disk or the memory ran out
            if not (errors.is_out_of_space(e) or errors.is_out_of_memory(e)):
                raise
            raise _resource_error(e, workdir, chief) from None


def _resource_error(error, workdir, chief) -> errors.ResourceError:
    """A full disk (in a checkpoint save, most likely) or exhausted memory during training: one
    error saying that the latest checkpoint is intact and the run resumes from it. The temporary
    files of an unfinished save are removed (with the run lock held, no other save is under way)."""
    checkpoint_dir = os.path.join(workdir, workdir_lib.CHECKPOINT_DIR)
    if chief and errors.is_out_of_space(error):
        for unfinished in glob.glob(os.path.join(glob.escape(checkpoint_dir), "ckpt-*_temp")):
            shutil.rmtree(unfinished, ignore_errors=True)
    latest = tf.train.latest_checkpoint(checkpoint_dir) if os.path.isdir(checkpoint_dir) else None
    if latest:
        kept = (f"Nothing finished was lost: the latest checkpoint of --workdir={workdir}, {os.path.basename(latest)} "
                f"(step {latest.rsplit('-', 1)[1]}), is intact, and rerunning the same command resumes from it.")
    else:
        kept = f"--workdir={workdir} holds no checkpoint yet; rerunning the same command starts the run again."
    return errors.resource_error(error, kept, "Free memory and rerun the same command, or train with a smaller "
                                 "--batch_size or --width into a new --workdir.")


def _warn_if_long_langevin(config, image_shape) -> None:
    """A warning for a T far beyond the paper's (5..30): each step is a pass through the generator and
    back over the whole batch, and a stop request waits for the update (or evaluation batch) to end."""
    shape = "x".join(str(d) for d in image_shape)
    for flag, steps, what in (("--langevin_steps", config.langevin_steps, f"update (batch {config.batch_size})"),
                              ("--eval_langevin_steps", config.eval_langevin_steps, "evaluation batch")):
        if steps is not None and steps > limits.LANGEVIN_STEPS_WARN:
            logging.warning("%s=%d: every %s runs %d Langevin steps, each a pass through the generator and back "
                            "over %s images, %d times the paper's largest T; SIGINT/SIGTERM stop the run only once "
                            "the current one ends.", flag, steps, what, steps, shape, steps // 30)


def emulated_bfloat16(precision: str, flags_=None) -> bool:
    """Whether this run would compute bfloat16 without hardware for it (no GPU, a CPU without
    AVX512_BF16 or AMX): worth a warning, as it is several times slower than float32."""
    return (precision == "bfloat16" and not tf.config.list_physical_devices("GPU")
            and not hardware.native_bfloat16(flags_))


def _machine() -> str:
    """The machine line of a sitting: the CPU (hardware.describe) and the GPUs TensorFlow sees."""
    gpus = tf.config.list_physical_devices("GPU")
    names = sorted({tf.config.experimental.get_device_details(gpu).get("device_name", "GPU") for gpu in gpus})
    return hardware.describe() + (f" and {len(gpus)} GPU{'s' * (len(gpus) != 1)} ({', '.join(names)})" if gpus else "")


def _train(config, workdir, num_steps, data_dir, log_every, eval_every, eval_examples, checkpoint_every,
           keep_checkpoints, timing, strategy, chief, call_start, train_ds, train_info, test_ds, test_info,
           allow_config_change, stop):
    """train() once the arguments and the data are checked and, on the chief, the run lock is held."""
    image_shape = train_info.image_shape
    checkpoint_dir = os.path.join(workdir, workdir_lib.CHECKPOINT_DIR)
    if chief:  # refuses other networks, and other settings unless allow_config_change
        changes = workdir_lib.prepare_workdir(workdir, config, image_shape, train_info.num_examples,
                                              allow_config_change, write_config=False)
        save_dir = checkpoint_dir
    else:  # every worker saves (tf.distribute asks it), the others into a temporary folder
        save_dir = tempfile.mkdtemp(prefix="hiabp_worker_checkpoints_")

    keras.utils.set_random_seed(config.seed)  # initial weights
    with strategy.scope():  # networks, optimiser slots (and chains) on every replica
        model = methods.build_model(config, image_shape, train_info.num_examples)
    train_step = distribute.make_train_step(strategy, model, config.batch_size)
    iterator = iter(train_ds)
    checkpoint, step = workdir_lib.make_checkpoint(model, iterator)

    def restore(path):
        if any(name.startswith("data_iterator") for name, _ in tf.train.list_variables(path)):
            checkpoint.restore(path).assert_existing_objects_matched()
        else:  # a checkpoint written before the input position was saved
            logging.warning("%s holds no input-pipeline position: the data order restarts.", path)
            tf.train.Checkpoint(step=step, **model.checkpoint_items()).restore(path).assert_existing_objects_matched()

    # Newest readable checkpoint first; a non-chief worker resumes from the chief's (the workdir
    # must be shared).
    restored = workdir_lib.restore_newest_readable(restore, checkpoint_dir, workdir)
    latest = restored.path
    if chief and (restored.unreadable or restored.index_unreadable) and latest:
        # Keep the unreadable files (the manager would overwrite them on saving those steps again).
        workdir_lib.set_aside_unreadable(checkpoint_dir, restored)
    if latest:
        logging.info("Resumed from %s at step %d.", latest, int(step.numpy()))
    first_step = int(step.numpy())
    # This call's record in sittings.json, updated at each checkpoint (a run trained over several
    # sessions, or machines, says so in its results). Microseconds: two calls in one second differ.
    sitting = dict(started=datetime.datetime.now().astimezone().isoformat(timespec="microseconds"),
                   machine=_machine(), precision=config.precision, from_step=first_step, settings=config.to_json())
    if chief:
        if changes:  # recorded before config.json is rewritten, so that the settings before stay said
            sitting["changed"] = {name: [old, new] for name, (old, new) in changes.items()}
            sittings.record(workdir, dict(sitting, to_step=first_step, seconds=0.0))
        workdir_lib.save_config(workdir, config, image_shape, train_info.num_examples)
    manager = tf.train.CheckpointManager(checkpoint, save_dir, max_to_keep=keep_checkpoints if chief else 1)
    writer = (tf.summary.create_file_writer(os.path.join(workdir, workdir_lib.TENSORBOARD_DIR)) if chief
              else tf.summary.create_noop_writer())
    test_images = metrics.spread_images(config.dataset, GRID_COLUMNS, data_dir=data_dir)
    base_seed = tf.constant([config.seed, 0], tf.int32)

    logging.info("Training %s (L=%d, latent dims %s) on %s (%d train / %d test images %s) for %d steps%s.",
                 config.method, config.num_layers, list(config.latent_dims), config.dataset,
                 train_info.num_examples, test_info.num_examples, image_shape, num_steps,
                 "" if distribute.is_default(strategy) else
                 f" with {type(strategy).__name__} on {strategy.num_replicas_in_sync} replicas")
    if emulated_bfloat16(config.precision):
        logging.warning("--precision=bfloat16 on a CPU without bfloat16 instructions (none of %s in "
                        "/proc/cpuinfo): Keras emulates it, several times slower than float32 on such a CPU. "
                        "Use --precision=auto (or float32) unless you need bfloat16's numbers.",
                        "/".join(hardware.NATIVE_BFLOAT16_CPU_FLAGS))
    window_start, window_step = time.perf_counter(), first_step
    loop_start, eval_seconds = window_start, 0.0

    def save(number):
        if not _all_finite(workdir_lib.network_weights(model)):  # never overwrite good weights with bad ones
            raise errors.DivergenceError(_divergence_message(number, ["the weights"], config, manager))
        manager.save(checkpoint_number=number)
        if not chief:  # a non-chief worker's copy is not kept
            shutil.rmtree(save_dir, ignore_errors=True)
        elif number > first_step:
            sittings.record(workdir, dict(sitting, to_step=number, seconds=round(time.perf_counter() - call_start, 1)))

    def evaluate_at(current) -> bool:
        """The evaluation of step `current` (test MSE on --eval_examples, learning curve, image
        summaries). A stop request ends it between batches, its partial scores unrecorded (and skips
        the image summaries): returns whether it was completed."""
        try:
            scores = metrics.reconstruction_mse(model, _until_stopped(test_ds, stop), seed=config.seed,
                                                max_examples=eval_examples, langevin_steps=config.test_langevin_steps)
        except _Stopped:
            return False
        num_scored = scores.pop("num_examples")
        for name, value in scores.items():
            tf.summary.scalar(f"test/{name}", value, step=current)
        workdir_lib.append_learning_curve(workdir, dict(
            scores, step=current, num_examples=num_scored, langevin_steps=config.test_langevin_steps,
            split="test", dataset=config.dataset, seed=config.seed))
        logging.info("step %d: test %s  (%d examples)", current,
                     "  ".join(f"{k}={v:.5f}" for k, v in scores.items()), num_scored)
        if stop.signal is None:
            _write_image_summaries(model, test_images, current, config.seed, config.test_langevin_steps)
        return True

    def stopped(current, saved):
        logging.warning("Stopped by signal %d at step %d; %s. Rerun the same command to continue.", stop.signal,
                        current, "checkpoint saved" if saved else "its checkpoint was already there")
        writer.flush()
        raise SystemExit(128 + stop.signal)

    with writer.as_default():
        if chief and _evaluation_missed(workdir, first_step):
            # A stop request skipped it (or ended it) before this checkpoint was saved.
            logging.info("Step %d was not evaluated (a stop request came first): evaluating it now.", first_step)
            eval_start = time.perf_counter()
            evaluate_at(first_step)
            eval_seconds += time.perf_counter() - eval_start
            if stop.signal is not None:
                stopped(first_step, saved=False)
        window_start = time.perf_counter()
        while int(step.numpy()) < num_steps:
            # Every step's randomness is a function of (seed, step): resuming replays the same noise.
            batch = next(iterator)
            out = train_step(batch, tf.random.experimental.stateless_fold_in(base_seed, tf.cast(step, tf.int32)))
            step.assign_add(1)
            current = int(step.numpy())
            if not _all_finite(out.values()):  # one check per step; names only on failure
                bad = [name for name, value in out.items() if not _all_finite([value])]
                raise errors.DivergenceError(_divergence_message(current, bad, config, manager))
            if current % log_every == 0 or current == num_steps:
                values = {k: float(v) for k, v in out.items()}
                for name, value in values.items():
                    tf.summary.scalar(f"train/{name}", value, step=current)
                now = time.perf_counter()
                rate = (current - window_step) / max(now - window_start, 1e-9)
                window_start, window_step = now, current
                logging.info("step %d/%d  %.2f steps/s  ETA %s  %s", current, num_steps, rate,
                             _format_duration((num_steps - current) / max(rate, 1e-9)),
                             "  ".join(f"{k}={v:.4g}" for k, v in values.items()))
            # A stop request skips the evaluation (the resumed run does it): it saves and exits at once.
            if chief and (current % eval_every == 0 or current == num_steps):
                eval_start = time.perf_counter()
                if stop.signal is not None or not evaluate_at(current):
                    sitting["evaluation_skipped"] = current  # recorded by the save below
                window_start = time.perf_counter()  # evaluation time is not training speed
                eval_seconds += window_start - eval_start
            if current % checkpoint_every == 0 or current == num_steps or stop.signal is not None:
                save(current)
            if stop.signal is not None:
                stopped(current, saved=True)
    if manager.latest_checkpoint is None and not latest:  # e.g. --num_steps=0: keep the initial model scorable
        save(int(step.numpy()))
    writer.flush()
    if timing is not None:
        timing.update(steps=int(step.numpy()) - first_step, eval_seconds=eval_seconds,
                      train_seconds=time.perf_counter() - loop_start - eval_seconds,
                      setup_seconds=loop_start - call_start)
    return model


def main():
    train(config_lib.config_from_flags(), FLAGS.workdir, data_dir=FLAGS.data_dir, strategy=FLAGS.strategy,
          tpu=FLAGS.tpu, **config_lib.train_kwargs_from_flags())


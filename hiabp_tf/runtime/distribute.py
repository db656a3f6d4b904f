"""Scale-out with tf.distribute: `--strategy=default|mirrored|multi_worker|tpu`.

    default       no tf.distribute: the training step of one device, exactly as without this module
    mirrored      tf.distribute.MirroredStrategy over this machine's GPUs (or its logical CPUs)
    multi_worker  tf.distribute.MultiWorkerMirroredStrategy; the cluster comes from TF_CONFIG
    tpu           tf.distribute.TPUStrategy on TPUClusterResolver(--tpu)

The host-side input pipeline is unchanged: its iterator (saved in the checkpoint) yields the GLOBAL
batch of --batch_size examples, and `make_train_step` hands replica r of R the rows
[r * B/R, (r + 1) * B/R) of it (every key: image, index, mask) with
`strategy.experimental_distribute_values_from_function`. Each replica runs the model's
`replica_step` with `batch_slice=(offset, B)`: initializer, Langevin and reparameterisation noise
are drawn for the global batch and sliced to the replica's rows, and its losses are its share of the
global mean (sum over its rows / B). The Keras optimisers all-reduce (SUM) the gradients, so the
update is that of one device on the global batch; the returned metrics are summed across replicas,
which gives the global batch means.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from hiabp_tf.checks import errors

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")

_TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
                      '"task": {"type": "worker", "index": 0}}\'')


# Strategies made in this process, by (name, tpu). One strategy object serves every run of the
# process: two MirroredStrategy objects would number their collective ops alike and clash (TensorFlow
# fails with "Shape mismatch in the collective instance"), and a MultiWorkerMirroredStrategy can
# only be made once per process.
_STRATEGIES = {}


def make_strategy(name: str = "default", tpu: str | None = "") -> tf.distribute.Strategy:
    """The tf.distribute strategy `--strategy=name` asks for (the same object on every call).

    Raises errors.ConfigError, naming --strategy and what to do, for an unknown name, a
    multi_worker run without a usable TF_CONFIG, or a TPU that cannot be found.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name not in STRATEGIES:
        raise errors.ConfigError(
            f"--strategy={name!r} is unknown; choose one of {', '.join(STRATEGIES)} (default: one device).")
    key = (name, tpu or "") if name == "tpu" else name
    if key not in _STRATEGIES:
        if name == "mirrored":
            _STRATEGIES[key] = tf.distribute.MirroredStrategy(devices=local_devices())
        elif name == "multi_worker":
            _check_tf_config()
            _STRATEGIES[key] = tf.distribute.MultiWorkerMirroredStrategy()
        else:
            _STRATEGIES[key] = _tpu_strategy(tpu)
    return _STRATEGIES[key]


def local_devices() -> list[str]:
    """This machine's GPUs, or, without GPUs, its logical CPU devices (one unless configured with
    tf.config.set_logical_device_configuration, as the tests do)."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def _check_tf_config() -> dict:
    """TF_CONFIG, parsed and checked enough that MultiWorkerMirroredStrategy will not guess."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise errors.ConfigError(
            "--strategy=multi_worker reads the cluster from the TF_CONFIG environment variable, which is "
            f"not set. Set it on every worker, e.g. {_TF_CONFIG_EXAMPLE} on the first host and "
            '"index": 1 on the second (see docs/scaling.md), or use '
            "--strategy=mirrored for one machine.")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise errors.ConfigError(
            f"--strategy=multi_worker: TF_CONFIG is not valid JSON ({e}): {raw!r}. Expected e.g. "
            f"{_TF_CONFIG_EXAMPLE}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise errors.ConfigError(
            f"--strategy=multi_worker: TF_CONFIG must hold a \"cluster\" and a \"task\" object, got {raw!r}. "
            f"Expected e.g. {_TF_CONFIG_EXAMPLE}.")
    task_type, index = task.get("type"), task.get("index")
    members = cluster.get(task_type)
    if (task_type not in ("worker", "chief") or not isinstance(members, list) or not isinstance(index, int)
            or not 0 <= index < len(members)):
        raise errors.ConfigError(
            f"--strategy=multi_worker: TF_CONFIG's task {task!r} is not one of its cluster's workers "
            f"{cluster!r}: \"task\" must be {{\"type\": \"worker\" (or \"chief\"), \"index\": i}} with i "
            f"a position in that list. Expected e.g. {_TF_CONFIG_EXAMPLE}.")
    return config


def _tpu_strategy(tpu: str | None) -> tf.distribute.Strategy:
    tpu = tpu or ""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise errors.ConfigError(
            f"--strategy=tpu found no TPU (--tpu={tpu!r}): {first_line}. Give the TPU's name or "
            "grpc:// address with --tpu (--tpu=local on a TPU VM), or train without a TPU with "
            "--strategy=default or --strategy=mirrored.") from None


def is_default(strategy: tf.distribute.Strategy) -> bool:
    """True for the default strategy (no tf.distribute: the single-device code path)."""
    with strategy.scope():
        return not tf.distribute.has_strategy()


def local_batch_size(strategy: tf.distribute.Strategy, batch_size: int) -> int:
    """Examples per replica; ConfigError if --batch_size does not split evenly across replicas."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        nearest = max(replicas, batch_size // replicas * replicas)
        raise errors.ConfigError(
            f"--batch_size={batch_size} does not split evenly across the {replicas} replicas of "
            f"--strategy: use a multiple of {replicas} (e.g. --batch_size={nearest}).")
    return batch_size // replicas


def make_train_step(strategy: tf.distribute.Strategy, model, batch_size: int):
    """A function (global batch, seed) -> metrics (scalars, means over the global batch).

    With the default strategy it is the model's own compiled `train_step`. Otherwise each replica
    runs `model.replica_step` on its rows of the global batch (see the module docstring); the model
    must have been built inside `strategy.scope()`.
    """
    if is_default(strategy):
        return lambda batch, seed: model.train_step(batch, seed, batch.get("mask"))
    local = local_batch_size(strategy, batch_size)

    @tf.function
    def replicated_step(replica_batches, replica_offsets, seed):
        def replica_fn(batch, offset, seed):
            return model.replica_step(batch, seed, batch.get("mask"), batch_slice=(offset, batch_size))
        per_replica = strategy.run(replica_fn, args=(replica_batches, replica_offsets, seed))
        return {name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                for name, value in per_replica.items()}

    def step(batch, seed):
        rows = int(batch["image"].shape[0])
        if rows != batch_size:
            raise ValueError(f"expected a global batch of {batch_size} examples, got {rows}")
        replica_batches = strategy.experimental_distribute_values_from_function(
            lambda context: {key: value[context.replica_id_in_sync_group * local:
                                        (context.replica_id_in_sync_group + 1) * local]
                             for key, value in batch.items()})
        replica_offsets = strategy.experimental_distribute_values_from_function(
            lambda context: tf.constant(context.replica_id_in_sync_group * local, tf.int32))
        return replicated_step(replica_batches, replica_offsets, seed)

    return step


def writes_checkpoints(strategy: tf.distribute.Strategy) -> bool:
    """True on the one worker that writes to the real workdir: always, except on the non-chief
    workers of a multi-worker run (`strategy.extended.should_checkpoint`)."""
    return bool(strategy.extended.should_checkpoint)

"""Helper of tests/test_distribute.py, run in a subprocess: `python tests/two_device_run.py WORKDIR`.

TensorFlow must be given its two logical CPU devices before it initialises them, so this runs in a
fresh process. It trains tiny models on one device (the default strategy) and with MirroredStrategy
over the two CPUs from the same seed on the same global batches, and prints one JSON line of the
measured differences; the test asserts on them.
"""

import json
import os
import sys
import time

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

# E402: these imports must come after the logical CPU devices are configured (keras, numpy) and
# after the repository root is put on sys.path (hiabp_tf), so they stay below that setup.
import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hiabp_tf import config as config_lib  # noqa: E402
from hiabp_tf import methods  # noqa: E402
from hiabp_tf import train  # noqa: E402
from hiabp_tf.checks import errors  # noqa: E402
from hiabp_tf.data import input_pipeline  # noqa: E402
from hiabp_tf.runtime import distribute  # noqa: E402
from hiabp_tf.runtime import workdir as workdir_lib  # noqa: E402

TINY = dict(dataset="mnist_5k", width=4, batch_size=8, langevin_steps=3, seed=3)
STEPS = 3
# Step-level equivalence, one model per method (abp_persistent: its chains are compared too).
CASES = {
    "hiabp_l2": dict(method="hiabp", num_layers=2, latent_dims=(4, 4)),
    "vae": dict(method="vae", num_layers=1, latent_dims=(4,)),
    "abp_persistent": dict(method="abp_persistent", num_layers=1, latent_dims=(4,)),
}


def _unwrap(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


def _optimizer_slots(model):
    """The Adamax moments (m, u) of the model's optimisers: they scale with the gradient, so they
    reveal a gradient summed twice or not all-reduced (Adamax's update itself is scale-invariant)."""
    slots = []
    for optimizer in (model.generator_optimizer, model.encoder_optimizer):
        if optimizer is not None:
            slots += [v for v in optimizer.variables if v.name.endswith(("_momentum", "_norm"))]
    assert slots
    return slots


def _max_abs_diff(xs, ys):
    assert len(xs) == len(ys) and xs
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(xs, ys))


def _max_rel_diff(xs, ys):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))) / max(np.max(np.abs(np.asarray(x))), 1e-30))
               for x, y in zip(xs, ys))


def _run_steps(config, strategy):
    """`STEPS` training steps as train.py runs them; returns (model, initial weights, metrics of
    every step)."""
    tf.random.set_seed(None)
    dataset, info = input_pipeline.make_train_dataset(config.dataset, config.batch_size, seed=config.seed)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = methods.build_model(config, info.image_shape, info.num_examples)
    initial = _weights(model)
    step_fn = distribute.make_train_step(strategy, model, config.batch_size)
    base_seed = tf.constant([config.seed, 0], tf.int32)
    iterator, history = iter(dataset), []
    for step in range(STEPS):
        out = step_fn(next(iterator), tf.random.experimental.stateless_fold_in(base_seed, step))
        history.append({name: float(value) for name, value in out.items()})
    return model, initial, history


def step_equivalence(config, mirrored):
    single, initial, single_metrics = _run_steps(config, tf.distribute.get_strategy())
    replicated, mirrored_initial, replicated_metrics = _run_steps(config, mirrored)
    weights, mirrored_weights = _weights(single), _weights(replicated)
    # Every replica's copy of every variable (weights, chains, optimiser state) must agree.
    copies = 0.0
    for variable in workdir_lib.network_weights(replicated) + _optimizer_slots(replicated):
        local = [c.numpy() for c in mirrored.experimental_local_results(_unwrap(variable))]
        assert len(local) == mirrored.num_replicas_in_sync
        copies = max(copies, _max_abs_diff(local[:1] * (len(local) - 1), local[1:]))
    names = sorted(single_metrics[0])
    return {
        "initial_weights_max_abs_diff": _max_abs_diff(initial, mirrored_initial),
        "weights_max_abs_diff": _max_abs_diff(weights, mirrored_weights),
        "weights_moved": _max_abs_diff(initial, weights),  # how far 3 steps move them
        "slots_max_rel_diff": _max_rel_diff([v.numpy() for v in _optimizer_slots(single)],
                                            [v.numpy() for v in _optimizer_slots(replicated)]),
        "metrics_max_rel_diff": max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-30)
                                    for a, b in zip(single_metrics, replicated_metrics) for k in names),
        "metric_names": names,
        "replica_copies_max_abs_diff": copies,
        "iterations": int(replicated.generator_optimizer.iterations.numpy()),
    }


def _train(workdir, steps, strategy, **overrides):
    config = config_lib.RunConfig(**{**TINY, "method": "hiabp", "latent_dims": (4,), "mask": "pepper",
                                     **overrides})
    return train.train(config, workdir, steps, log_every=100, eval_every=10**6, eval_examples=10,
                       checkpoint_every=100, strategy=strategy)


def _weights(model):
    return [v.numpy() for v in workdir_lib.network_weights(model)]


def checkpoints_across_strategies(root, mirrored):
    """train.train end to end (pepper-masked images, evaluation and image summaries at the last
    step): mirrored -> default and default -> mirrored resumes, against 3 steps on one device."""
    straight = _weights(_train(os.path.join(root, "default"), STEPS, "default"))
    np.savez(os.path.join(root, "default_weights.npz"), *straight)  # for the multi-worker test
    mirrored_dir = os.path.join(root, "mirrored_then_default")
    trained = _train(mirrored_dir, 2, mirrored)
    restored, _, _, step = workdir_lib.restore(mirrored_dir)  # one device, outside any strategy
    restore_diff = _max_abs_diff(_weights(trained), _weights(restored))
    resumed_on_default = _weights(_train(mirrored_dir, STEPS, "default"))
    default_dir = os.path.join(root, "default_then_mirrored")
    _train(default_dir, 2, "default")
    resumed_on_mirrored = _weights(_train(default_dir, STEPS, mirrored))
    return {
        "restored_step": step,
        "restore_max_abs_diff": restore_diff,
        "mirrored_then_default_max_abs_diff": _max_abs_diff(straight, resumed_on_default),
        "default_then_mirrored_max_abs_diff": _max_abs_diff(straight, resumed_on_mirrored),
        "summaries_written": bool(os.listdir(os.path.join(mirrored_dir, workdir_lib.TENSORBOARD_DIR))),
    }


def main(root):
    started = time.perf_counter()
    mirrored = distribute.make_strategy("mirrored")
    report = {"replicas": mirrored.num_replicas_in_sync}
    for name, overrides in CASES.items():
        report[name] = step_equivalence(config_lib.RunConfig(**{**TINY, **overrides}), mirrored)
        report[name]["seconds"] = round(time.perf_counter() - started, 1)
    report["checkpoints"] = checkpoints_across_strategies(root, mirrored)
    report["seconds"] = round(time.perf_counter() - started, 1)
    try:
        _train(os.path.join(root, "odd"), 1, mirrored, batch_size=7)
        report["indivisible_batch_error"] = None
    except errors.ConfigError as e:
        report["indivisible_batch_error"] = str(e)
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])

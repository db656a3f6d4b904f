r"""Memory report: peak resident memory of training each dataset configuration, what the training
data cache adds, and the persistent-chain buffer of persistent ABP.

    python -m hiabp_tf.tools.memory --out=results/memory.md [--train_steps=3]

For every flagfile in --flagfiles, a fresh Python subprocess (so measurements are independent)
imports TensorFlow and the package, builds the model with the flagfile's networks and runs
--train_steps training steps (`model.train_step`) at the flagfile's batch size, width, T and image
shape on random images of that shape, then reports its peak resident set size (getrusage
ru_maxrss; on Linux the equivalent VmHWM, which unlike ru_maxrss is not inherited from the
parent process). The real MNIST / SVHN / CelebA data come from tensorflow-datasets and cannot be
downloaded on an offline machine, hence the random images: the input pipeline and its cache are
not in the measurement, and their size is given analytically from what `input_pipeline` caches
(uint8 images and an int64 index per example). One more subprocess only imports TensorFlow, the
baseline that every row pays.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time

from absl import flags

from hiabp_tf.checks import cli
from hiabp_tf.checks import errors
from hiabp_tf.core import hardware

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # hiabp_tf/<group>/x.py
MEASURED_FLAGFILES = (
    "flags/mnist_hiabp_l1.flags", "flags/mnist_hiabp_l4.flags",
    "flags/svhn_hiabp_l1.flags", "flags/svhn_hiabp_l4.flags",
    "flags/celeba_hiabp_l1.flags", "flags/celeba_hiabp_l4.flags",
    "flags/mnist5k_hiabp_l3.flags",
)
PERSISTENT_FLAGFILES = ("flags/mnist_abp_persistent.flags", "flags/svhn_abp_persistent.flags",
                        "flags/celeba_abp_persistent.flags")
# The splits of each dataset (tensorflow-datasets' sizes; mnist_5k is this package's offline split)
# and its image shape after input_pipeline's preprocessing.
DATASETS = {
    "mnist": {"train": 60_000, "test": 10_000, "image_shape": (28, 28, 1)},
    "svhn_cropped": {"train": 73_257, "test": 26_032, "image_shape": (32, 32, 3)},
    "celeb_a": {"train": 162_770, "test": 19_962, "image_shape": (64, 64, 3)},
    "mnist_5k": {"train": 4_000, "test": 1_000, "image_shape": (28, 28, 1)},
}
# What input_pipeline caches per example: the image as uint8 and the int64 index.
CACHED_PIXEL_BYTES = 1
CACHED_INDEX_BYTES = 8
FLOAT_BYTES = 4
SHUFFLE_BUFFER = 60_000  # input_pipeline._MAX_SHUFFLE_BUFFER
MIB = 2**20

# Runs in the measuring subprocess: argv[1] is the JSON spec, the last stdout line the JSON result.
_CHILD = ("import json, sys; from hiabp_tf.tools import memory; "
          "print(json.dumps(memory._child(json.loads(sys.argv[1]))))")


def define_flags():
    flags.DEFINE_string("out", "results/memory.md", "Markdown report to write.")
    flags.DEFINE_list("flagfiles", list(MEASURED_FLAGFILES), "Flagfiles whose training is measured.")
    flags.DEFINE_integer("train_steps", 3, "Training steps per measurement (the first one traces the graph).")
    flags.DEFINE_string("command", None, "The command to record in the report (default: this one).")


FLAGS = flags.FLAGS


def _proc_status_bytes(field: str):
    """A "kB" field of /proc/self/status in bytes (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes.

    getrusage's ru_maxrss, except on Linux, where ru_maxrss survives fork and exec: a child started
    by a large parent (a test run with TensorFlow loaded) would report the parent's peak. There the
    same high-water mark of the process's own address space, VmHWM, is read instead."""
    hwm = _proc_status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB elsewhere


def _current_rss_bytes():
    return _proc_status_bytes("VmRSS")


def _child(spec: dict) -> dict:
    """In a fresh process: imports, (builds and trains a model,) and reports memory in bytes."""
    out = {"peak_rss_python": _peak_rss_bytes()}
    import tensorflow as tf

    out["peak_rss_after_import_tf"] = _peak_rss_bytes()
    if spec.get("config") is None:
        return out
    import keras
    import numpy as np

    from hiabp_tf import config as config_lib
    from hiabp_tf import methods

    out["peak_rss_after_imports"] = _peak_rss_bytes()
    config = config_lib.RunConfig.from_json(spec["config"])
    shape, n = tuple(spec["image_shape"]), int(spec["num_train_examples"])
    keras.utils.set_random_seed(config.seed)
    model = methods.build_model(config, shape, n)
    out["parameters"] = int(sum(v.shape.num_elements() for item in model.checkpoint_items().values()
                                if isinstance(item, keras.Model) for v in item.trainable_variables))
    out["peak_rss_after_build"] = _peak_rss_bytes()
    rng = np.random.default_rng(config.seed)
    batch = {"image": tf.constant(rng.random((config.batch_size,) + shape, dtype=np.float32)),
             "index": tf.constant(rng.integers(0, n, config.batch_size), tf.int64)}
    out["step_seconds"] = []
    for step in range(int(spec["train_steps"])):
        start = time.perf_counter()
        metrics = model.train_step(batch, tf.constant([config.seed, step], tf.int32))
        float(metrics["generator_loss"])  # wait for the step to finish
        out["step_seconds"].append(time.perf_counter() - start)
    out["peak_rss"] = _peak_rss_bytes()
    out["rss_end"] = _current_rss_bytes()
    return out


def _run_child(spec: dict, timeout=None) -> dict:
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"the measuring subprocess failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def import_baseline(timeout=None) -> dict:
    """Peak RSS (bytes) of a fresh Python before and after `import tensorflow`, in a subprocess."""
    return _run_child({"config": None}, timeout)


def measure(config, image_shape, num_train_examples: int, train_steps: int = 3, timeout=None) -> dict:
    """Peak RSS of building `config`'s model and running `train_steps` training steps on random
    images of `image_shape`, in a fresh subprocess. Returns the child's report (bytes, seconds):
    peak_rss, peak_rss_after_imports (TensorFlow, Keras, the package), peak_rss_after_build,
    rss_end, parameters, step_seconds."""
    if train_steps < 1:
        raise ValueError(f"train_steps must be >= 1, got {train_steps}.")
    return _run_child({"config": config.to_json(), "image_shape": list(image_shape),
                       "num_train_examples": int(num_train_examples), "train_steps": int(train_steps)}, timeout)


def measure_peak_rss(config, image_shape, num_train_examples: int, train_steps: int = 3) -> int:
    """Peak resident memory in bytes of `measure`."""
    return int(measure(config, image_shape, num_train_examples, train_steps)["peak_rss"])


def cache_bytes(dataset: str) -> dict:
    """What the input pipeline's caches hold for `dataset` (bytes): its train split (make_train_dataset)
    and test split (make_eval_dataset), uint8 images plus an int64 index per example; and, for
    comparison, the train split's images as float32."""
    info = DATASETS[dataset]
    h, w, c = info["image_shape"]
    per_example = h * w * c * CACHED_PIXEL_BYTES + CACHED_INDEX_BYTES
    return {"per_example": per_example, "train": info["train"] * per_example, "test": info["test"] * per_example,
            "train_float32_images": info["train"] * h * w * c * FLOAT_BYTES}


def persistent_chain_bytes(flagfile: str, num_train_examples: int) -> tuple[int, int]:
    """(the built PersistentABP's persistent_chain_bytes, the formula N x total latent dim x 4) for a
    persistent-ABP flagfile's architecture with `num_train_examples` chains."""
    from hiabp_tf import config as config_lib  # pylint: disable=import-outside-toplevel
    from hiabp_tf.methods import abp  # pylint: disable=import-outside-toplevel

    config, _ = config_lib.load_flagfile(flagfile)
    if config.method != "abp_persistent":
        raise ValueError(f"{flagfile} trains --method={config.method}, not abp_persistent.")
    shape = DATASETS[config.dataset]["image_shape"]
    model = abp.PersistentABP(config.architecture(shape), config.hyperparameters(), num_train_examples)
    return model.persistent_chain_bytes, num_train_examples * config.architecture(shape).total_latent_dim * FLOAT_BYTES


def _mib(n) -> str:
    return "—" if n is None else f"{n / MIB:,.1f}"


def _machine() -> str:
    ram = None
    try:
        with open("/proc/meminfo") as f:
            ram = next((int(l.split()[1]) * 1024 for l in f if l.startswith("MemTotal:")), None)
    except OSError:
        pass
    return hardware.describe() + (f", {ram / 2**30:.1f} GiB RAM" if ram else "") + ", no GPU"


def run(out: str, flagfile_paths=MEASURED_FLAGFILES, train_steps: int = 3, command=None) -> str:
    """Measures every flagfile and writes the Markdown report to `out`; returns its path."""
    from hiabp_tf import config as config_lib  # pylint: disable=import-outside-toplevel

    start = time.perf_counter()
    baseline = import_baseline()
    rows = []
    for path in flagfile_paths:
        full = path if os.path.isabs(path) else os.path.join(REPO, path)
        config, _ = config_lib.load_flagfile(full)
        if config.dataset not in DATASETS:
            raise errors.ConfigError(f"{path}: --dataset={config.dataset} is not one of {', '.join(DATASETS)}, "
                                         "whose sizes and image shapes this report knows.")
        info = DATASETS[config.dataset]
        result = measure(config, info["image_shape"], info["train"], train_steps)
        rows.append((path, config, info, result))
        print(f"{path}: peak RSS {_mib(result['peak_rss'])} MiB", file=sys.stderr, flush=True)

    import tensorflow as tf

    tf_import = baseline["peak_rss_after_import_tf"]
    lines = [
        "# Memory of training", "",
        f"- Command: `{command}` ({time.perf_counter() - start:.0f} s wall time)",
        f"- Machine: {_machine()}; TensorFlow {tf.__version__}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}; written {datetime.date.today().isoformat()}.",
        f"- Method: each row is a fresh Python subprocess that imports TensorFlow, Keras and `hiabp_tf`, builds the "
        f"flagfile's model (networks, both Adamax optimisers with their slots) and runs {train_steps} training "
        "steps (`model.train_step`, the first one tracing the graph) at the flagfile's batch size, width, T and "
        "image shape; memory is the process's peak resident set size (its high-water mark VmHWM from /proc, "
        "which is `getrusage`'s ru_maxrss without the parent's peak that ru_maxrss inherits through fork and exec "
        "on Linux), so independent of the other rows and of the parent.",
        "- Data: random images of the dataset's shape, fed straight to the training step. The real MNIST, SVHN "
        "and CelebA come from tensorflow-datasets and cannot be downloaded on this offline machine; so the "
        "input pipeline and its cache are not in the measurement: their size is below, computed from what "
        "`input_pipeline` caches.",
        "",
        f"Baseline: a fresh Python that only imports TensorFlow peaks at **{_mib(tf_import)} MiB** "
        f"({_mib(baseline['peak_rss_python'])} MiB before the import). Every row below pays it.",
        "",
        "| flagfile | dataset | image | L | latent dims | width | batch | T | parameters | weights + Adamax "
        "slots (MiB) | after imports (MiB) | peak RSS (MiB) | peak minus imports (MiB) | RSS after the steps (MiB) "
        "| s / step (after the first) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path, config, info, r in rows:
        later = r["step_seconds"][1:] or r["step_seconds"]
        lines.append(
            f"| `{path}` | {config.dataset} | {'x'.join(str(s) for s in info['image_shape'])} | {config.num_layers} | "
            f"{list(config.latent_dims)} | {config.width} | {config.batch_size} | {config.langevin_steps} | "
            f"{r['parameters']:,} | {_mib(r['parameters'] * FLOAT_BYTES * 3)} | {_mib(r['peak_rss_after_imports'])} | "
            f"**{_mib(r['peak_rss'])}** | {_mib(r['peak_rss'] - r['peak_rss_after_imports'])} | {_mib(r['rss_end'])} | "
            f"{sum(later) / len(later):.2f} |")
    lines += [
        "", "Parameters: trainable weights of the generator and encoder; weights + Adamax slots = parameters x "
        "4 bytes x 3 (the weights, and Adamax's two slots per weight). \"Peak minus imports\" is the model's "
        "share: weights, optimiser state, the traced graph and the activations of one training step (T "
        "Langevin steps run in a graph while-loop outside the gradient tape, so activations do not grow with "
        "T). Step times are indicative (a shared machine).", "",
        "## Training data cache (analytic)", "",
        "`input_pipeline.make_train_dataset` caches the decoded training split in memory (`Dataset.cache()`) "
        "with images still uint8 (1 byte per pixel; converted to float32 per batch after the cache) and an "
        "int64 index per example; `make_eval_dataset` caches the test split the same way (filled at the first "
        "in-training evaluation). The shuffle buffer holds up to "
        f"{SHUFFLE_BUFFER:,} of the cached elements; tf.data hands tensors on by reference, so it should "
        "share the cache's memory rather than copy it (expected from tf.data's design, not measured here). "
        "The float32 column is what caching the images as float32 (N x H x W x C x 4 bytes) would take "
        "instead.", "",
        "| dataset | train examples | image | bytes per cached example | train cache (MiB) | if float32 (MiB) "
        "| test examples | test cache (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("mnist", "svhn_cropped", "celeb_a", "mnist_5k"):
        info, c = DATASETS[name], cache_bytes(name)
        h, w, ch = info["image_shape"]
        lines.append(f"| {name} | {info['train']:,} | {h}x{w}x{ch} | {h * w * ch} + 8 = {c['per_example']:,} | "
                     f"{_mib(c['train'])} | {_mib(c['train_float32_images'])} | {info['test']:,} | {_mib(c['test'])} |")
    lines += ["", "So a training run on the real data needs about the measured peak RSS of its row plus its "
              "dataset's train and test caches:", "",
              "| flagfile | measured peak RSS (MiB) | + train cache + test cache (MiB) | estimated total (MiB) |",
              "|---|---|---|---|"]
    for path, config, info, r in rows:
        c = cache_bytes(config.dataset)
        lines.append(f"| `{path}` | {_mib(r['peak_rss'])} | {_mib(c['train'] + c['test'])} | "
                     f"{_mib(r['peak_rss'] + c['train'] + c['test'])} |")
    lines += ["",
              "## Persistent ABP: the chain buffer (analytic and built)", "",
              "Persistent ABP keeps one Langevin chain per training example: a non-trainable float32 variable of "
              "N x d_l per latent layer, N x (total latent dim) x 4 bytes in all. Built with each paper flagfile's "
              "architecture (`abp.PersistentABP(...).persistent_chain_bytes`):", "",
              "| flagfile | N (train examples) | total latent dim | formula N x d x 4 (bytes) | built (bytes) | MiB |",
              "|---|---|---|---|---|---|"]
    for path in PERSISTENT_FLAGFILES:
        config, _ = config_lib.load_flagfile(os.path.join(REPO, path))
        n = DATASETS[config.dataset]["train"]
        built, formula = persistent_chain_bytes(os.path.join(REPO, path), n)
        lines.append(f"| `{path}` | {n:,} | {sum(config.latent_dims)} | {n:,} x {sum(config.latent_dims)} x 4 = "
                     f"{formula:,} | {built:,} | {_mib(built)} |")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(out + ".tmp", out)
    return out


def main():
    command = FLAGS.command or "python -m hiabp_tf.tools.memory " + " ".join(sys.argv[1:])
    if FLAGS.train_steps < 1:
        raise errors.ConfigError(f"--train_steps must be >= 1, got {FLAGS.train_steps}.")
    path = run(FLAGS.out, FLAGS.flagfiles, FLAGS.train_steps, command)
    with open(path) as f:
        print(f.read())


if __name__ == "__main__":
    cli.run(main, define_flags, workdir_flag=None)

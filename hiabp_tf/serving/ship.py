r"""Ships a trained model beside the results it made: its networks' weights in 16 bits, no optimiser.

    python -m hiabp_tf.serving.ship --workdir=runs/cpu/mnist_hiabp_l3 --out=results/cpu/models/mnist_hiabp_l3

The folder written (config.json, weights.npz, shipped.json) is a workdir that `hiabp_tf.load`,
`python -m hiabp_tf.evaluate`, export and inpaint read like a trained one, so a committed number can
be rescored in seconds without training. float16 is kept only if the shipped model reproduces the
workdir's test scores (its evaluate result) to 3 significant digits; otherwise float32 is shipped.
shipped.json records the scores both ways and a data-free probe (the mean pixel of fixed samples)
that a test reproduces.
"""

from __future__ import annotations

import glob
import json
import os
import shutil

from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from hiabp_tf.checks import cli
from hiabp_tf.evaluation import scoring as evaluate_lib
from hiabp_tf.runtime import workdir as workdir_lib

SCORES = ("mse_E", "mse_EL", "mse_L", "mse_EL_det")
PROBE_SAMPLES, PROBE_SEED = 16, (0, 7)


def probe(model) -> float:
    """The mean pixel of PROBE_SAMPLES samples drawn with PROBE_SEED: a fingerprint of the weights
    that needs no data."""
    return float(tf.reduce_mean(model.sample(tf.constant(PROBE_SAMPLES), tf.constant(PROBE_SEED, tf.int32))))


def _scores(result: dict) -> dict:
    return {k: result[k] for k in SCORES if result.get(k) is not None}


def agree(a: dict, b: dict, digits: int = 3) -> bool:
    """The same scores, equal to `digits` significant digits."""
    return a.keys() == b.keys() and all(f"{a[k]:.{digits}g}" == f"{b[k]:.{digits}g}" for k in a)


def _already_shipped(out: str, workdir: str, step: int, reference: dict) -> dict | None:
    """`out`'s shipped.json if it was shipped from this workdir's `step` with these scores (and its
    weights are there), else None."""
    path = os.path.join(out, workdir_lib.SHIPPED_FILE)
    if not (os.path.isfile(path) and os.path.isfile(os.path.join(out, workdir_lib.WEIGHTS_FILE))):
        return None
    try:
        record = workdir_lib.read_shipped(out)
    except workdir_lib.WorkdirError:  # unreadable: shipped again, which rewrites it whole
        return None
    same = (record.get("source") == workdir and record.get("step") == step
            and record.get("full_precision") == _scores(reference) and "agree_to_3_significant_digits" in record)
    return record if same else None


def ship(workdir: str, out: str, data_dir=None, command: str | None = None) -> dict:
    """Writes the shipped model of `workdir` to `out` (see the module docstring); returns shipped.json."""
    model, config, _, step = workdir_lib.restore(workdir)
    reference_path = evaluate_lib.result_path(workdir, config.dataset, "test")
    reference = evaluate_lib.read_result(reference_path)  # None if absent or unreadable: scored again
    if reference is None or reference.get("step") != step:
        reference = evaluate_lib.evaluate(workdir, data_dir=data_dir)
    shipped = _already_shipped(out, workdir, step, reference)
    if shipped is not None:  # a report run again: the same model is not rescored
        logging.info("%s: already shipped from %s step %d", out, workdir, step)
        return shipped
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(os.path.join(workdir, workdir_lib.CONFIG_FILE), os.path.join(out, workdir_lib.CONFIG_FILE))
    record = dict(source=workdir, step=step, dataset=config.dataset, full_precision=_scores(reference),
                  evaluation_seed=reference["seed"], probe_full_precision=probe(model), command=command)
    for dtype in (np.float16, np.float32):
        size = workdir_lib.save_weights(model, os.path.join(out, workdir_lib.WEIGHTS_FILE), dtype)
        workdir_lib.write_json_atomic(os.path.join(out, workdir_lib.SHIPPED_FILE),
                                      dict(record, weights_dtype=np.dtype(dtype).name, weights_bytes=size))
        rescored = evaluate_lib.evaluate(out, data_dir=data_dir, seed=reference["seed"])
        for path in glob.glob(os.path.join(out, "eval_*.json")):  # the committed numbers stay in shipped.json
            os.remove(path)
        record.update(weights_dtype=np.dtype(dtype).name, weights_bytes=size, shipped=_scores(rescored),
                      probe=probe(workdir_lib.restore(out)[0]))
        if agree(record["full_precision"], record["shipped"]):
            break
        logging.warning("%s: %s weights give %s, not %s to 3 significant digits", out, np.dtype(dtype).name,
                        record["shipped"], record["full_precision"])
    record["agree_to_3_significant_digits"] = agree(record["full_precision"], record["shipped"])
    workdir_lib.write_json_atomic(os.path.join(out, workdir_lib.SHIPPED_FILE), record)
    return record


def define_flags():
    flags.DEFINE_string("workdir", None, "A workdir written by hiabp_tf.train.")
    flags.DEFINE_string("out", None, "Folder of the shipped model, e.g. results/cpu/models/NAME.")
    flags.DEFINE_string("data_dir", None, "Data dir of the run's dataset (as for evaluate).")
    flags.DEFINE_string("command", None, "The command that trained the run, kept in shipped.json.")


FLAGS = flags.FLAGS


def main():
    print(json.dumps(ship(FLAGS.workdir, FLAGS.out, FLAGS.data_dir, FLAGS.command)), flush=True)


if __name__ == "__main__":
    cli.run(main, define_flags)

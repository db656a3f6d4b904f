r"""Exports a trained workdir as a TensorFlow SavedModel, usable without this package.

    python -m hiabp_tf.export --workdir=runs/quick/mnist5k_hiabp_l3 --out=exported/hiabp_l3 [--overwrite]

Then, with nothing but TensorFlow:

    import tensorflow as tf
    model = tf.saved_model.load("exported/hiabp_l3")
    seed = tf.constant([0, 0], tf.int32)                  # stateless seed, shape [2]
    z = model.signatures["encode"](images=x, seed=seed, langevin_steps=tf.constant(15))   # {"z1", ...}
    x_hat = model.signatures["decode"](**z)["images"]
    both = model.signatures["reconstruct"](images=x, seed=seed, langevin_steps=tf.constant(15))  # {"E", "E+L"}
    samples = model.signatures["sample"](num_samples=tf.constant(16), seed=seed)["images"]

Serving signatures (batch dimension free; images float32 (N, H, W, C) in [0, 1]; seed int32 [2],
any pair of int32 values, the dtype being its only bound; langevin_steps int32 scalar >= 0), the graph
functions of `hiabp_tf.serving.api.Inference`, Langevin dynamics inside the graph. Each checks its
inputs in the graph with tf.debugging assertions (shape, N >= 1, finite values in [0, 1], T >= 0,
1 <= num_samples <= the 2 GiB bound), so a bad input raises an InvalidArgumentError naming it:

    encode(images, seed, langevin_steps)        -> {"z1": (N, d_1), ..., "zL": (N, d_L)}
                                                   (langevin_steps = 0: the encoder's mean)
    decode(z1, ..., zL)                         -> {"images"}
    reconstruct(images, seed, langevin_steps)   -> {"E", "E+L"} ({"L"} for abp / abp_persistent)
    inpaint(images, mask, seed, langevin_steps) -> {"recovered", "reconstruction", "z1", ..., "zL"}
                                                   (mask float32 (N, H, W, C): 1 = observed, 0 = missing)
    sample(num_samples, seed)                   -> {"images"} (generated 500 at a time: chunk 0 from
                                                   seed, chunk k from stateless_fold_in(seed, k))

`hiabp_tf.load(workdir)` gives the same results on the same inputs: its int seed s is the seed
[s, 0] here. Beside the SavedModel, `hiabp_export.json` records the run's configuration, the image
shape, the latent sizes, the default number of Langevin steps and the signatures. A non-empty --out
is refused unless --overwrite; the SavedModel is written to a temporary folder next to --out and
renamed into place, so a failed export never leaves a half-written --out nor loses a finished one.
The command prints that JSON as the last line of stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from hiabp_tf.checks import errors
from hiabp_tf.runtime import workdir as workdir_lib
from hiabp_tf.serving import api

INFO_FILE = "hiabp_export.json"
FORMAT_VERSION = 1


def define_flags():
    """Defines the command-line flags (only when run as a command, so modules import cleanly)."""
    flags.DEFINE_string("workdir", None, "A workdir written by hiabp_tf.train (its latest checkpoint is exported).")
    flags.DEFINE_string("out", None, "Folder of the SavedModel (created; must be empty or absent unless --overwrite).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing non-empty --out.")


FLAGS = flags.FLAGS


def _signature_description(functions, input_specs) -> dict:
    """Each signature's declared inputs (the shapes its graph checks, `api.Inference.input_specs`)
    and its outputs."""
    return {name: {"inputs": {spec.name: {"shape": spec.shape.as_list(), "dtype": spec.dtype.name}
                              for spec in input_specs[name]},
                   "outputs": sorted(fn.structured_outputs)}
            for name, fn in functions.items()}


def _check_out(out: str, overwrite: bool) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise errors.ConfigError(f"--out={out} is a file; give a folder for the SavedModel.")
    if workdir_lib.path_problem(out):  # a dangling link or a loop: renaming onto it would replace the link
        raise errors.ConfigError(f"--out={out} {workdir_lib.path_problem(out)}; give a folder for the SavedModel.")
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise errors.ConfigError(
            f"--out={out} is not empty; choose a new folder, or pass --overwrite to replace what is there.")


def export(workdir: str, out: str, overwrite: bool = False) -> dict:
    """Writes the SavedModel of the latest readable checkpoint in `workdir` to `out`; returns the
    info written to <out>/hiabp_export.json."""
    if not out:
        raise errors.ConfigError("--out is required: the folder to write the SavedModel to.")
    out = os.path.abspath(os.fspath(out))
    _check_out(out, overwrite)
    model = api.load(workdir)
    parent = os.path.dirname(out)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=parent, prefix=f".tmp-{os.path.basename(out)}-")
    except OSError as e:
        raise errors.ConfigError(f"--out={out}: cannot write there ({e.strerror or e}); choose a folder "
                                     "you can write to.") from None
    try:
        signatures = model.inference.serving_signatures()
        tf.saved_model.save(model.inference, tmp, signatures=signatures)
        _make_readable(tmp)
        info = {
            "format": FORMAT_VERSION,
            "method": model.method,
            "image_shape": list(model.image_shape),
            "latent_dims": list(model.latent_dims),
            "num_layers": model.num_layers,
            "langevin_steps": model.langevin_steps,
            "step": model.step,
            "workdir": os.path.abspath(workdir),
            "config": model.config.to_json(),
            "signatures": _signature_description(signatures, model.inference.input_specs),
            "checks": "every input is checked in the graph (tf.debugging): shapes as declared (N >= 1), images "
                      "and masks finite and in [0, 1], langevin_steps >= 0 (> 0 without an encoder), "
                      f"num_samples in 1..{model.inference.max_samples}; a bad input raises InvalidArgumentError "
                      "naming it",
            "seed": "int32 [2] (any int32 pair), stateless: the same seed gives the same result; "
                    "hiabp_tf.load(workdir)'s seed=s is [s, 0]",
            "mask": "1 = observed, 0 = missing",
            "tensorflow": tf.__version__,
        }
        workdir_lib.write_json_atomic(os.path.join(tmp, INFO_FILE), info)
        os.chmod(os.path.join(tmp, INFO_FILE), 0o666 & ~_umask())
        _move_into_place(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _make_readable(folder: str) -> None:
    """mkdtemp and mkstemp create private files: give the export the usual permissions (umask)."""
    os.chmod(folder, 0o777 & ~_umask())


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _move_into_place(tmp: str, out: str, overwrite: bool) -> None:
    """Renames the finished export `tmp` to `out`; an old `out` is removed only once `tmp` is in place."""
    _check_out(out, overwrite)  # again: something may have appeared while exporting
    old = None
    if os.path.isdir(out):
        if os.listdir(out):
            old = tempfile.mkdtemp(dir=os.path.dirname(out), prefix=f".old-{os.path.basename(out)}-")
            os.rmdir(old)
            os.rename(out, old)
        else:
            os.rmdir(out)
    try:
        os.rename(tmp, out)
    except BaseException:
        if old is not None and not os.path.exists(out):
            os.rename(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def main():
    if not FLAGS.out:
        raise app.UsageError("--out is required: the folder to write the SavedModel to.")
    info = export(FLAGS.workdir, FLAGS.out, FLAGS.overwrite)
    logging.info("Wrote the SavedModel to %s", os.path.abspath(FLAGS.out))
    print(json.dumps({"out": os.path.abspath(FLAGS.out), **info}, sort_keys=True), flush=True)

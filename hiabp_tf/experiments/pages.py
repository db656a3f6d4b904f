"""What every results page of the experiments shares: a run's evaluation read (or computed once), a run
described in one line, the page's footer (the protocol and how its numbers were made), the atomic write,
and a dataset's human name.

Knows the workdir (runtime), the scoring (evaluation) and the records; not the plan, the runs or the
tables: report, informative_init and langevin_budget build on it.
"""

from __future__ import annotations

import datetime
import json
import os
import platform

import tensorflow as tf

from hiabp_tf.checks import errors
from hiabp_tf.data import image_folder
from hiabp_tf.evaluation import metrics
from hiabp_tf.evaluation import scoring as evaluate_lib
from hiabp_tf.experiments import records
from hiabp_tf.runtime import workdir as workdir_lib

PROTOCOL = (
    "MSE: mean over pixels (in [0, 1]) of the squared error, averaged over the whole test split. "
    "[E]: x_hat = g(mu_phi(x)) (for LVAE: every layer at its top-down posterior mean); [E+L]: z_0 from "
    "the encoder, then T Langevin steps on the test image (training T, s, sigma), x_hat = g(z_T); "
    "[L] (ABP): z_0 ~ N(0, I), then Langevin steps on the test image. See docs/protocol.md.")


def load_eval(workdir: str, mask: str = "none", langevin_steps=None, split: str = "test") -> dict:
    """The evaluate.py result of `workdir` on a split (the test split by default) of its training dataset."""
    config, _ = workdir_lib.load_config(workdir)
    path = evaluate_lib.result_path(workdir, config.dataset, split, mask, langevin_steps)
    if not os.path.isfile(path):
        flags_used = "".join(f" --{k}={v}" for k, v in (("mask", mask), ("langevin_steps", langevin_steps),
                                                         ("split", None if split == "test" else split))
                             if v not in (None, "none"))
        raise errors.WorkdirError(
            f"{path} is missing: run `python -m hiabp_tf.evaluate --workdir={workdir}{flags_used}` first.")
    with open(path) as f:
        return json.load(f)


def load_or_evaluate(workdir: str, mask: str = "none", langevin_steps=None) -> dict:
    """The evaluate.py result, computed (and saved) first if the workdir has none yet."""
    try:
        return load_eval(workdir, mask, langevin_steps)
    except errors.WorkdirError:
        return evaluate_lib.evaluate(workdir, langevin_steps=langevin_steps, mask=mask)


def run_details(label: str, workdir: str, mask: str = "none") -> str:
    config, _ = workdir_lib.load_config(workdir)
    result = load_or_evaluate(workdir, mask)
    return (f"- **{label}**: `--method={config.method}`, L = {config.num_layers}, latent dims "
            f"{list(config.latent_dims)}, width {config.width}; {result['step']} updates of batch "
            f"{config.batch_size} on {config.dataset}, T = {config.langevin_steps}, s = {config.step_size}, "
            f"sigma = {config.sigma}, Adamax lr {config.learning_rate}, {config.precision} networks, "
            f"training seed {config.seed}; "
            f"scored on {result['num_examples']} test images with {result['langevin_steps']} test-time "
            f"Langevin steps, evaluation seed {result['seed']}; workdir `{workdir}`{record_note(workdir)}.")


def record_note(workdir: str) -> str:
    """Where a run of runs/SCALE/NAME is kept once runs/ is gone: its record, if it has one."""
    parts = os.path.normpath(workdir).split(os.sep)
    if len(parts) == 3 and parts[0] == "runs":
        record = records.record_dir(parts[1], parts[2])
        if records.recorded_step(record) is not None:
            return f" (its record: `{record}`)"
    return ""


def footer(command: str | None, details: list[str], datasets) -> list[str]:
    lines = [""] + [f"For scale: predicting the mean training image for every test image gives MSE "
                    f"{metrics.mean_image_mse(d):.5f} on {d}." for d in sorted(datasets)]
    lines += ["", PROTOCOL, "", "## How these numbers were made", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += details
    lines += ["", f"Produced by `python -m hiabp_tf.experiments.report` on {datetime.date.today().isoformat()} "
              f"(TensorFlow {tf.__version__}, Python {platform.python_version()}, {platform.machine()})."]
    return lines


def write(out_dir: str, table: str, lines: list[str]) -> str:
    path = os.path.join(out_dir, table)
    os.makedirs(out_dir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def write_json(out_dir: str, name: str, data) -> str:
    """The numbers of a table as JSON beside its Markdown (what `claims` reads; no runs needed)."""
    path = os.path.join(out_dir, name)
    workdir_lib.write_json_atomic(path, data)
    return path


DATASET_NAMES = {"mnist": "MNIST (28 x 28)", "mnist_5k": "mnist_5k (5,000 MNIST digits, 28 x 28)",
                 "svhn_cropped": "SVHN (32 x 32)", "celeb_a": "CelebA faces (64 x 64)"}


def dataset_name(dataset: str) -> str:
    """A short human name of a --dataset, e.g. "CelebA faces (32 x 32)" for
    images:/data/celeba,image_size=32,...: a folder of images by its name and image size."""
    if dataset in DATASET_NAMES:
        return DATASET_NAMES[dataset]
    if image_folder.is_images_name(dataset):
        folder, given = image_folder.parse_name(dataset)
        size = given.get("image_size", image_folder.DEFAULTS["image_size"])
        base = os.path.basename(os.path.normpath(folder))
        return f"{'CelebA faces' if 'celeb' in base.lower() else f'the images of {base}/'} ({size} x {size})"
    if dataset.startswith("npz:"):
        return os.path.basename(dataset[len("npz:"):])
    return dataset

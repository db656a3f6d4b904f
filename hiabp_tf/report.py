r"""Writes results/ tables and figures from trained, evaluated workdirs (nothing is typed by hand).

    python -m hiabp_tf.report --out=results/quick --table=hiabp_mnist5k.md \
        --runs="IABP [E+L] (L=1)=runs/quick/mnist5k_iabp,HiABP [E+L] (L=3)=runs/quick/mnist5k_hiabp_l3"

For every run (label=workdir) the table gets MSE [E] and [E+L] from the workdir's evaluate.py JSON,
with the data, steps, seed and the command that trained it; each run also gets a PNG of test
originals over their [E] and [E+L] reconstructions, and a PNG of unconditional samples.
"""

from __future__ import annotations

import datetime
import json
import os
import platform

from absl import app
from absl import flags
from absl import logging

import numpy as np
import tensorflow as tf

from hiabp_tf import evaluate as evaluate_lib
from hiabp_tf import experiment
from hiabp_tf import images
from hiabp_tf import metrics

def define_flags():
    """Defines the command-line flags (only when run as a command, so modules import cleanly)."""
    flags.DEFINE_string("out", None, "Folder for the table and figures, e.g. results/quick.")
    flags.DEFINE_string("table", "table.md", "File name of the Markdown table inside --out.")
    flags.DEFINE_string("title", "Test reconstruction MSE", "Heading of the table.")
    flags.DEFINE_list("runs", [], "label=workdir pairs, in table order.")
    flags.DEFINE_string("command", None, "The command that produced the runs (recorded in the table).")
    flags.DEFINE_integer("num_images", 10, "Test images / samples per figure row.")


FLAGS = flags.FLAGS


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_").replace("__", "_")


def run_figures(workdir: str, out_dir: str, name: str, num_images: int = 10, seed: int = 0) -> dict:
    """PNG grids for one run: reconstructions (rows: test, [E], [E+L]) and samples (2 rows)."""
    model, config, _, step = experiment.restore(workdir)
    originals = metrics.spread_images(config.dataset, num_images)
    recon = model.reconstruct(originals, tf.constant([seed, 2], tf.int32))
    rows = np.concatenate([originals, recon["E"].numpy(), recon["E+L"].numpy()])
    paths = {"reconstructions": os.path.join(out_dir, f"reconstructions_{name}.png"),
             "samples": os.path.join(out_dir, f"samples_{name}.png")}
    images.save_png(paths["reconstructions"], images.grid(rows, num_images),
                    f"{name}, step {step}: test images / [E] / [E+L]")
    samples = model.sample(tf.constant(2 * num_images), tf.constant([seed, 3], tf.int32)).numpy()
    images.save_png(paths["samples"], images.grid(samples, num_images), f"{name}, step {step}: samples z ~ N(0, I)")
    return paths


def _load_eval(workdir: str, dataset: str) -> dict:
    path = evaluate_lib.result_path(workdir, dataset, "test")
    if not os.path.isfile(path):
        raise experiment.WorkdirError(
            f"{path} is missing: run `python -m hiabp_tf.evaluate --workdir={workdir}` first.")
    with open(path) as f:
        return json.load(f)


def write_table(out_dir: str, table: str, title: str, runs: list[tuple[str, str]], command: str | None,
                num_images: int = 10) -> str:
    """Markdown table of MSE [E] / [E+L] for `runs` ((label, workdir) pairs) plus their figures."""
    lines = [f"# {title}", ""]
    lines += ["| method | dataset | L | latent dims | steps | T | MSE [E] | MSE [E+L] | test images | figures |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    details = []
    for label, workdir in runs:
        config, _ = experiment.load_config(workdir)
        result = _load_eval(workdir, config.dataset)
        figs = run_figures(workdir, out_dir, _slug(label), num_images)
        links = " ".join(f"[{k}]({os.path.basename(v)})" for k, v in figs.items())
        lines.append(
            f"| {label} | {result['dataset']} | {config.num_layers} | {list(config.latent_dims)} | "
            f"{result['step']} | {result['langevin_steps']} | {result['mse_E']:.5f} | {result['mse_EL']:.5f} | "
            f"{result['num_examples']} | {links} |")
        details.append(f"- **{label}**: workdir `{workdir}`; training seed {config.seed}, evaluation seed "
                       f"{result['seed']}; width {config.width}, batch {config.batch_size}, s = {config.step_size}, "
                       f"sigma = {config.sigma}, Adamax lr {config.learning_rate}.")
    datasets = sorted({experiment.load_config(workdir)[0].dataset for _, workdir in runs})
    lines += [""] + [f"For scale: predicting the mean training image for every test image gives MSE "
                     f"{metrics.mean_image_mse(d):.5f} on {d}." for d in datasets]
    lines += ["", "MSE: mean over pixels (in [0, 1]) of the squared error, averaged over the whole test split. "
              "[E]: x_hat = g(mu_phi(x)); [E+L]: z_0 from the encoder, then T Langevin steps on the test image "
              "(training T, s, sigma), x_hat = g(z_T). See the README's Protocol section.", ""]
    lines += ["## How these numbers were made", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += details
    lines += ["", f"Produced by `python -m hiabp_tf.report` on {datetime.date.today().isoformat()} "
              f"(TensorFlow {tf.__version__}, Python {platform.python_version()}, {platform.machine()})."]
    path = os.path.join(out_dir, table)
    os.makedirs(out_dir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.out or not FLAGS.runs:
        raise app.UsageError("--out and --runs=label=workdir,... are required.")
    runs = []
    for item in FLAGS.runs:
        if "=" not in item:
            raise app.UsageError(f"--runs item {item!r} is not label=workdir.")
        label, workdir = item.rsplit("=", 1)
        runs.append((label.strip(), workdir.strip()))
    try:
        path = write_table(FLAGS.out, FLAGS.table, FLAGS.title, runs, FLAGS.command, FLAGS.num_images)
    except experiment.USER_ERRORS as e:
        experiment.exit_with_user_error(e)
    logging.info("Wrote %s", path)
    with open(path) as f:
        print(f.read())


if __name__ == "__main__":
    define_flags()
    app.run(main)

r"""Writes results/ tables and figures from trained, evaluated workdirs (no number is typed by hand).

Two kinds of table:

    # one row per run, every score the method has, with figures
    python -m hiabp_tf.report --kind=runs --out=results/quick --table=hiabp_mnist5k.md \
        --runs="IABP (L=1)=runs/quick/mnist5k_iabp,HiABP (L=3)=runs/quick/mnist5k_hiabp_l3"

    # the paper's Table 1: rows are methods, columns datasets; --runs items are COLUMN|ROW=workdir
    python -m hiabp_tf.report --kind=table1 --out=results/quick --table=table1.md \
        --runs="mnist_5k|vae=runs/quick/mnist5k_vae,mnist_5k|iabp=runs/quick/mnist5k_iabp,..."

Scores come from each workdir's evaluate.py JSON; each run also gets a PNG of test originals over its
reconstructions and a PNG of unconditional samples.
"""

from __future__ import annotations

import datetime
import json
import os
import platform

from absl import app
from absl import flags
from absl import logging

import tensorflow as tf

from hiabp_tf import evaluate as evaluate_lib
from hiabp_tf import experiment
from hiabp_tf import images
from hiabp_tf import metrics

# Table 1 of the paper: (row key, label, score reported).
TABLE1_ROWS = (
    ("vae", "VAE", "mse_E"),
    ("lvae", "LVAE (L=4)", "mse_E"),
    ("vlae", "VLAE (L=4)", "mse_E"),
    ("abp", "ABP (non-persistent)", "mse_L"),
    ("abp_persistent", "ABP (persistent)", "mse_L"),
    ("iabp", "IABP [E] (L=1)", "mse_E"),
    ("iabp", "IABP [E+L] (L=1)", "mse_EL"),
    ("hiabp_l2", "HiABP [E+L] (L=2)", "mse_EL"),
    ("hiabp_l3", "HiABP [E+L] (L=3)", "mse_EL"),
    ("hiabp_l4", "HiABP [E+L] (L=4)", "mse_EL"),
)
SCORE_LABELS = {"mse_E": "[E]", "mse_EL": "[E+L]", "mse_L": "[L]"}
PROTOCOL = (
    "MSE: mean over pixels (in [0, 1]) of the squared error, averaged over the whole test split. "
    "[E]: x_hat = g(mu_phi(x)) (for LVAE: every layer at its top-down posterior mean); [E+L]: z_0 from "
    "the encoder, then T Langevin steps on the test image (training T, s, sigma), x_hat = g(z_T); "
    "[L] (ABP): z_0 ~ N(0, I), then Langevin steps on the test image. See the README's Protocol section.")


def define_flags():
    """Defines the command-line flags (only when run as a command, so modules import cleanly)."""
    flags.DEFINE_enum("kind", "runs", ["runs", "table1"], "Which table to write.")
    flags.DEFINE_string("out", None, "Folder for the table and figures, e.g. results/quick.")
    flags.DEFINE_string("table", "table.md", "File name of the Markdown table inside --out.")
    flags.DEFINE_string("title", "Test reconstruction MSE", "Heading of the table.")
    flags.DEFINE_list("runs", [], "label=workdir pairs (kind=runs) or COLUMN|ROW=workdir (kind=table1).")
    flags.DEFINE_string("command", None, "The command that produced the runs (recorded in the table).")
    flags.DEFINE_integer("num_images", 10, "Test images / samples per figure row.")


FLAGS = flags.FLAGS


def _slug(label: str) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")
    while "__" in slug:
        slug = slug.replace("__", "_")
    return slug


def run_figures(workdir: str, out_dir: str, name: str, num_images: int = 10, seed: int = 0) -> dict:
    """PNG grids for one run: test images over each reconstruction the method has, and samples."""
    model, config, _, step = experiment.restore(workdir)
    originals = metrics.spread_images(config.dataset, num_images)
    rows, caption = metrics.reconstruction_rows(model, originals, seed, config.test_langevin_steps)
    paths = {"reconstructions": os.path.join(out_dir, f"reconstructions_{name}.png"),
             "samples": os.path.join(out_dir, f"samples_{name}.png")}
    images.save_png(paths["reconstructions"], images.grid(rows, num_images), f"{name}, step {step}: {caption}")
    samples = model.sample(tf.constant(2 * num_images), tf.constant([seed, 3], tf.int32)).numpy()
    images.save_png(paths["samples"], images.grid(samples, num_images), f"{name}, step {step}: samples z ~ N(0, I)")
    return paths


def load_eval(workdir: str) -> dict:
    """The evaluate.py result of `workdir` on the test split of its training dataset."""
    config, _ = experiment.load_config(workdir)
    path = evaluate_lib.result_path(workdir, config.dataset, "test")
    if not os.path.isfile(path):
        raise experiment.WorkdirError(
            f"{path} is missing: run `python -m hiabp_tf.evaluate --workdir={workdir}` first.")
    with open(path) as f:
        return json.load(f)


def _run_details(label: str, workdir: str) -> str:
    config, _ = experiment.load_config(workdir)
    result = load_eval(workdir)
    return (f"- **{label}**: `--method={config.method}`, L = {config.num_layers}, latent dims "
            f"{list(config.latent_dims)}, width {config.width}; {result['step']} updates of batch "
            f"{config.batch_size} on {config.dataset}, T = {config.langevin_steps}, s = {config.step_size}, "
            f"sigma = {config.sigma}, Adamax lr {config.learning_rate}, training seed {config.seed}; "
            f"scored on {result['num_examples']} test images with {result['langevin_steps']} test-time "
            f"Langevin steps, evaluation seed {result['seed']}; workdir `{workdir}`.")


def _footer(command: str | None, details: list[str], datasets) -> list[str]:
    lines = [""] + [f"For scale: predicting the mean training image for every test image gives MSE "
                    f"{metrics.mean_image_mse(d):.5f} on {d}." for d in sorted(datasets)]
    lines += ["", PROTOCOL, "", "## How these numbers were made", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += details
    lines += ["", f"Produced by `python -m hiabp_tf.report` on {datetime.date.today().isoformat()} "
              f"(TensorFlow {tf.__version__}, Python {platform.python_version()}, {platform.machine()})."]
    return lines


def _write(out_dir: str, table: str, lines: list[str]) -> str:
    path = os.path.join(out_dir, table)
    os.makedirs(out_dir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.5f}"


def write_runs_table(out_dir: str, table: str, title: str, runs: list[tuple[str, str]],
                     command: str | None, num_images: int = 10) -> str:
    """One row per (label, workdir): MSE [E], [E+L], [L] where the method has them, plus figures."""
    lines = [f"# {title}", "",
             "| method | dataset | L | latent dims | steps | T (test) | MSE [E] | MSE [E+L] | MSE [L] | test images | figures |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    datasets = set()
    for label, workdir in runs:
        config, _ = experiment.load_config(workdir)
        result = load_eval(workdir)
        datasets.add(config.dataset)
        figs = run_figures(workdir, out_dir, _slug(label), num_images)
        links = " ".join(f"[{k}]({os.path.basename(v)})" for k, v in figs.items())
        lines.append(
            f"| {label} | {result['dataset']} | {config.num_layers} | {list(config.latent_dims)} | {result['step']} | "
            f"{result['langevin_steps']} | {_fmt(result.get('mse_E'))} | {_fmt(result.get('mse_EL'))} | "
            f"{_fmt(result.get('mse_L'))} | {result['num_examples']} | {links} |")
    lines += _footer(command, [_run_details(label, workdir) for label, workdir in runs], datasets)
    return _write(out_dir, table, lines)


def write_table1(out_dir: str, table: str, title: str, runs: dict, command: str | None,
                 num_images: int = 10) -> str:
    """The paper's Table 1. `runs` maps (column, row key) to a workdir; columns keep their order."""
    columns = list(dict.fromkeys(column for column, _ in runs))
    header = "| METHODS | " + " | ".join(f"{c} MSE ↓ | {c} FID ↓" for c in columns) + " |"
    lines = [f"# {title}", "", header, "|---|" + "---|---|" * len(columns)]
    details, datasets = [], set()
    for row, label, score in TABLE1_ROWS:
        cells = []
        for column in columns:
            workdir = runs.get((column, row))
            if workdir is None:
                cells += ["not run", "—"]
                continue
            cells += [_fmt(load_eval(workdir).get(score)), "—"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for (column, row), workdir in runs.items():
        datasets.add(experiment.load_config(workdir)[0].dataset)
        label = f"{column}: {row}"
        details.append(_run_details(label, workdir))
        run_figures(workdir, out_dir, _slug(f"{column}_{row}"), num_images)
    lines += ["", "FID is not computed yet (its column shows —). Figures: `reconstructions_<column>_<row>.png` "
              "and `samples_<column>_<row>.png` beside this file."]
    lines += _footer(command, details, datasets)
    return _write(out_dir, table, lines)


def _parse_runs(items):
    runs = []
    for item in items:
        if "=" not in item:
            raise app.UsageError(f"--runs item {item!r} is not LABEL=workdir.")
        label, workdir = item.rsplit("=", 1)
        runs.append((label.strip(), workdir.strip()))
    return runs


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.out or not FLAGS.runs:
        raise app.UsageError("--out and --runs are required.")
    runs = _parse_runs(FLAGS.runs)
    try:
        if FLAGS.kind == "runs":
            path = write_runs_table(FLAGS.out, FLAGS.table, FLAGS.title, runs, FLAGS.command, FLAGS.num_images)
        else:
            keyed = {}
            for label, workdir in runs:
                column, sep, row = label.partition("|")
                if not sep or row not in {r for r, _, _ in TABLE1_ROWS}:
                    raise app.UsageError(f"--runs item {label!r} is not COLUMN|ROW with ROW one of "
                                         f"{sorted({r for r, _, _ in TABLE1_ROWS})}.")
                keyed[(column, row)] = workdir
            path = write_table1(FLAGS.out, FLAGS.table, FLAGS.title, keyed, FLAGS.command, FLAGS.num_images)
    except experiment.USER_ERRORS as e:
        experiment.exit_with_user_error(e)
    logging.info("Wrote %s", path)
    with open(path) as f:
        print(f.read())


if __name__ == "__main__":
    define_flags()
    app.run(main)

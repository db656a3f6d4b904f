r"""Writes results/ tables and figures from trained, evaluated workdirs (no number is typed by hand).

Knows the workdirs it is given (their scores, configs and models) and the plan's Table 1 rows; knows
nothing of which runs a table needs at a scale (run.py hands it their workdirs) or of the records.

Two kinds of table:

    # one row per run, every score the method has, with figures
    python -m hiabp_tf.experiments.report --kind=runs --out=results/quick --table=hiabp_mnist5k.md \
        --runs="IABP (L=1)=runs/quick/mnist5k_iabp,HiABP (L=3)=runs/quick/mnist5k_hiabp_l3"

    # the paper's Table 1: rows are methods, columns datasets; --runs items are COLUMN|ROW=workdir
    python -m hiabp_tf.experiments.report --kind=table1 --out=results/quick --table=table1.md \
        --runs="mnist_5k|vae=runs/quick/mnist5k_vae,mnist_5k|iabp=runs/quick/mnist5k_iabp,..."

Scores come from each workdir's evaluate.py JSON; each run also gets a PNG of test originals over its
reconstructions and a PNG of unconditional samples.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from hiabp_tf import methods
from hiabp_tf.checks import cli
from hiabp_tf.checks import errors
from hiabp_tf.data import images
from hiabp_tf.data import masks
from hiabp_tf.evaluation import metrics
from hiabp_tf.evaluation import statistics
from hiabp_tf.experiments import pages
from hiabp_tf.experiments import plan
from hiabp_tf.runtime import workdir as workdir_lib
from hiabp_tf.serving import api

TABLE1_ROWS = plan.TABLE1  # (row key, label, score reported)
SCORE_LABELS = {"mse_E": "[E]", "mse_EL": "[E+L]", "mse_L": "[L]"}
# Shared with the other pages (pages.py); the names this module has always used.
PROTOCOL = pages.PROTOCOL
DATASET_NAMES = pages.DATASET_NAMES
load_eval = pages.load_eval
dataset_name = pages.dataset_name
_load_or_evaluate = pages.load_or_evaluate
_run_details = pages.run_details
_record_note = pages.record_note
_footer = pages.footer
_write = pages.write
_write_json = pages.write_json



def define_flags():
    """Defines the command-line flags (only when run as a command, so modules import cleanly)."""
    flags.DEFINE_enum("kind", "runs", ["runs", "table1", "learning_curves", "table2", "table3", "figure1", "samples",
                                       "claims", "index"], "Which table to write.")
    flags.DEFINE_string("out", None, "Folder for the table and figures, e.g. results/quick.")
    flags.DEFINE_string("table", "table.md", "File name of the Markdown table inside --out.")
    flags.DEFINE_string("title", "Test reconstruction MSE", "Heading of the table.")
    flags.DEFINE_list("runs", [], "label=workdir pairs (kind=runs); COLUMN|ROW=workdir (kind=table1); "
                      "COLUMN|ROW=workdir (kind=learning_curves); "
                      "MASK=workdir of the run trained on that mask, and complete=workdir (kind=table2); "
                      "T=workdir (kind=table3); IABP|T=workdir and ABP|T=workdir, each run trained with T, "
                      "and same=workdir, the IABP scored at every test-time T (kind=figure1).")
    flags.DEFINE_list("langevin_steps", ["0", "1", "2", "5", "10", "15", "30", "60"],
                      "Test-time Langevin steps of Figure 1.")
    flags.DEFINE_string("command", None, "The command that produced the runs (recorded in the table).")
    flags.DEFINE_integer("num_images", 10, "Test images / samples per figure row.")
    flags.DEFINE_string("readme", None, "kind=claims: also refresh this README's results block "
                        "(between <!-- results:start --> and <!-- results:end -->).")


FLAGS = flags.FLAGS


def _slug(label: str) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")
    while "__" in slug:
        slug = slug.replace("__", "_")
    return slug


def run_figures(workdir: str, out_dir: str, name: str, num_images: int = 10, seed: int = 0) -> dict:
    """PNG grids for one run: test images over each reconstruction the method has, and samples."""
    model, config, _, step = workdir_lib.restore(workdir)
    originals = metrics.spread_images(config.dataset, num_images)
    rows, caption = metrics.reconstruction_rows(model, originals, seed, config.test_langevin_steps)
    paths = {"reconstructions": os.path.join(out_dir, f"reconstructions_{name}.png"),
             "samples": os.path.join(out_dir, f"samples_{name}.png")}
    images.save_png(paths["reconstructions"], images.grid(rows, num_images), f"{name}, step {step}: {caption}")
    samples = model.sample(tf.constant(2 * num_images), tf.constant([seed, 3], tf.int32)).numpy()
    images.save_png(paths["samples"], images.grid(samples, num_images), f"{name}, step {step}: samples z ~ N(0, I)")
    return paths


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.5f}"


def write_runs_table(out_dir: str, table: str, title: str, runs: list[tuple[str, str]],
                     command: str | None, num_images: int = 10) -> str:
    """One row per (label, workdir): MSE [E], [E+L], [L] where the method has them, plus figures."""
    lines = [f"# {title}", "",
             "| method | dataset | L | latent dims | steps | T (test) | MSE [E] | MSE [E+L] | MSE [L] | test images "
             "| figures |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    datasets = set()
    for label, workdir in runs:
        config, _ = workdir_lib.load_config(workdir)
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


def _workdirs(value) -> list[str]:
    """A run's workdirs: one per training seed (a single workdir is one seed)."""
    return [value] if isinstance(value, str) else list(value)


def _fmt_seeds(summary: dict | None) -> str:
    """mean ± std over seeds (5 decimals), the value alone for one seed, — if absent."""
    if summary is None:
        return "—"
    return _fmt(summary["mean"]) + ("" if summary["std"] is None else f" ± {summary['std']:.5f}")


# Table 1's scores beside the headline: (JSON key, column heading, score read, evaluation at the second T).
TABLE1_VARIANTS = (
    ("mse", "MSE, training T", None, False),
    ("mse_second_t", "MSE, T = {t}", None, True),
    ("mse_det", "[E+L] deterministic, training T", "mse_EL_det", False),
    ("mse_det_second_t", "[E+L] deterministic, T = {t}", "mse_EL_det", True),
)


def write_table1(out_dir: str, table: str, title: str, runs: dict, command: str | None,
                 num_images: int = 10, second_t: int | None = None, diverged: dict | None = None,
                 notes: dict | None = None) -> str:
    """The paper's Table 1. `runs` maps (column, row key) to a workdir, or a list of workdirs (one
    per training seed): every cell is the mean ± standard deviation over the seeds. The Langevin
    methods are scored with their training T and, with `second_t`, at T = `second_t` too (their
    evaluate results at that T must exist); [E+L] also in its deterministic variant. `diverged`
    maps the runs whose training diverged (not in the cells) to their error, named below the table;
    `notes` maps (column, row key) to a one-line measured diagnosis, written below that column's table."""
    columns = list(dict.fromkeys(column for column, _ in runs))
    variants = [v for v in TABLE1_VARIANTS if second_t is not None or not v[3]]
    lines = [f"# {title}", ""]
    details, datasets, fid_notes, numbers = [], set(), set(), []
    for column in columns:
        if len(columns) > 1:
            lines += [f"## {column}", ""]
        lines += ["| METHODS | " + " | ".join(heading.format(t=second_t) for _, heading, _, _ in variants)
                  + " | FID ↓ | seeds |", "|---|" + "---|" * (len(variants) + 2)]
        for row, label, score in TABLE1_ROWS:
            workdirs = _workdirs(runs.get((column, row), []))
            if not workdirs and row in plan.EXTRA_ROWS and not any((column, r) in runs for r in plan.EXTRA_ROWS):
                continue  # rows of our own that this column does not plan
            if not workdirs:
                lines.append(f"| {label} | not run |" + " — |" * (len(variants) + 1))
                continue
            results = [load_eval(w) for w in workdirs]
            langevin = score != "mse_E"  # [E+L] or [L]: scored by Langevin at test time
            entry = dict(column=column, row=row, label=label, score=score, step=results[0]["step"],
                         dataset=results[0]["dataset"], num_examples=results[0]["num_examples"],
                         test_langevin_steps=results[0]["langevin_steps"] if langevin else None,
                         second_t=second_t if langevin else None, workdirs=workdirs,
                         seeds=[r["train_seed"] for r in results])
            cells = []
            for key, _, read, at_second_t in variants:
                if (at_second_t and not langevin) or (read and score != "mse_EL"):
                    entry[key] = None  # no Langevin at test time, or no [E+L] to vary
                else:
                    scored = [load_eval(w, langevin_steps=second_t) for w in workdirs] if at_second_t else results
                    entry[key] = statistics.seed_summary([r.get(read or score) for r in scored])
                cells.append(_fmt_seeds(entry[key]))
            entry["fid"] = statistics.seed_summary([r.get("fid") for r in results])
            cells.append("—" if entry["fid"] is None else f"{entry['fid']['mean']:.2f}"
                         + ("" if entry["fid"]["std"] is None else f" ± {entry['fid']['std']:.2f}"))
            cells.append(str(len(workdirs)))
            numbers.append(entry)
            if results[0].get("fid") is not None:
                fid_notes.add(f"{column}: FID of {results[0]['fid_samples']} samples against the training split in "
                              f"{results[0]['fid_features']}.")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        column_notes = [f"- {label}: {notes[(column, row)]}" for row, label, _ in dict(
            (row, (row, label, score)) for row, label, score in TABLE1_ROWS).values() if (column, row) in (notes or {})]
        if column_notes:
            lines += ["", "Measured diagnosis of the first seed ([diagnostics.md](diagnostics.md)):", *column_notes]
        lines.append("")
    for (column, row), value in runs.items():
        for number, workdir in enumerate(_workdirs(value)):
            datasets.add(workdir_lib.load_config(workdir)[0].dataset)
            details.append(_run_details(f"{column}: {row}" + (f" (seed run {number + 1})" if number else ""), workdir))
            if number == 0:  # figures of the first seed
                run_figures(workdir, out_dir, _slug(f"{column}_{row}"), num_images)
    lines += sorted(fid_notes or {"FID was not computed for these runs (—)."})
    lines += ["", "Cells: mean ± standard deviation (ddof = 1) over the training seeds (column *seeds*); one "
              "seed: the value alone. *MSE, training T*: the headline score of each method ([E] for VAE, LVAE, "
              "VLAE and IABP [E]; [L] for ABP; [E+L] for IABP / HiABP) with the test-time T equal to the "
              "training T, for every Langevin method alike"
              + (f"; *T = {second_t}*: the same model scored with {second_t} test-time Langevin steps" if second_t
                 else "") + ". *[E+L] deterministic*: z_0 = mu_phi(x) and the Langevin steps without noise "
              "(the paper's [E+L] starts from an encoder sample and keeps the noise). IABP [E] and [E+L] share "
              "one model, hence one FID (generation does not use the encoder). Figures of the first seed: "
              "`reconstructions_<column>_<row>.png` and `samples_<column>_<row>.png` beside this file."]
    if diverged:  # a seed whose training diverged is not averaged in, and is not hidden either
        lines += ["", "Runs whose training diverged, not in the cells (their row has that many seeds fewer; "
                  "not retried with other settings): " + "; ".join(f"`{name}`: {message.rstrip('.')}"
                                                              for name, message in sorted(diverged.items())) + "."]
    lines += _footer(command, details, datasets)
    _write_json(out_dir, _json_name(table), {"command": command, "second_t": second_t, "rows": numbers,
                                             "diverged": dict(sorted((diverged or {}).items()))})
    return _write(out_dir, table, lines)


def _json_name(table: str) -> str:
    return os.path.splitext(table)[0] + ".json"


def _headline(workdir: str) -> str:
    """Score suffix of a run's headline reconstruction: EL for HiABP, E for the VAEs, L for ABP."""
    method = workdir_lib.load_config(workdir)[0].method
    key = methods.METHOD_CLASSES[method].reconstructions[-1]
    return metrics.SCORE_NAMES[key][len("mse_"):]


MEAN_IMAGE_REFERENCE = plan.MEAN_IMAGE_REFERENCE  # Table 2's reference row


TRAINING_IMAGES = "training images (paper's protocol)"
TEST_IMAGES = "test images"


def write_table2(out_dir: str, table: str, title: str, occluded: dict, complete: str | None,
                 command: str | None, num_images: int = 10) -> str:
    """Table 2: recovery error on occluded pixels per mask type. The paper's protocol first: models
    trained on occluded images (`occluded`: mask -> workdir) recover the occluded pixels of their own
    training images, which they never observed (their evaluate result on the train split with their
    mask); beside it the same on occluded test images, a model trained on complete data on the same
    test masks, and the no-model mean-image references; the paper's numbers last."""
    from hiabp_tf.experiments import claims  # the paper's numbers

    mask_names = list(occluded)
    header = "| Mask type | " + " | ".join(mask_names) + " |"
    lines = [f"# {title}", "", header, "|---|" + "---|" * len(mask_names)]
    sources = [(TRAINING_IMAGES, "trained on occluded images", occluded, "train"),
               (TEST_IMAGES, "trained on occluded images", occluded, "test")]
    if complete:
        sources.append((TEST_IMAGES, "trained on complete images", {m: complete for m in mask_names}, "test"))
    details, datasets, numbers = [], set(), []
    for images_label, label, by_mask, split in sources:
        cells = []
        for mask in mask_names:
            workdir = by_mask[mask]
            result = load_eval(workdir, mask, split=split)
            suffix = _headline(workdir)
            cells.append(f"{result[f'recovery_mae_{suffix}']:.5f} ({result[f'recovery_mse_{suffix}']:.5f})")
            numbers.append(dict(mask=mask, images=images_label, trained_on=label,
                                recovery_mae=result[f"recovery_mae_{suffix}"],
                                recovery_mse=result[f"recovery_mse_{suffix}"], step=result["step"],
                                dataset=result["dataset"], num_examples=result["num_examples"], workdir=workdir))
        lines.append(f"| {images_label}: error, {label} | " + " | ".join(cells) + " |")
    undrawn = []
    for mask, workdir in occluded.items():
        datasets.add(workdir_lib.load_config(workdir)[0].dataset)
        details.append(_run_details(f"trained with mask {mask}", workdir, mask))
        figure = os.path.join(out_dir, f"table2_{_slug(mask)}.png")
        try:
            inpainting_figure(workdir, mask, figure, num_images)
        except errors.WorkdirError as e:  # a record without its model: its numbers stand, its figure cannot
            if os.path.isfile(figure):
                os.remove(figure)  # (a figure of another model must not stand beside these numbers)
            undrawn.append(f"`{os.path.basename(figure)}` is not drawn: {e}")
    # The no-model references: what learning from the observed pixels has to beat.
    for dataset in sorted(datasets):
        mean = metrics.mean_training_image(dataset)  # one pass over the training split for every mask
        train_seed = workdir_lib.load_config(next(iter(occluded.values())))[0].seed
        for images_label, split in ((TRAINING_IMAGES, "train"), (TEST_IMAGES, "test")):
            cells = []
            for mask in mask_names:
                result = (metrics.mean_image_recovery(dataset, mask, split="train", mask_seed=train_seed)
                          if split == "train" else metrics.mean_image_recovery(dataset, mask, mean=mean))
                cells.append(f"{result['recovery_mae']:.5f} ({result['recovery_mse']:.5f})")
                numbers.append(dict(mask=mask, images=images_label, trained_on=MEAN_IMAGE_REFERENCE,
                                    recovery_mae=result["recovery_mae"], recovery_mse=result["recovery_mse"],
                                    step=None, dataset=dataset, workdir=None))
            lines.append(f"| {images_label}: error, {MEAN_IMAGE_REFERENCE}"
                         f"{'' if len(datasets) == 1 else f' ({dataset})'} | " + " | ".join(cells) + " |")
    lines.append("| paper (CelebA, 10,000 training faces, 64 x 64): error | " + " | ".join(
        "—" if m not in claims.PAPER_TABLE2 else f"{claims.PAPER_TABLE2[m]:.4f}" for m in mask_names) + " |")
    if complete:
        details.append(_run_details("trained on complete images", complete, mask_names[0]))
    lines += ["", "Each cell: recovery error = mean |x - x_hat| over the occluded pixels (pixels in [0, 1]), with "
              "the MSE over the same pixels in brackets; x_hat is the method's headline reconstruction ([E+L] "
              "for HiABP) computed from the occluded image (the model is given 0 at occluded pixels). "
              f"*{TRAINING_IMAGES}*: the occluded pixels of the very training images each model learned from, "
              "with the masks it trained with (it never observed those pixels), over the whole training split; "
              f"the {MEAN_IMAGE_REFERENCE} row there fills them with the mean of the observed training pixels. "
              f"*{TEST_IMAGES}*: the whole test split, each image with one fixed mask (`masks.example_masks`, "
              "seed `metrics.TEST_MASK_SEED`), the same for every model; the reference fills with the mean "
              "complete training image. Figures: `table2_<mask>.png` (rows: test images, occluded pixels in "
              "grey, recovered: the observed pixels kept and the occluded ones from the model, as "
              "`hiabp_tf.load(workdir).inpaint` returns them)."] + [f"\n{line}" for line in undrawn]
    lines += _footer(command, details, datasets)
    _write_json(out_dir, _json_name(table), {"command": command, "rows": numbers})
    return _write(out_dir, table, lines)


def inpainting_rows(model, originals, mask, seed: int = 0) -> np.ndarray:
    """The rows of a Table 2 figure: the test originals, the occluded images (grey where the model
    cannot see), and what `hiabp_tf.load(workdir).inpaint` returns for them (`model`, a
    serving.api.TrainedModel): the observed pixels of the input kept, the occluded ones from the
    method's headline reconstruction (the encoder's mean for a method shown by [E])."""
    key = model.network.reconstructions[-1]
    recovered = model.inpaint(originals, mask, langevin_steps=0 if key == "E" else None, seed=(seed, 2))
    shown = masks.occlude(originals, mask, fill=0.5).numpy()  # grey marks what the model cannot see
    return np.concatenate([originals, shown, recovered])


def inpainting_figure(workdir: str, mask: str, path: str, num_images: int = 10, seed: int = 0) -> str:
    """Rows: test originals, the occluded images the model sees, and the recovered images
    (`inpainting_rows`)."""
    model = api.load(workdir)
    originals = metrics.spread_images(model.config.dataset, num_images)
    mask_array = masks.make_masks(masks.parse_mask(mask), originals.shape,
                                  tf.constant([metrics.TEST_MASK_SEED, 0])).numpy()
    rows = inpainting_rows(model, originals, mask_array, seed)
    images.save_png(path, images.grid(rows, num_images),
                    f"mask {mask}, step {model.step}: test images / occluded (grey) / recovered (observed pixels "
                    f"kept, occluded ones from [{model.network.reconstructions[-1]}])")
    return path


def write_table3(out_dir: str, table: str, title: str, runs: dict, command: str | None) -> str:
    """Table 3: test MSE of HiABP trained and evaluated with T Langevin steps (`runs`: T -> workdir,
    or a list of workdirs, one per training seed: mean ± std)."""
    steps = sorted(runs, key=int)
    lines = [f"# {title}", "", "| LANGEVIN STEPS | " + " | ".join(f"T = {t}" for t in steps) + " |",
             "|---|" + "---|" * len(steps)]
    cells, numbers, details, datasets = [], [], [], set()
    for t in steps:
        workdirs = _workdirs(runs[t])
        results = [load_eval(w) for w in workdirs]
        for workdir, result in zip(workdirs, results):
            if result["langevin_steps"] != int(t):
                raise errors.WorkdirError(f"{workdir} was evaluated with T = {result['langevin_steps']}, not {t}.")
            details.append(_run_details(f"T = {t}, seed {result['train_seed']}", workdir))
            datasets.add(result["dataset"])
        summary = statistics.seed_summary([r[f"mse_{_headline(workdirs[0])}"] for r in results])
        cells.append(_fmt_seeds(summary) + (f" ({len(workdirs)} seeds)" if len(workdirs) > 1 else ""))
        numbers.append(dict(langevin_steps=int(t), mse=summary["mean"], mse_std=summary["std"],
                            mse_seeds=summary["seeds"], step=results[0]["step"], dataset=results[0]["dataset"],
                            workdirs=workdirs))
    lines.append("| MSE [E+L] ↓ | " + " | ".join(cells) + " |")
    lines += ["", "Each run trained and tested with the same T. Several seeds: mean ± standard deviation (ddof = 1)."]
    lines += _footer(command, details, datasets)
    _write_json(out_dir, _json_name(table), {"command": command, "rows": numbers})
    return _write(out_dir, table, lines)


def write_figure1(out_dir: str, training: dict, same_model: str | None, steps: list[int], command: str | None,
                  pending=(), planned_steps=()) -> str:
    """Figure 1: test MSE against the training T of IABP and ABP (`training`: {"IABP": {T: [workdirs]},
    "ABP": {...}}, each run scored at its own T), the verdict on the paper's claim, and the same IABP
    model (`same_model`) at each test-time T of `steps` from the encoder and from noise (evaluating
    what has no result yet). Writes figure1.md, .png and .json (`informative_init.write`)."""
    from hiabp_tf.experiments import informative_init  # pylint: disable=import-outside-toplevel
    return informative_init.write(out_dir, training, same_model, steps, command, pending, planned_steps)


def _curve_points(workdir: str, score: str) -> list[tuple[int, float]]:
    points = [(r["step"], r[score]) for r in workdir_lib.read_learning_curve(workdir) if r.get(score) is not None]
    if not points:
        raise errors.WorkdirError(
            f"{workdir} has no {workdir_lib.LEARNING_CURVE_FILE} with {score}: it was trained before the "
            "evaluations during training were recorded, or with --eval_every above its --num_steps.")
    return points


def write_learning_curves(out_dir: str, runs: dict, command: str | None, long_runs: dict | None = None,
                          name: str = "learning_curves", long_missing=()) -> str:
    """Test MSE against updates of every Table 1 run (`runs`: (column, row key) -> workdir, or a
    list of workdirs, one per training seed), from the evaluations during training (the workdir's
    learning_curve.jsonl): the mean over seeds with the band from the lowest to the highest seed.
    `long_runs` ((column, row key) -> workdir) are the same methods trained longer, drawn in a second
    panel over their seeds' band; `long_missing` (row keys) are those planned to be trained longer that
    are not yet, named so that a partial comparison says what it lacks. Writes learning_curves.md (the
    numbers, and each method's change over the last doubling of updates), .png and .json (`name`.*)."""
    from hiabp_tf.experiments import claims  # the paper's numbers
    from hiabp_tf.experiments import figures

    curves, details = [], []
    sources = [(key, _workdirs(value), False) for key, value in runs.items()]
    sources += [(key, [workdir], True) for key, workdir in (long_runs or {}).items()]
    for row, label, score in TABLE1_ROWS:
        for (column, row_key), workdirs, long in sources:
            if row_key != row:
                continue
            per_seed = [dict(_curve_points(w, score)) for w in workdirs]
            steps = sorted(set.intersection(*(set(p) for p in per_seed)))  # evaluated in every seed
            values = np.array([[p[step] for step in steps] for p in per_seed])
            mean = values.mean(axis=0)
            curves.append(dict(column=column, row=row, score=score, workdirs=workdirs, long=long,
                               label=label + (f", {steps[-1]:,} updates (seed 0)" if long else ""),
                               steps=steps, mse=mean.tolist(), low=values.min(axis=0).tolist(),
                               high=values.max(axis=0).tolist(), num_seeds=len(workdirs),
                               paper=claims.PAPER_TABLE1.get(claims.PAPER_COLUMN.get(column, column), {}).get(
                                   (row, score)),
                               last_doubling=last_doubling_change(list(zip(steps, mean)))))
    for (column, row), workdir in (long_runs or {}).items():  # once per run (IABP's run makes two curves)
        details.append(_run_details(f"{column}: {row}, trained longer", workdir))
    for (column, row), value in runs.items():
        for number, workdir in enumerate(_workdirs(value)):
            details.append(_run_details(f"{column}: {row}" + (f" (seed run {number + 1})" if number else ""), workdir))
    short = [c for c in curves if not c["long"]]
    steps = sorted({s for c in short for s in c["steps"]})
    first = workdir_lib.read_learning_curve(_workdirs(next(iter(runs.values())))[0])[0]
    what = (f"test MSE on the first {first['num_examples']:,} test images of {dataset_name(first['dataset'])}, "
            "test-time T = the training T")
    columns = sorted({claims.PAPER_COLUMN.get(c["column"], c["column"]) for c in curves})
    paper = f"paper {' / '.join(columns)}"  # the paper's numbers of this page's dataset column
    seeds = seeds_clauses(short)
    png = figures.save_learning_curves(
        curves, os.path.join(out_dir, f"{name}.png"), f"{what}" + (f"; {seeds[0]}" if seeds[0] else ""),
        paper_label=f"{paper} (3e5 updates)")
    lines = ["# Learning curves of every Table 1 method", "", f"![learning curves]({os.path.basename(png)})", "",
             f"The evaluations during training ({what}), every "
             f"{steps[1] - steps[0] if len(steps) > 1 else steps[0]} updates"
             + (f", {seeds[1]}" if seeds[1] else "")
             + ". They describe training; no setting was chosen from them. *Last doubling*: the relative change "
             "of the MSE from half the updates to all of them (e.g. -10%: the second half of training took 10% off); "
             "a curve still falling fast there is not at its plateau.", "",
             "| method | " + " | ".join(str(s) for s in steps) + f" | last doubling | {paper} |",
             "|---|" + "---|" * (len(steps) + 2)]
    for c in short:
        by_step = dict(zip(c["steps"], c["mse"]))
        lines.append(f"| {c['label']} | " + " | ".join(_fmt(by_step.get(s)) for s in steps) + " | "
                     + _fmt_change(c["last_doubling"]) + " | "
                     + ("—" if c["paper"] is None else f"{c['paper']:.4f}") + " |")
    long = [c for c in curves if c["long"]]
    labels = {row: label for row, label, _ in TABLE1_ROWS}  # a row's last label: its headline score
    missing = [labels[row] for row in dict.fromkeys(long_missing)]
    trained_longer = None  # learning_curves.json's summary of this section, quoted by the README
    if long:
        methods = [c["label"].split(",")[0] for c in long]  # the label without ", N updates (seed 0)"
        lines += ["", "## Trained longer", "",
                  f"{', '.join(methods)} also trained {long[0]['steps'][-1]:,} "
                  "updates (one seed each); does Table 1's ordering hold as training goes on? Test MSE (same "
                  "evaluations) at each multiple of the Table 1 budget:", ""]
        marks = [s for s in long[0]["steps"] if s % steps[-1] == 0 or s == long[0]["steps"][-1]]
        lines += ["| method | " + " | ".join(f"{s:,}" for s in marks) + " | last doubling |",
                  "|---|" + "---|" * (len(marks) + 1)]
        for c in long:
            by_step = dict(zip(c["steps"], c["mse"]))
            lines.append(f"| {c['label']} | " + " | ".join(_fmt(by_step.get(s)) for s in marks) + " | "
                         + _fmt_change(c["last_doubling"]) + " |")
        order = [sorted(long, key=lambda c: dict(zip(c["steps"], c["mse"])).get(s, np.inf)) for s in marks]
        labels_in_order = [[methods[long.index(c)] for c in o] for o in order]
        lines += ["", "Order (lowest MSE first) at " + "; ".join(
            f"{s:,}: " + " < ".join(o) for s, o in zip(marks, labels_in_order)) + "."]
        gaps = [[dict(zip(b["steps"], b["mse"]))[s] / dict(zip(a["steps"], a["mse"]))[s] - 1
                 for a, b in zip(o, o[1:])] for s, o in zip(marks, order)]
        spread = {methods[long.index(c)]: _relative_seed_std(runs.get((c["column"], c["row"])), c["score"])
                  for c in long}
        summary = ordering_over_training(marks, labels_in_order, gaps, spread) if len(long) > 1 else None
        lines += ["", summary] if summary else []
        trained_longer = dict(methods=methods, steps=long[0]["steps"][-1], marks=marks, orders=labels_in_order,
                              summary=summary, missing=missing)
    if missing:
        lines += [""] if long else ["", "## Trained longer", ""]
        lines.append(f"Not trained longer yet: {', '.join(missing)} (their NAME_long runs of the plan)"
                     + ("; the order above is of the runs that are." if long else "."))
    datasets = {workdir_lib.load_config(_workdirs(w)[0])[0].dataset for w in runs.values()}
    lines += _footer(command, details, datasets)
    _write_json(out_dir, f"{name}.json", {"command": command, "curves": curves, "trained_longer": trained_longer})
    return _write(out_dir, f"{name}.md", lines)


def seeds_clauses(curves) -> tuple[str, str]:
    """(the figure's, the page's) clause on how many training seeds each curve averages ("num_seeds"):
    one number for all, or the usual one (`figures.usual_seeds`) and the methods that have another;
    ("", "") when every curve has one seed."""
    from hiabp_tf.experiments import figures

    counts = {}
    for curve in curves:
        counts.setdefault(curve["num_seeds"], []).append(curve["label"])
    if set(counts) == {1}:
        return "", ""
    band = "the figure's band: lowest to highest seed"
    usual = figures.usual_seeds(curves)
    if len(counts) == 1:
        return f"mean of {usual} seeds, band: lowest to highest", f"mean over {usual} training seeds ({band})"
    others = "; ".join(f"{seeds} for {', '.join(labels)}" for seeds, labels in sorted(counts.items(), reverse=True)
                       if seeds != usual)
    return (f"{'mean of ' if usual > 1 else ''}{usual} seed{'s' * (usual > 1)} (other numbers in the legend), "
            "band: lowest to highest",
            f"each method's curve the mean over its training seeds: {usual}, but {others} ({band}; none for one "
            "seed)")


# A dataset's short name for titles and prose (each run's details keep its exact spec: folder and settings).
def _relative_seed_std(workdirs, score: str) -> float | None:
    """The relative seed std (std / mean) of a Table 1 row's score over its seeds, None for one seed."""
    try:
        summary = statistics.seed_summary([load_eval(w).get(score) for w in _workdirs(workdirs or [])])
    except errors.WorkdirError:  # a run not evaluated (a stub): no spread to compare with
        return None
    return None if not summary or summary["std"] is None else summary["std"] / summary["mean"]


def ordering_over_training(marks, orders, gaps=None, spread=None) -> str:
    """Whether the order of the methods (`orders[i]`: labels, lowest MSE first, at `marks[i]` updates)
    at the first mark holds at every later one; if not, where it first changes and what it is at the end.
    With `gaps` (`gaps[i]`: the relative MSE gap between neighbours of `orders[i]`) and `spread` (label:
    Table 1's relative seed std), each changed order says which of its gaps lie within twice the larger
    seed std of the two neighbours, where one seed each cannot order them."""
    caveat = " (one training seed each: a gap smaller than Table 1's seed spread is not a verdict)."
    changed = next((i for i, o in enumerate(orders) if o != orders[0]), None)
    if changed is None:
        return f"The order at {marks[0]:,} updates holds at every later multiple up to {marks[-1]:,}" + caveat
    shown = [changed] + ([len(orders) - 1] if changed != len(orders) - 1 else [])
    parts = []
    for i in shown:
        part = f"at {marks[i]:,} " + ("it is " if i == changed else "") + " < ".join(orders[i])
        if gaps is not None and spread:
            within = [f"{a} / {b} ({gap:+.1%})" for a, b, gap in zip(orders[i], orders[i][1:], gaps[i])
                      if max((spread.get(x) or 0.0) for x in (a, b)) > 0
                      and gap < 2 * max((spread.get(x) or 0.0) for x in (a, b))]
            if within:
                part += f" (within twice Table 1's relative seed std: {', '.join(within)})"
        parts.append(part)
    return (f"The order at {marks[0]:,} updates does not hold as training goes on: " + ", ".join(parts)) + caveat


def _fmt_change(change: dict | None) -> str:
    return "—" if change is None else f"{change['relative']:+.1%} ({change['from_step']} → {change['to_step']})"


def last_doubling_change(points) -> dict | None:
    """{"from_step", "to_step", "relative"}: the relative change of the MSE from the evaluation at
    (or just below) half the last step to the last one; None with fewer than two evaluations."""
    points = sorted(points)
    if len(points) < 2:
        return None
    last_step, last = points[-1]
    half = [p for p in points[:-1] if p[0] <= last_step / 2] or points[:1]
    from_step, first = half[-1]
    return dict(from_step=from_step, to_step=last_step, relative=(last - first) / first)


def write_samples(out_dir: str, runs: list[tuple[str, str]], command: str | None, num_images: int = 10,
                  name: str = "samples") -> str:
    """Figures 4 and 5: test images beside the reconstructions of each run (e.g. VAE, ABP, HiABP),
    and unconditional samples (every layer z^l ~ N(0, I)) of the last run. Writes `name`.md and
    `name`.png, with the reconstructions in reconstructions`name minus "samples"`.png."""
    from hiabp_tf.experiments import figures

    models = [(label, workdir_lib.restore(workdir)[0]) for label, workdir in runs]
    dataset = workdir_lib.load_config(runs[-1][1])[0].dataset
    originals = metrics.spread_images(dataset, num_images)
    suffix = name[len("samples"):]  # "" or e.g. "_celeba"
    comparison = figures.save_reconstruction_comparison(models, originals,
                                                        os.path.join(out_dir, f"reconstructions{suffix}.png"))
    samples = figures.save_samples(models[-1][1], os.path.join(out_dir, f"{name}.png"), num=64, columns=8,
                                   title=f"{runs[-1][0]}: samples, every layer z ~ N(0, I)")
    lines = [f"# Samples and reconstructions (Figures 4 and 5){', ' + suffix[1:] if suffix else ''}", "",
             f"![reconstructions]({os.path.basename(comparison)})", "",
             "Rows: test images, then the reconstruction of " + ", ".join(
                 f"{label} ([{model.reconstructions[-1]}])" for label, model in models) + ".", "",
             f"![samples]({os.path.basename(samples)})", "",
             f"Unconditional samples of {runs[-1][0]}: every latent layer drawn from N(0, I)."]
    lines += ["", "## How these were made", ""] + ([f"Command: `{command}`", ""] if command else [])
    lines += [_run_details(label, workdir) for label, workdir in runs]
    return _write(out_dir, f"{name}.md", lines)


# What each file in results/<scale>/ is and the run.sh subcommand that writes it (by file name).
INDEX = (
    ("hiabp_", "IABP and HiABP (L=3) test MSE [E] / [E+L] (the main job)", ""),
    ("table1", "Table 1: every method's test MSE", "table1"),
    ("learning_curves", "Learning curves: test MSE of every Table 1 method during training", "table1"),
    ("claims", "The paper's claims: the paper's number, ours, the verdict", "claims"),
    ("table2", "Table 2: learning from incomplete data (recovery error)", "table2"),
    ("table3", "Table 3: Langevin steps T", "table3"),
    ("figure1", "Figure 1: informative vs noise initialisation", "figure1"),
    ("figure7", "Figure 7: per-layer disentanglement of HiABP", "figure7"),
    ("langevin_budget", "Quality per unit of compute: test MSE vs Langevin steps and training time, IABP vs ABP",
     "budget"),
    ("samples.", "Figure 5: unconditional samples", "samples"),
    ("reconstructions.", "Figure 4: reconstructions of VAE, ABP and HiABP", "samples"),
    ("samples_celeba", "Figure 5 on the CelebA faces: unconditional samples", "samples"),
    ("reconstructions_celeba.", "Figure 4 on the CelebA faces: reconstructions of VAE, ABP and HiABP", "samples"),
    ("models", "the first seed of every Table 1 model, shipped (16-bit weights, `hiabp_tf.load` and "
     "`python -m hiabp_tf.evaluate --workdir=...` read them)", "table1"),
    ("runs", "the records of the finished runs (their scores, learning curves and settings, no checkpoints), "
     "which the reports read where runs/ lacks a run (docs/reproducing.md)", "table1"),
)


# Files directly in results/: machine-level results, not tied to a scale.
TOP_LEVEL_INDEX = (
    ("performance.md", "speed of the training step: modes, the speed target, profile, every lever",
     "`./run.sh performance`"),
    ("performance.json", "raw JSON of every benchmark process behind performance.md", "`./run.sh performance`"),
    ("memory.md", "peak memory of training per dataset configuration, data caches, persistent chains",
     "`./run.sh memory`"),
    ("reliability.md",
     "soak test: SIGKILLs during training and checkpoint saves, a second training refused, a corrupted newest "
     "checkpoint; resumed runs identical",
     "`python -m hiabp_tf.tools.soak`"),
)


def write_index(results_dir: str, command: str | None) -> str:
    """results/README.md: every table and figure under `results_dir`'s parent, with its command."""
    root = os.path.dirname(os.path.abspath(results_dir))
    lines = ["# Results", "", "Everything here is written by `run.sh` from this repository's code; each table "
             "says which data, steps and seeds produced it. Regenerate a file with the command beside it.", ""]
    for scale in sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))):
        lines += [f"## {scale} scale", "", "| file | what | command |", "|---|---|---|"]
        names = sorted(os.listdir(os.path.join(root, scale)))
        for name in names:
            match = next(((w, c) for prefix, w, c in INDEX if name.startswith(prefix)), None)
            if match is None:  # a run's own grid, written with (and linked from) a table
                what, cmd = "grid of one run, linked from the table that wrote it", "with that table"
            else:
                what, cmd = match[0], f"`./run.sh {match[1] + ' ' if match[1] else ''}{scale}`"
            lines.append(f"| [{name}]({scale}/{name}) | {what} | {cmd} |")
        lines.append("")
    top = [(name, what, cmd) for name, what, cmd in TOP_LEVEL_INDEX if os.path.isfile(os.path.join(root, name))]
    if top:
        lines += ["## this machine", "", "| file | what | command |", "|---|---|---|"]
        lines += [f"| [{name}]({name}) | {what} | {cmd} |" for name, what, cmd in top]
        lines.append("")
    if command:
        lines += [f"Last full run: `{command}`."]
    return _write(root, "README.md", lines)


def _parse_runs(items):
    runs = []
    for item in items:
        if "=" not in item:
            raise app.UsageError(f"--runs item {item!r} is not LABEL=workdir.")
        label, workdir = item.rsplit("=", 1)
        runs.append((label.strip(), workdir.strip()))
    return runs


def main():
    if FLAGS.kind == "index":
        if not FLAGS.out:
            raise app.UsageError("--out is required.")
        logging.info("Wrote %s", write_index(FLAGS.out, FLAGS.command))
        return
    if FLAGS.kind == "claims":
        if not FLAGS.out:
            raise app.UsageError("--out is required.")
        from hiabp_tf.experiments import claims
        try:
            path = claims.write_claims(FLAGS.out, FLAGS.command, FLAGS.readme)
        except claims.MissingResultError as e:
            cli.exit_with_user_error(e)
        with open(path) as f:
            print(f.read())
        return
    if not FLAGS.out or not FLAGS.runs:
        raise app.UsageError("--out and --runs are required.")
    runs = _parse_runs(FLAGS.runs)
    if FLAGS.kind == "runs":
        path = write_runs_table(FLAGS.out, FLAGS.table, FLAGS.title, runs, FLAGS.command, FLAGS.num_images)
    elif FLAGS.kind == "table2":
        by_mask = dict(runs)
        complete = by_mask.pop("complete", None)
        path = write_table2(FLAGS.out, FLAGS.table, FLAGS.title, by_mask, complete, FLAGS.command,
                            FLAGS.num_images)
    elif FLAGS.kind == "table3":
        path = write_table3(FLAGS.out, FLAGS.table, FLAGS.title, dict(runs), FLAGS.command)
    elif FLAGS.kind == "samples":
        path = write_samples(FLAGS.out, runs, FLAGS.command, FLAGS.num_images)
    elif FLAGS.kind == "figure1":
        training, same = {}, None
        for label, workdir in runs:
            if label == "same":
                same = workdir
                continue
            method, _, t = label.partition("|")
            if method not in ("IABP", "ABP") or not t.isdigit():
                raise app.UsageError(f"--runs item {label!r} is not IABP|T, ABP|T or same.")
            training.setdefault(method, {}).setdefault(int(t), []).append(workdir)
        path = write_figure1(FLAGS.out, training, same, [int(t) for t in FLAGS.langevin_steps], FLAGS.command)
    else:
        keyed = {}
        for label, workdir in runs:
            column, sep, row = label.partition("|")
            if not sep or row not in {r for r, _, _ in TABLE1_ROWS}:
                raise app.UsageError(f"--runs item {label!r} is not COLUMN|ROW with ROW one of "
                                     f"{sorted({r for r, _, _ in TABLE1_ROWS})}.")
            keyed[(column, row)] = workdir
        if FLAGS.kind == "learning_curves":
            path = write_learning_curves(FLAGS.out, keyed, FLAGS.command)
        else:
            path = write_table1(FLAGS.out, FLAGS.table, FLAGS.title, keyed, FLAGS.command, FLAGS.num_images)
    logging.info("Wrote %s", path)
    with open(path) as f:
        print(f.read())


if __name__ == "__main__":
    cli.run(main, define_flags, workdir_flag=None)

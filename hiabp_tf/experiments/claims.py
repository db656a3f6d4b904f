"""The paper's claims, checked against this repository's results: results/<scale>/claims.md.

    python -m hiabp_tf.experiments.report --kind=claims --out=results/cpu [--readme=README.md]

Reads only the JSON files the other reports wrote beside their tables (table1.json, table2.json,
table3.json, figure1.json, learning_curves.json), so it needs no trained run, and no number in it is
typed by hand: the paper's numbers are the constants below, transcribed from its tables; ours come
from the JSON files. Each claim "A < B" on Table 1 is decided on the training seeds by Welch's
t-test (scipy.stats.ttest_ind, equal_var=False, two-sided) at p < statistics.ALPHA: `holds` (A lower,
significant), `does not hold` (A higher, significant), `tie` (not significant; a tie never counts
as holding); where a side has one seed, a difference beyond statistics.ONE_SEED_SIGMAS relative seed
stds of the rows that have several seeds decides, else a tie, and with no such row the claim is
`untested`; the note says which. Claims on other data
than the paper's are `not comparable`. Table 1's claims are also decided with every Langevin method
scored at the second test-time T (60) and with the deterministic [E+L], to show whether a verdict
depends on those choices; where one does not hold or is a tie, the learning curves say whether the
methods compared were still improving when training stopped.

With --readme, the block between the README's `<!-- results:start -->` and `<!-- results:end -->`
markers is replaced by `readme_block` (Table 1 beside the paper's MNIST column, one line per claim),
so the README's first screen always shows the committed results.
"""

from __future__ import annotations

import json
import os

from hiabp_tf import workdir as workdir_lib
from hiabp_tf.evaluation import statistics
from hiabp_tf.experiments import plan

# The paper's Table 1 MSE, by dataset, (row key, score) as in report.TABLE1_ROWS.
PAPER_TABLE1 = {
    "MNIST": {("vae", "mse_E"): 0.0202, ("lvae", "mse_E"): 0.0185, ("vlae", "mse_E"): 0.0184,
              ("abp", "mse_L"): 0.0192, ("abp_persistent", "mse_L"): 0.0183, ("iabp", "mse_E"): 0.0195,
              ("iabp", "mse_EL"): 0.0180, ("hiabp_l2", "mse_EL"): 0.0174, ("hiabp_l3", "mse_EL"): 0.0162,
              ("hiabp_l4", "mse_EL"): 0.0151},
    "SVHN": {("vae", "mse_E"): 0.0192, ("lvae", "mse_E"): 0.0178, ("vlae", "mse_E"): 0.0173,
             ("abp", "mse_L"): 0.0190, ("abp_persistent", "mse_L"): 0.0181, ("iabp", "mse_E"): 0.0204,
             ("iabp", "mse_EL"): 0.0178, ("hiabp_l2", "mse_EL"): 0.0168, ("hiabp_l3", "mse_EL"): 0.0145,
             ("hiabp_l4", "mse_EL"): 0.0124},
    "CelebA": {("vae", "mse_E"): 0.0317, ("lvae", "mse_E"): 0.0286, ("vlae", "mse_E"): 0.0282,
               ("abp", "mse_L"): 0.0289, ("abp_persistent", "mse_L"): 0.0283, ("iabp", "mse_E"): 0.0314,
               ("iabp", "mse_EL"): 0.0279, ("hiabp_l2", "mse_EL"): 0.0244, ("hiabp_l3", "mse_EL"): 0.0201,
               ("hiabp_l4", "mse_EL"): 0.0183},
}
# Table 2 (CelebA, HiABP): recovery error on the occluded pixels, by mask.
PAPER_TABLE2 = {"pepper": 0.0502, "region10": 0.0487, "region20": 0.0513}
# Table 3 (SVHN, HiABP): MSE by the number of Langevin steps T (training and test).
PAPER_TABLE3 = {5: 0.0216, 10: 0.0183, 15: 0.0168, 30: 0.0166}
# "Gains little beyond T = 15": the relative fall of the MSE from T = 15 to T = 30 below this (the
# paper's is 1.2%, against 8.2% from T = 10 to 15).
LITTLE_GAIN = 0.05
VERDICTS = statistics.VERDICTS + ("not comparable",)
# A method whose MSE still fell by more than this over its last doubling of updates is called
# "still improving" in the notes.
STILL_IMPROVING = -0.05

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


class MissingResultError(ValueError):
    """A JSON file the claims need is missing; the message names the run.sh command that writes it."""


NOT_MEASURED = "not measured yet"


def _load(out_dir: str, name: str, command: str, required: bool = True) -> dict | None:
    path = os.path.join(out_dir, name)
    if not os.path.isfile(path):
        if not required:
            return None
        raise MissingResultError(f"{path} is missing: run `{command}` first (it writes {name}).")
    with open(path) as f:
        return json.load(f)


def _scale(out_dir: str) -> str:
    return os.path.basename(os.path.normpath(out_dir))


def _pct(x: float) -> str:
    return f"{x:+.1%}"


def _summary(value) -> dict | None:
    """A table1.json score as {"mean", "std", "seeds"} (a bare number: one seed)."""
    if value is None or isinstance(value, dict):
        return value
    return dict(mean=float(value), std=None, seeds=[float(value)])


class Results:
    """The numbers of one results/<scale>/ folder, by what the claims ask of them."""

    def __init__(self, out_dir: str):
        scale = _scale(out_dir)
        self.table1 = _load(out_dir, "table1.json", f"./run.sh table1 {scale}")
        self.curves = _load(out_dir, "learning_curves.json", f"./run.sh table1 {scale}")
        # Table 1 and its curves are the core; the others may not have been run yet at this scale:
        # their claims then say so (and which command measures them) instead of hiding the table.
        self.scale = scale
        self.commands = {name: f"./run.sh {name} {scale}" for name in ("table2", "table3", "figure1")}
        self.table2 = _load(out_dir, "table2.json", self.commands["table2"], required=False)
        self.table3 = _load(out_dir, "table3.json", self.commands["table3"], required=False)
        self.figure1 = _load(out_dir, "figure1.json", self.commands["figure1"], required=False)
        self.column = self.table1["rows"][0]["column"]
        self.second_t = self.table1.get("second_t")

    def columns(self) -> list[str]:
        return list(dict.fromkeys(r["column"] for r in self.table1["rows"]))

    def entry(self, row: str, score: str, column: str | None = None) -> dict:
        for r in self.table1["rows"]:
            if r["row"] == row and r["score"] == score and r["column"] == (column or self.column):
                return r
        raise MissingResultError(f"table1.json has no {row} {score}: rerun ./run.sh table1.")

    def has(self, row: str, score: str, column: str | None = None) -> bool:
        return any(r["row"] == row and r["score"] == score and r["column"] == (column or self.column)
                   for r in self.table1["rows"])

    def summary(self, row: str, score: str, variant: str = "mse", column: str | None = None) -> dict:
        """A row's score over its seeds; a variant the row does not have (T = 60 of a VAE, the
        deterministic [E+L] of ABP) falls back to its headline score, which it then is."""
        entry = self.entry(row, score, column)
        return _summary(entry.get(variant)) or _summary(entry["mse"])

    def mse(self, row: str, score: str, variant: str = "mse", column: str | None = None) -> float:
        return self.summary(row, score, variant, column)["mean"]

    def label(self, row: str, score: str) -> str:
        return next(label for key, label, s in plan.TABLE1 if (key, s) == (row, score))

    def curve(self, row: str, score: str) -> dict | None:
        return next((c for c in self.curves["curves"] if c["row"] == row and c["score"] == score
                     and not c.get("long")), None)

    def step(self) -> int:
        return self.table1["rows"][0]["step"]

    def seed_spread(self, column: str | None = None) -> tuple[float, str] | None:
        """The seed spread a one-seed comparison is judged by: the root mean square of the relative
        seed std (std / mean) over the column's rows with several seeds, and which rows those are;
        None if no row has several seeds."""
        spreads = {}
        for r in self.table1["rows"]:
            summary = _summary(r["mse"])
            if r["column"] == (column or self.column) and summary["std"] is not None and len(summary["seeds"]) > 1:
                spreads[f"{r['label']} ({len(summary['seeds'])} seeds)"] = summary["std"] / summary["mean"]
        if not spreads:
            return None
        return (sum(v * v for v in spreads.values()) / len(spreads)) ** 0.5, ", ".join(spreads)

    def num_seeds(self, column: str | None = None) -> int:
        return max(len(self.summary(r["row"], r["score"], column=column)["seeds"]) for r in self.table1["rows"]
                   if r["column"] == (column or self.column))


def _fmt_summary(summary: dict) -> str:
    return f"{summary['mean']:.4f}" + ("" if summary["std"] is None else f" ± {summary['std']:.4f}")


def _improving_note(results: Results, keys) -> str:
    """Why a comparison may have failed at this budget: which of the methods was still improving."""
    notes = []
    for row, score in keys:
        curve = results.curve(row, score)
        if curve is None or curve["last_doubling"] is None:
            continue
        change = curve["last_doubling"]["relative"]
        state = "still improving" if change < STILL_IMPROVING else "flat"
        notes.append(f"{curve['label']} {state} ({_pct(change)} over its last doubling of updates)")
    return "; ".join(notes)


# Table 1's claims are decided on each of these scores: (variant key of table1.json, what it is).
TABLE1_VARIANTS = (("mse", "training T"), ("mse_second_t", "T = 60"), ("mse_det", "deterministic [E+L]"))


def _less_than(results: Results, smaller: tuple[str, str], larger: tuple[str, str], paper=PAPER_TABLE1["MNIST"],
               column: str | None = None):
    """A claim 'smaller < larger' on Table 1: {"paper", "ours", "verdict", "p", "test", the verdict
    under each other variant ("verdict_<variant>"), "note"}."""
    a, b = results.summary(*smaller, column=column), results.summary(*larger, column=column)
    # A side with one seed: the difference is judged by the column's relative seed spread (if any
    # row has several seeds), scaled to these two means; without one it is untested.
    spread = results.seed_spread(column) if min(len(a["seeds"]), len(b["seeds"])) < 2 else None

    def compare(x, y):
        reference = None if spread is None else spread[0] * (sum(x) / len(x) + sum(y) / len(y)) / 2
        return statistics.compare(x, y, reference)

    decided = compare(a["seeds"], b["seeds"])
    p = "" if decided["p"] is None else f", p = {decided['p']:.3g}"
    out = dict(paper=f"{paper[smaller]:.4f} < {paper[larger]:.4f}",
               ours=f"{_fmt_summary(a)} vs {_fmt_summary(b)} ({_pct(a['mean'] / b['mean'] - 1)}{p})",
               verdict=decided["verdict"], p=decided["p"], test=decided["test"])
    for variant, _ in TABLE1_VARIANTS[1:]:
        out[f"verdict_{variant}"] = compare(results.summary(*smaller, variant, column)["seeds"],
                                            results.summary(*larger, variant, column)["seeds"])["verdict"]
    notes = [] if decided["p"] is not None else [decided["test"] + (
        "" if spread is None else f" (relative seed std {spread[0]:.1%}, of {spread[1]})")]
    if decided["verdict"] != "holds" and column in (None, results.column):
        notes.append(_improving_note(results, [smaller, larger]))
    out["note"] = "; ".join(filter(None, notes))
    return out


# The paper's face claims, decided on the CelebA column (the rows the cpu scale trains there).
CELEBA_CLAIMS = (
    ("IABP: Langevin improves on the initializer, [E+L] < [E]", ("iabp", "mse_EL"), ("iabp", "mse_E")),
    ("HiABP L = 4 < IABP [E+L]", ("hiabp_l4", "mse_EL"), ("iabp", "mse_EL")),
    ("IABP [E+L] < ABP (persistent)", ("iabp", "mse_EL"), ("abp_persistent", "mse_L")),
    ("HiABP L = 4 < VAE", ("hiabp_l4", "mse_EL"), ("vae", "mse_E")),
    ("HiABP L = 4 < VLAE (L=4)", ("hiabp_l4", "mse_EL"), ("vlae", "mse_E")),
)
PAPER_COLUMN = {"MNIST": "MNIST", "mnist_5k": "MNIST", "SVHN": "SVHN", "CelebA": "CelebA"}


def celeba_claims(results: Results) -> list[dict]:
    """The face claims of Table 1 on a CelebA column, if the table has one."""
    if "CelebA" not in results.columns() or results.column == "CelebA":
        return []
    return [dict(claim=f"CelebA: {text}", **_less_than(results, smaller, larger, PAPER_TABLE1["CelebA"], "CelebA"))
            for text, smaller, larger in CELEBA_CLAIMS
            if results.has(*smaller, "CelebA") and results.has(*larger, "CelebA")]


def table1_claims(results: Results) -> list[dict]:
    # HiABP against the VAEs at L = 4, the paper's own choice (the best L on the test split would be
    # chosen on test data).
    best = ("hiabp_l4", "mse_EL")
    claims = [
        ("IABP: Langevin improves on the initializer, [E+L] < [E]", ("iabp", "mse_EL"), ("iabp", "mse_E")),
        ("HiABP L = 2 < IABP [E+L]", ("hiabp_l2", "mse_EL"), ("iabp", "mse_EL")),
        ("HiABP L = 3 < L = 2", ("hiabp_l3", "mse_EL"), ("hiabp_l2", "mse_EL")),
        ("HiABP L = 4 < L = 3", ("hiabp_l4", "mse_EL"), ("hiabp_l3", "mse_EL")),
        ("IABP [E+L] < ABP (non-persistent)", ("iabp", "mse_EL"), ("abp", "mse_L")),
        ("IABP [E+L] < ABP (persistent)", ("iabp", "mse_EL"), ("abp_persistent", "mse_L")),
    ] + [(f"HiABP L = 4 < {results.label(row, 'mse_E')}", best, (row, "mse_E"))
         for row in ("vae", "lvae", "vlae")]
    out = [dict(claim=text, **_less_than(results, smaller, larger)) if results.has(*smaller) and results.has(*larger)
           else _row_not_measured(results, text, smaller, larger) for text, smaller, larger in claims]
    # The LVAE measured both ways: its KL warm-up (as published) and without it. A warm-up that hurts
    # the baseline here must not decide the claim alone, so the claim is also decided against the other.
    no_warmup = ("lvae_no_warmup", "mse_E")
    if results.has(*best) and results.has(*no_warmup):
        paper = {**PAPER_TABLE1["MNIST"], no_warmup: PAPER_TABLE1["MNIST"][("lvae", "mse_E")]}
        out.insert(len(out) - 1, dict(
            claim=f"HiABP L = 4 < {results.label(*no_warmup)} (the paper's number: its LVAE)",
            **_less_than(results, best, no_warmup, paper)))
    return out


def _row_not_measured(results: Results, claim: str, smaller, larger, paper=PAPER_TABLE1["MNIST"]) -> dict:
    """A Table 1 claim whose rows are not all trained yet (a report of what is trained so far)."""
    missing = [results.label(*key) for key in (smaller, larger) if not results.has(*key)]
    return dict(claim=claim, paper=f"{paper[smaller]:.4f} < {paper[larger]:.4f}", ours="—", verdict=NOT_MEASURED,
                note=f"table1.json has no {' and no '.join(missing)} yet: `./run.sh table1 {results.scale}` "
                     "trains it")


def _not_measured(results: Results, name: str, claim: str, paper: str) -> dict:
    return dict(claim=claim, paper=paper, ours="—", verdict=NOT_MEASURED,
                note=f"{name}.json is not in this folder yet: `{results.commands[name]}` measures it")


def table3_claims(results: Results) -> list[dict]:
    if results.table3 is None:
        paper = ", ".join(f"T={t}: {v:.4f}" for t, v in sorted(PAPER_TABLE3.items()))
        return [_not_measured(results, "table3", "Table 3: the MSE falls as T grows", paper + " (SVHN)"),
                _not_measured(results, "table3", f"Table 3: little to gain beyond T = 15 (T = 15 → 30 takes "
                              f"less than {LITTLE_GAIN:.0%} off)", _pct(PAPER_TABLE3[30] / PAPER_TABLE3[15] - 1))]
    by_t = {r["langevin_steps"]: r for r in results.table3["rows"]}
    seeds = {t: r.get("mse_seeds") or [r["mse"]] for t, r in by_t.items()}
    mean = {t: r["mse"] for t, r in by_t.items()}
    stds = [r["mse_std"] for r in by_t.values() if r.get("mse_std") is not None]
    reference = max(stds) if stds else None  # the seed spread of the T that has several seeds
    steps = sorted(by_t)
    ours = ", ".join(f"T={t}: {mean[t]:.4f}" + (f" ± {by_t[t]['mse_std']:.4f}" if by_t[t].get("mse_std") else "")
                     for t in steps)
    paper = ", ".join(f"T={t}: {v:.4f}" for t, v in sorted(PAPER_TABLE3.items()))
    pairs = {(a, b): statistics.compare(seeds[b], seeds[a], reference) for a, b in zip(steps, steps[1:])}
    verdicts = {d["verdict"] for d in pairs.values()}
    verdict = next((v for v in ("does not hold", "tie", "untested") if v in verdicts), "holds")
    tests = sorted({d["test"] for d in pairs.values()})
    note = "; ".join([f"T = {a} → {b}: {d['verdict']}" for (a, b), d in pairs.items() if d["verdict"] != "holds"]
                     + [f"decided by {', '.join(tests)}"])
    rows = [dict(claim="Table 3: the MSE falls as T grows", paper=paper + " (SVHN)", ours=ours, verdict=verdict,
                 note=note)]
    if 15 in by_t and 30 in by_t and 10 in by_t:
        gain_15_30 = mean[30] / mean[15] - 1
        gain_10_15 = mean[15] / mean[10] - 1
        paper_gain = PAPER_TABLE3[30] / PAPER_TABLE3[15] - 1
        little = -gain_15_30 < LITTLE_GAIN
        rows.append(dict(
            claim=f"Table 3: little to gain beyond T = 15 (T = 15 → 30 takes less than {LITTLE_GAIN:.0%} off)",
            paper=f"{_pct(paper_gain)} (T = 10 → 15: {_pct(PAPER_TABLE3[15] / PAPER_TABLE3[10] - 1)})",
            ours=f"{_pct(gain_15_30)} (T = 10 → 15: {_pct(gain_10_15)})",
            verdict="holds" if little else "does not hold",
            note="on the means" + ("" if little else "; a longer chain still pays at this budget: each update's "
                                   "latents are further from the posterior mode with T = 15")))
    return rows


def figure1_claims(results: Results) -> list[dict]:
    claim = "Figure 1: encoder initialisation beats noise initialisation at every test-time T"
    if results.figure1 is None:
        return [_not_measured(results, "figure1", claim, "a plot (no numbers), MNIST")]
    rows = results.figure1["rows"]
    by = {}
    for r in rows:
        by.setdefault(r["langevin_steps"], {})[r["initialisation"]] = r["mse"]
    steps = sorted(t for t in by if {"encoder", "noise"} <= set(by[t]))
    wins = [t for t in steps if by[t]["encoder"] < by[t]["noise"]]
    ratios = {t: by[t]["noise"] / by[t]["encoder"] for t in steps}
    ours = (f"encoder lower at {len(wins)} of {len(steps)} T in {steps}; noise / encoder MSE from "
            f"{min(ratios.values()):.2f}x (T={min(ratios, key=ratios.get)}) to {max(ratios.values()):.2f}x "
            f"(T={max(ratios, key=ratios.get)})")
    holds = len(wins) == len(steps)
    return [dict(claim=claim,
                 paper="a plot (no numbers), MNIST", ours=ours, verdict="holds" if holds else "does not hold",
                 note="" if holds else f"noise is as good or better at T = {[t for t in steps if t not in wins]}")]


TRAINING_IMAGES = "training images (paper's protocol)"  # as report.TRAINING_IMAGES
CELEBA_DATASETS = ("celeb_a", "images:")  # Table 2's rows on faces are comparable with the paper's


def _table2_rows(results: Results, trained_on: str, images: str) -> dict:
    """{mask: row} of table2.json (rows written before the training-image protocol are test images)."""
    return {r["mask"]: r for r in results.table2["rows"]
            if r["trained_on"] == trained_on and r.get("images", "test images") == images}


def _image_size(dataset: str) -> str:
    """" at N x N" for a dataset spec that names its image size (images:DIR,image_size=N,...)."""
    size = next((part.split("=", 1)[1] for part in dataset.split(",") if part.startswith("image_size=")), None)
    return f" at {size} x {size}" if size else ""


def table2_claims(results: Results) -> list[dict]:
    claim = ("Table 2: trained on occluded faces, HiABP recovers the never-observed pixels of its training images "
             "with the paper's error or lower, for every mask")
    if results.table2 is None:
        return [_not_measured(results, "table2", claim, ", ".join(f"{m} {v:.4f}" for m, v in PAPER_TABLE2.items())
                              + " (CelebA, 64x64 faces)"),
                _not_measured(results, "table2", *LEARNS_FROM_INCOMPLETE_DATA)]
    on_training = _table2_rows(results, "trained on occluded images", TRAINING_IMAGES)
    on_test = _table2_rows(results, "trained on occluded images", "test images")
    measured = on_training or on_test
    masks = [m for m in PAPER_TABLE2 if m in measured]
    paper = ", ".join(f"{m} {PAPER_TABLE2[m]:.4f}" for m in masks) + " (CelebA, 10,000 faces, 64x64)"
    dataset = measured[masks[0]]["dataset"] if masks else "?"
    errors = {m: measured[m]["recovery_mae"] for m in masks}
    ours = ", ".join(f"{m} {errors[m]:.4f} ({_pct(errors[m] / PAPER_TABLE2[m] - 1)})" for m in masks)
    if on_test and on_training:
        ours += "; on occluded test faces: " + ", ".join(f"{m} {on_test[m]['recovery_mae']:.4f}" for m in masks)
    rows = []
    if not dataset.startswith(CELEBA_DATASETS):
        rows.append(dict(claim=claim, paper=paper, ours=ours + f" ({dataset})", verdict="not comparable",
                         note=f"another dataset: {dataset} digits are mostly black background, so per-pixel "
                              "errors are on another scale than CelebA faces"))
    elif not on_training:
        rows.append(dict(claim=claim, paper=paper, ours=ours, verdict=NOT_MEASURED,
                         note=f"table2.json has no {TRAINING_IMAGES} rows: rerun `{results.commands['table2']}`"))
    else:
        higher = [m for m in masks if on_training[m]["recovery_mae"] > PAPER_TABLE2[m]]
        rows.append(dict(claim=claim, paper=paper, ours=ours + f" ({measured[masks[0]]['num_examples']:,} training "
                         "faces)", verdict="does not hold" if higher else "holds",
                         note=("higher than the paper's for " + ", ".join(higher) + "; " if higher else "")
                         + "one training seed per mask; our faces: 8,000 of the first 9,000 aligned CelebA "
                           f"images{_image_size(dataset)}, the paper's 10,000 random ones at 64 x 64, another "
                           "budget (table2.md)"))
    rows.append(learns_from_incomplete_data(results, on_training or on_test,
                                            _table2_rows(results, plan.MEAN_IMAGE_REFERENCE,
                                                         TRAINING_IMAGES if on_training else "test images"),
                                            "training" if on_training else "test"))
    return rows


LEARNS_FROM_INCOMPLETE_DATA = (  # (claim, what the paper shows)
    "Table 2: HiABP learns from incomplete data: trained on occluded images, it recovers the occluded pixels "
    "better than a mean image, for every mask",
    "recovered faces (Figure 6); the paper gives no reference error")


def learns_from_incomplete_data(results: Results, occluded: dict, reference: dict, images: str) -> dict:
    """The claim behind Table 2 that does not depend on the dataset: a model that never saw the occluded
    pixels recovers them better than the no-model reference (a mean image), for every mask."""
    claim, paper = LEARNS_FROM_INCOMPLETE_DATA
    masks = [m for m in occluded if m in reference]
    if not masks:
        return dict(claim=claim, paper=paper, ours="—", verdict=NOT_MEASURED,
                    note=f"table2.json has no {plan.MEAN_IMAGE_REFERENCE} row: rerun `{results.commands['table2']}`")
    errors = {m: (occluded[m]["recovery_mae"], reference[m]["recovery_mae"]) for m in masks}
    ours = ", ".join(f"{m} {a:.4f} vs {b:.4f} ({_pct(a / b - 1)})" for m, (a, b) in errors.items())
    worse = [m for m, (a, b) in errors.items() if a >= b]
    return dict(claim=claim, paper=paper,
                ours=ours + f" (mean |error| on the occluded pixels of the {images} images: model vs mean image)",
                verdict="does not hold" if worse else "holds",
                note=f"no better than the mean image for {', '.join(worse)}" if worse else "")


def absolute_rows(results: Results, column: str | None = None) -> list[dict]:
    """Our Table 1 numbers of a column beside the paper's column of the same dataset (another budget
    and network width)."""
    column = column or results.column
    paper_column = PAPER_TABLE1[PAPER_COLUMN.get(column, "MNIST")]
    rows = []
    for r in results.table1["rows"]:
        if r["column"] != column:
            continue
        paper = paper_column.get((r["row"], r["score"]))
        ours = results.summary(r["row"], r["score"], column=column)
        second = _summary(r.get("mse_second_t"))
        det = _summary(r.get("mse_det"))
        rows.append(dict(label=r["label"], ours=ours["mean"], ours_std=ours["std"], paper=paper,
                         seeds=len(ours["seeds"]), second_t=second and second["mean"], det=det and det["mean"],
                         relation="—" if paper is None else "lower" if ours["mean"] < paper else "higher"))
    return rows


def all_claims(results: Results) -> list[dict]:
    return (table1_claims(results) + celeba_claims(results) + table3_claims(results) + figure1_claims(results)
            + table2_claims(results))


def count_line(claims: list[dict]) -> str:
    """How many claims have each verdict (ties named as ties)."""
    counts = {v: sum(c["verdict"] == v for c in claims) for v in VERDICTS + (NOT_MEASURED,)}
    line = (f"{counts['holds']} hold, {counts['does not hold']} do not hold, {counts['tie']} "
            f"{'is a tie' if counts['tie'] == 1 else 'are ties'} (not significant), "
            + (f"{counts['untested']} untested (one seed, no seed spread to judge by), " if counts["untested"] else "")
            + f"{counts['not comparable']} cannot be compared here")
    return line + (f", {counts[NOT_MEASURED]} not measured yet at this scale." if counts[NOT_MEASURED] else ".")


def _paper_difference(results: Results) -> str:
    """How our runs differ from the paper's, read from table1.json."""
    first = {}
    for entry in results.table1["rows"]:  # each dataset column's data, as its first row was scored
        first.setdefault(entry.get("column"), entry)
    data = "; ".join(f"{entry['dataset']} ({entry['num_examples']:,} test images)" for entry in first.values())
    return (f"the paper trains 3e5 updates (networks of unstated width, total latent size not given); here "
            f"{results.step():,} updates of batch 100 on {data}, ladder width 32 and one total latent size for "
            "every method of a column (docs/protocol.md)")


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def _fmt_ours(row: dict) -> str:
    return _fmt(row["ours"]) + ("" if row["ours_std"] is None else f" ± {row['ours_std']:.4f}")


def write_claims(out_dir: str, command: str | None = None, readme: str | None = None) -> str:
    """Writes out_dir/claims.md (and claims.json); with `readme`, refreshes its results block."""
    results = Results(out_dir)
    claims = all_claims(results)
    scale = _scale(out_dir)
    seeds = results.num_seeds()
    variants = [label.replace("T = 60", f"T = {results.second_t}") for _, label in TABLE1_VARIANTS[1:]]
    alpha = statistics.ALPHA
    lines = [f"# The paper's claims at `{scale}` scale", "",
             f"Every number below is read from the JSON files beside this one (table1.json, learning_curves.json, "
             f"table2.json, table3.json, figure1.json), which `./run.sh table1|table2|table3|figure1 {scale}` wrote "
             f"from trained runs (a claim whose file is not there yet says so); the "
             f"paper's numbers are those of its Tables 1-3 (MNIST column unless stated). Our runs: "
             f"{results.step():,} updates on {results.column}, {seeds} training seed{'s' * (seeds > 1)} per Table 1 "
             "row.", "",
             f"**Test**: each Table 1 claim *A < B* is decided on the training seeds by Welch's t-test "
             f"(`scipy.stats.ttest_ind`, unequal variances, two-sided): **holds** if A is lower with p < {alpha}, "
             f"**does not hold** if A is higher with p < {alpha}, **tie** if p ≥ {alpha} (a tie never counts as "
             "holding). The last two verdict columns decide the same claim with every Langevin method scored at "
             f"T = {results.second_t} instead of its training T, and with the deterministic [E+L] (z_0 = mu_phi(x), "
             "no Langevin noise) instead of the paper's. Where a side has one seed there is no t-test: the "
             f"difference decides only if it exceeds {statistics.ONE_SEED_SIGMAS:g} seed standard deviations, "
             "taken from the rows that have several seeds (Table 1: the root mean square of their relative seed "
             "std, scaled to the two means; Table 3: the seed std of T = 15), else it is a **tie**; with no row "
             "of several seeds it is **untested**, which like a tie never counts as holding.", "",
             "| claim | paper | ours (mean ± std over seeds) | verdict | " + " | ".join(
                 f"verdict, {v}" for v in variants) + " | note |",
             "|---|---|---|---|" + "---|" * len(variants) + "---|"]
    for c in claims:
        others = [c.get(f"verdict_{variant}", "—") for variant, _ in TABLE1_VARIANTS[1:]]
        lines.append(f"| {c['claim']} | {c['paper']} | {c['ours']} | **{c['verdict']}** | "
                     + " | ".join(others) + f" | {c['note']} |")
    changed = [c["claim"] for c in claims if any(c.get(f"verdict_{v}", c["verdict"]) != c["verdict"]
                                                 for v, _ in TABLE1_VARIANTS[1:])]
    lines += ["", f"**{count_line(claims)}**", "",
              ("Verdicts that change with the test-time choice: " + "; ".join(changed) + "." if changed else
               f"No verdict changes with the test-time choice (T = {results.second_t}, deterministic [E+L]).")]
    for column in results.columns():
        paper = PAPER_COLUMN.get(column, "MNIST")
        lines += ["", f"## Our Table 1 ({column}) beside the paper's {paper} column", "",
                  f"| method | ours | seeds | ours, T = {results.second_t} | ours, deterministic [E+L] "
                  f"| paper ({paper}) | ours is |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['label']} | {_fmt_ours(r)} | {r['seeds']} | {_fmt(r['second_t'])} | {_fmt(r['det'])} | "
                  f"{_fmt(r['paper'])} | {r['relation']} |" for r in absolute_rows(results, column)]
    lines += ["", f"Not the same experiment: {_paper_difference(results)} (README, Results). Verdicts compare "
              "methods within one table; they do not depend on the absolute level.", "",
              f"Notes: *still improving* / *flat*: the method's MSE change over its last doubling of updates "
              f"(learning_curves.md), below {STILL_IMPROVING:.0%} counts as still improving."]
    if command:
        lines += ["", f"Command: `{command}`"]
    path = os.path.join(out_dir, "claims.md")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    workdir_lib.write_json_atomic(os.path.join(out_dir, "claims.json"), {"command": command, "alpha": statistics.ALPHA,
                                                                          "claims": claims})
    if readme:
        update_readme(readme, readme_block(out_dir, os.path.dirname(os.path.abspath(readme)), results, claims))
    return path


def readme_block(out_dir: str, readme_dir: str = ".", results: Results | None = None,
                 claims: list[dict] | None = None) -> str:
    """The README's results block: Table 1 beside the paper's MNIST column, the learning-curve
    figure, and one line per claim, from the committed JSON files of `out_dir`; links are relative
    to `readme_dir`."""
    results = results or Results(out_dir)
    claims = claims or all_claims(results)
    rel = os.path.relpath(os.path.abspath(out_dir), os.path.abspath(readme_dir))
    seeds = results.num_seeds()
    lines = [README_START,
             f"<!-- written by `python -m hiabp_tf.experiments.report --kind=claims --out={rel} "
             "--readme=README.md`; do not edit -->",
             f"| Table 1 method | ours: {results.column}, {results.step():,} updates, "
             f"{'mean ± std over the seeds' if seeds > 1 else 'one seed'} | seeds | ours, T = {results.second_t} "
             "| ours, deterministic [E+L] | paper: MNIST, 3e5 updates |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['label']} | {_fmt_ours(r)} | {r['seeds']} | {_fmt(r['second_t'])} | {_fmt(r['det'])} "
              f"| {_fmt(r['paper'])} |" for r in absolute_rows(results)]
    for column in [c for c in results.columns() if c != results.column]:
        lines += ["", f"| Table 1 method, {column} | ours (seeds) | ours, T = {results.second_t} | paper: {column} |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {r['label']} | {_fmt_ours(r)} ({r['seeds']}) | {_fmt(r['second_t'])} | {_fmt(r['paper'])} |"
                  for r in absolute_rows(results, column)]
    lines += ["", f"![learning curves]({rel}/learning_curves.png)", ""]
    lines += _trained_longer_lines(results, rel)
    lines += [f"The paper's claims at this scale, decided on the seeds by Welch's t-test at p < {statistics.ALPHA} "
              f"([{rel}/claims.md]({rel}/claims.md)): {count_line(claims)}", ""]
    lines += [f"- **{c['verdict']}**: {c['claim']} (ours {c['ours']}{'; ' + c['note'] if c['note'] else ''})"
              for c in claims]
    lines.append(README_END)
    return "\n".join(lines)


def _trained_longer_lines(results: Results, rel: str) -> list[str]:
    """The README's line on the runs trained longer (learning_curves.json's "trained_longer"), if any
    were: how long, and whether Table 1's order holds as training goes on."""
    longer = results.curves.get("trained_longer")
    if not longer or not longer.get("summary"):
        return []
    missing = longer.get("missing") or []
    return [f"Trained {longer['steps']:,} updates ([{rel}/learning_curves.md]({rel}/learning_curves.md)): "
            f"{longer['summary']}"
            + (f" Not trained longer yet: {', '.join(missing)}." if missing else ""), ""]


def update_readme(readme: str, block: str) -> None:
    with open(readme) as f:
        text = f.read()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise MissingResultError(f"{readme} has no {README_START} ... {README_END} block to fill in.")
    text = text[:start] + block + text[end + len(README_END):]
    tmp = readme + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, readme)

"""The paper's claims, checked against this repository's results: results/<scale>/claims.md.

    python -m hiabp_tf.experiments.report --kind=claims --out=results/cpu [--readme=README.md]

Reads only the JSON files the other reports wrote beside their tables (table1.json, table2.json,
table3.json, figure1.json, learning_curves.json), so it needs no trained run, and no number in it is
typed by hand: the paper's numbers are the constants below, transcribed from its tables; ours come
from the JSON files. Each claim gets a verdict, `holds`, `does not hold` or `not comparable`, and
where one does not hold, the learning curves say whether the methods compared were still improving
when training stopped (the likely reason at a fixed budget) or had flattened out.

With --readme, the block between the README's `<!-- results:start -->` and `<!-- results:end -->`
markers is replaced by `readme_block` (Table 1 beside the paper's MNIST column, one line per claim),
so the README's first screen always shows the committed results.
"""

from __future__ import annotations

import json
import os

from hiabp_tf import workdir as workdir_lib
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
# Two MSEs closer than this (relative) are called a tie in the notes: the [E+L] scores carry
# Langevin noise and the test split has 1,000 images.
TIE = 0.01
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


class Results:
    """The numbers of one results/<scale>/ folder, by what the claims ask of them."""

    def __init__(self, out_dir: str):
        scale = _scale(out_dir)
        self.table1 = _load(out_dir, "table1.json", f"./run.sh table1 {scale}")
        self.curves = _load(out_dir, "learning_curves.json", f"./run.sh table1 {scale}")
        # Table 1 and its curves are the core; the others may not have been run yet at this scale:
        # their claims then say so (and which command measures them) instead of hiding the table.
        self.commands = {name: f"./run.sh {name} {scale}" for name in ("table2", "table3", "figure1")}
        self.table2 = _load(out_dir, "table2.json", self.commands["table2"], required=False)
        self.table3 = _load(out_dir, "table3.json", self.commands["table3"], required=False)
        self.figure1 = _load(out_dir, "figure1.json", self.commands["figure1"], required=False)
        self.column = self.table1["rows"][0]["column"]

    def mse(self, row: str, score: str) -> float:
        for r in self.table1["rows"]:
            if r["row"] == row and r["score"] == score and r["column"] == self.column:
                return r["mse"]
        raise MissingResultError(f"table1.json has no {row} {score}: rerun ./run.sh table1.")

    def label(self, row: str, score: str) -> str:
        return next(r["label"] for r in self.table1["rows"] if r["row"] == row and r["score"] == score)

    def curve(self, row: str, score: str) -> dict | None:
        return next((c for c in self.curves["curves"] if c["row"] == row and c["score"] == score), None)

    def step(self) -> int:
        return self.table1["rows"][0]["step"]


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


def _less_than(results: Results, smaller: tuple[str, str], larger: tuple[str, str], paper=PAPER_TABLE1["MNIST"]):
    """A claim 'smaller < larger' on Table 1: (paper text, our text, verdict, note)."""
    ours_a, ours_b = results.mse(*smaller), results.mse(*larger)
    paper_text = f"{paper[smaller]:.4f} < {paper[larger]:.4f}"
    ours_text = f"{ours_a:.4f} vs {ours_b:.4f} ({_pct(ours_a / ours_b - 1)})"
    holds = ours_a < ours_b
    note = ""
    if abs(ours_a / ours_b - 1) < TIE:
        note = f"a tie within {TIE:.0%}"
    if not holds:
        note = "; ".join(filter(None, [note, _improving_note(results, [smaller, larger])]))
    return paper_text, ours_text, "holds" if holds else "does not hold", note


def table1_claims(results: Results) -> list[dict]:
    best_l = min((2, 3, 4), key=lambda l: results.mse(f"hiabp_l{l}", "mse_EL"))
    best = (f"hiabp_l{best_l}", "mse_EL")
    claims = [
        ("IABP: Langevin improves on the initializer, [E+L] < [E]", ("iabp", "mse_EL"), ("iabp", "mse_E")),
        ("HiABP L = 2 < IABP [E+L]", ("hiabp_l2", "mse_EL"), ("iabp", "mse_EL")),
        ("HiABP L = 3 < L = 2", ("hiabp_l3", "mse_EL"), ("hiabp_l2", "mse_EL")),
        ("HiABP L = 4 < L = 3", ("hiabp_l4", "mse_EL"), ("hiabp_l3", "mse_EL")),
        ("IABP [E+L] < ABP (non-persistent)", ("iabp", "mse_EL"), ("abp", "mse_L")),
        ("IABP [E+L] < ABP (persistent)", ("iabp", "mse_EL"), ("abp_persistent", "mse_L")),
    ] + [(f"HiABP (best L: {best_l}) < {results.label(row, 'mse_E')}", best, (row, "mse_E"))
         for row in ("vae", "lvae", "vlae")]
    rows = []
    for text, smaller, larger in claims:
        paper_text, ours_text, verdict, note = _less_than(results, smaller, larger)
        if text.startswith("HiABP (best L"):  # the paper's best L is 4
            paper_text = (f"{PAPER_TABLE1['MNIST'][('hiabp_l4', 'mse_EL')]:.4f} (L = 4) < "
                          f"{PAPER_TABLE1['MNIST'][larger]:.4f}")
        rows.append(dict(claim=text, paper=paper_text, ours=ours_text, verdict=verdict, note=note))
    return rows


def _not_measured(results: Results, name: str, claim: str, paper: str) -> dict:
    return dict(claim=claim, paper=paper, ours="—", verdict=NOT_MEASURED,
                note=f"{name}.json is not in this folder yet: `{results.commands[name]}` measures it")


def table3_claims(results: Results) -> list[dict]:
    if results.table3 is None:
        paper = ", ".join(f"T={t}: {v:.4f}" for t, v in sorted(PAPER_TABLE3.items()))
        return [_not_measured(results, "table3", "Table 3: the MSE falls as T grows", paper + " (SVHN)"),
                _not_measured(results, "table3", f"Table 3: little to gain beyond T = 15 (T = 15 → 30 takes "
                              f"less than {LITTLE_GAIN:.0%} off)", _pct(PAPER_TABLE3[30] / PAPER_TABLE3[15] - 1))]
    by_t = {r["langevin_steps"]: r["mse"] for r in results.table3["rows"]}
    steps = sorted(by_t)
    ours = ", ".join(f"T={t}: {by_t[t]:.4f}" for t in steps)
    paper = ", ".join(f"T={t}: {v:.4f}" for t, v in sorted(PAPER_TABLE3.items()))
    falls = all(by_t[a] > by_t[b] for a, b in zip(steps, steps[1:]))
    rows = [dict(claim="Table 3: the MSE falls as T grows", paper=paper + " (SVHN)", ours=ours,
                 verdict="holds" if falls else "does not hold",
                 note="" if falls else "not monotone in T at this budget")]
    if 15 in by_t and 30 in by_t and 10 in by_t:
        gain_15_30 = by_t[30] / by_t[15] - 1
        gain_10_15 = by_t[15] / by_t[10] - 1
        paper_gain = PAPER_TABLE3[30] / PAPER_TABLE3[15] - 1
        little = -gain_15_30 < LITTLE_GAIN
        rows.append(dict(
            claim=f"Table 3: little to gain beyond T = 15 (T = 15 → 30 takes less than {LITTLE_GAIN:.0%} off)",
            paper=f"{_pct(paper_gain)} (T = 10 → 15: {_pct(PAPER_TABLE3[15] / PAPER_TABLE3[10] - 1)})",
            ours=f"{_pct(gain_15_30)} (T = 10 → 15: {_pct(gain_10_15)})",
            verdict="holds" if little else "does not hold",
            note="" if little else "a longer chain still pays at this budget: each update's latents are further "
                                   "from the posterior mode with T = 15"))
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


def table2_claims(results: Results) -> list[dict]:
    claim = "Table 2: recovery errors of the three masks (HiABP learning from incomplete data)"
    if results.table2 is None:
        return [_not_measured(results, "table2", claim, ", ".join(f"{m} {v:.4f}" for m, v in PAPER_TABLE2.items())
                              + " (CelebA, 64x64 faces)"),
                _not_measured(results, "table2", *LEARNS_FROM_INCOMPLETE_DATA)]
    occluded = {r["mask"]: r for r in results.table2["rows"] if r["trained_on"] == "trained on occluded images"}
    complete = {r["mask"]: r for r in results.table2["rows"] if r["trained_on"] == "trained on complete images"}
    masks = [m for m in PAPER_TABLE2 if m in occluded]
    paper = ", ".join(f"{m} {PAPER_TABLE2[m]:.4f}" for m in masks)
    ours = ", ".join(f"{m} {occluded[m]['recovery_mae']:.4f}" for m in masks)
    if complete:
        ours += " (trained on complete images: " + ", ".join(
            f"{complete[m]['recovery_mae']:.4f}" for m in masks if m in complete) + ")"
    dataset = occluded[masks[0]]["dataset"] if masks else "?"
    return [dict(claim=claim,
                 paper=paper + " (CelebA, 64x64 faces)", ours=ours + f" ({dataset})", verdict="not comparable",
                 note=f"another dataset: {dataset} digits are mostly black background, so per-pixel errors "
                      "are on another scale than CelebA faces"),
            learns_from_incomplete_data(results, occluded)]


LEARNS_FROM_INCOMPLETE_DATA = (  # (claim, what the paper shows)
    "Table 2: HiABP learns from incomplete data: trained on occluded images, it recovers the occluded test pixels "
    "better than the mean training image, for every mask",
    "recovered faces (Figure 6); the paper gives no reference error")


def learns_from_incomplete_data(results: Results, occluded: dict) -> dict:
    """The claim behind Table 2 that does not depend on the dataset: a model that never saw the occluded
    pixels recovers them better than the no-model reference (the mean training image), for every mask."""
    claim, paper = LEARNS_FROM_INCOMPLETE_DATA
    reference = {r["mask"]: r for r in results.table2["rows"] if r["trained_on"] == plan.MEAN_IMAGE_REFERENCE}
    masks = [m for m in occluded if m in reference]
    if not masks:
        return dict(claim=claim, paper=paper, ours="—", verdict=NOT_MEASURED,
                    note=f"table2.json has no {plan.MEAN_IMAGE_REFERENCE} row: rerun `{results.commands['table2']}`")
    errors = {m: (occluded[m]["recovery_mae"], reference[m]["recovery_mae"]) for m in masks}
    ours = ", ".join(f"{m} {a:.4f} vs {b:.4f} ({_pct(a / b - 1)})" for m, (a, b) in errors.items())
    worse = [m for m, (a, b) in errors.items() if a >= b]
    return dict(claim=claim, paper=paper, ours=ours + " (mean |error| on occluded pixels: model vs mean image)",
                verdict="does not hold" if worse else "holds",
                note=f"no better than the mean image for {', '.join(worse)}" if worse else "")


def absolute_rows(results: Results) -> list[dict]:
    """Our Table 1 numbers beside the paper's MNIST column (another training-set size)."""
    rows = []
    for r in results.table1["rows"]:
        paper = PAPER_TABLE1["MNIST"].get((r["row"], r["score"]))
        rows.append(dict(label=r["label"], ours=r["mse"], paper=paper,
                         relation="lower" if r["mse"] < paper else "higher"))
    return rows


def all_claims(results: Results) -> list[dict]:
    return table1_claims(results) + table3_claims(results) + figure1_claims(results) + table2_claims(results)


def write_claims(out_dir: str, command: str | None = None, readme: str | None = None) -> str:
    """Writes out_dir/claims.md (and claims.json); with `readme`, refreshes its results block."""
    results = Results(out_dir)
    claims = all_claims(results)
    scale = _scale(out_dir)
    lines = [f"# The paper's claims at `{scale}` scale", "",
             f"Every number below is read from the JSON files beside this one (table1.json, learning_curves.json, "
             f"table2.json, table3.json, figure1.json), which `./run.sh table1|table2|table3|figure1 {scale}` wrote "
             f"from trained runs (a claim whose file is not there yet says so); the "
             f"paper's numbers are those of its Tables 1-3 (MNIST column unless stated). Our runs: "
             f"{results.step()} updates on {results.column}.", "",
             "| claim | paper | ours | verdict | note |", "|---|---|---|---|---|"]
    lines += [f"| {c['claim']} | {c['paper']} | {c['ours']} | **{c['verdict']}** | {c['note']} |" for c in claims]
    counts = {v: sum(c["verdict"] == v for c in claims)
              for v in ("holds", "does not hold", "not comparable", NOT_MEASURED)}
    lines += ["", f"{counts['holds']} claims hold, {counts['does not hold']} do not, "
              f"{counts['not comparable']} cannot be compared here"
              + (f", {counts[NOT_MEASURED]} are not measured yet at this scale." if counts[NOT_MEASURED] else "."), "",
              "## Our Table 1 beside the paper's MNIST column", "",
              "| method | ours | paper (MNIST) | ours is |", "|---|---|---|---|"]
    lines += [f"| {r['label']} | {r['ours']:.4f} | {r['paper']:.4f} | {r['relation']} |"
              for r in absolute_rows(results)]
    lines += ["", f"Not the same experiment: the paper trains 3e5 updates on MNIST's 60,000 training digits and "
              f"tests on its 10,000; here {results.step()} updates on {results.column}'s 4,000 training digits, tested "
              "on its 1,000 (README, Results). Verdicts compare methods within one table; they do not depend on "
              "the absolute level.", "",
              f"Notes: *still improving* / *flat*: the method's MSE change over its last doubling of updates "
              f"(learning_curves.md), below {STILL_IMPROVING:.0%} counts as still improving. "
              f"A *tie*: within {TIE:.0%}."]
    if command:
        lines += ["", f"Command: `{command}`"]
    path = os.path.join(out_dir, "claims.md")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    workdir_lib.write_json_atomic(os.path.join(out_dir, "claims.json"), {"command": command, "claims": claims})
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
    lines = [README_START,
             f"<!-- written by `python -m hiabp_tf.experiments.report --kind=claims --out={rel} "
             "--readme=README.md`; do not edit -->",
             f"| Table 1 method | ours: {results.column}, {results.step()} updates | paper: MNIST, 3e5 updates |",
             "|---|---:|---:|"]
    lines += [f"| {r['label']} | {r['ours']:.4f} | {r['paper']:.4f} |" for r in absolute_rows(results)]
    lines += ["", f"![learning curves]({rel}/learning_curves.png)", "",
              f"The paper's claims at this scale ([{rel}/claims.md]({rel}/claims.md)):", ""]
    lines += [f"- **{c['verdict']}**: {c['claim']} (ours {c['ours']}{'; ' + c['note'] if c['note'] else ''})"
              for c in claims]
    lines.append(README_END)
    return "\n".join(lines)


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

"""The paper's claims, checked against this repository's results: results/<scale>/claims.md.

Knows the plan's Table 1 rows and the JSON files the reports write; knows nothing of runs/, the records
or the models.

    python -m hiabp_tf.experiments.report --kind=claims --out=results/cpu [--readme=README.md]

Reads only the JSON files the other reports wrote beside their tables (table1.json, table2.json,
table3.json, figure1.json, figure7.json, learning_curves*.json), so it needs no trained run, and no
number in it is typed by hand: the paper's numbers are the constants below, transcribed from its
tables; ours come from the JSON files.

One entry per claim of the paper, with where the paper makes it, on each dataset column we measure;
claims of our own are listed apart and not counted. Every verdict comes from `statistics`: a claim
"A < B" on Table 1 is Welch's t-test on the training seeds, with the relative difference and its 95%
interval; "the MSE falls as L grows" is the slope of log MSE on L over every seed of L = 1..4; the
p-values of every tested claim of the paper are corrected together by Holm's method. **holds** / **does
not hold** (significant after correction, A lower / higher), **inconclusive** (not significant: the
note gives the smallest effect the test could have detected at 80% power), **untested** (no test is
possible: one seed on a side, a figure; counted apart), **not comparable** (measured on other data or
another resolution than the paper's: ours is described, not judged). Table 1's claims are also
decided with every Langevin method at T = 60 and with the deterministic [E+L] (each its own family),
to show whether a verdict depends on those choices.

With --readme, the block between the README's `<!-- results:start -->` and `<!-- results:end -->`
markers is replaced by `readme_block`, so the README's first screen always shows the committed results.
"""

from __future__ import annotations

import json
import os

from hiabp_tf.evaluation import statistics
from hiabp_tf.experiments import plan
from hiabp_tf.runtime import workdir as workdir_lib

VERDICTS = statistics.VERDICTS
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
        self.figure7 = _load(out_dir, "figure7.json", f"./run.sh figure7 {scale}", required=False)
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
# Where the paper makes each kind of claim.
TABLE1_SOURCE = "Table 1"
DEPTH_SOURCE = ("Experiments, Reconstruction: \"The increase in the number of layers contributes to the quality of "
                "reconstruction ... consistently lower MSE in Table 1\"")
LANGEVIN_SOURCE = ("Experiments, Reconstruction: \"The difference in reconstruction errors between IABP [E] and IABP "
                   "[E+L] reveals the effectiveness of Langevin dynamics\" (Table 1)")
# Table 1's pairwise claims: (text, smaller, larger, where the paper makes it). HiABP is compared with
# the VAEs at L = 4, the paper's own choice (the best L on the test split would be chosen on test data).
BEST = ("hiabp_l4", "mse_EL")
TABLE1_CLAIMS = (
    ("IABP: Langevin improves on the initializer, [E+L] < [E]", ("iabp", "mse_EL"), ("iabp", "mse_E"), LANGEVIN_SOURCE),
    ("HiABP L = 2 < IABP [E+L]", ("hiabp_l2", "mse_EL"), ("iabp", "mse_EL"), TABLE1_SOURCE),
    ("HiABP L = 3 < L = 2", ("hiabp_l3", "mse_EL"), ("hiabp_l2", "mse_EL"), TABLE1_SOURCE),
    ("HiABP L = 4 < L = 3", ("hiabp_l4", "mse_EL"), ("hiabp_l3", "mse_EL"), TABLE1_SOURCE),
    ("IABP [E+L] < ABP (non-persistent)", ("iabp", "mse_EL"), ("abp", "mse_L"), TABLE1_SOURCE),
    ("IABP [E+L] < ABP (persistent)", ("iabp", "mse_EL"), ("abp_persistent", "mse_L"), TABLE1_SOURCE),
    ("HiABP L = 4 < VAE", BEST, ("vae", "mse_E"), TABLE1_SOURCE),
    ("HiABP L = 4 < LVAE (L=4)", BEST, ("lvae", "mse_E"), TABLE1_SOURCE),
    ("HiABP L = 4 < VLAE (L=4)", BEST, ("vlae", "mse_E"), TABLE1_SOURCE),
)
DEPTH_ROWS = (("iabp", "mse_EL", 1), ("hiabp_l2", "mse_EL", 2), ("hiabp_l3", "mse_EL", 3), ("hiabp_l4", "mse_EL", 4))
PAPER_COLUMN = {"MNIST": "MNIST", "mnist_5k": "MNIST", "SVHN": "SVHN", "CelebA": "CelebA"}


def _claim(text: str, source: str, column: str | None, paper: str, ours: str = "—", verdict: str = NOT_MEASURED,
           kind: str = "paper", note: str = "", **fields) -> dict:
    """One claim: its text, where the paper makes it, the data column, the paper's and our numbers, the
    verdict (set by `decide` for tested claims), whether it is the paper's or ours, and a note."""
    return dict(claim=text if column in (None, "MNIST", "mnist_5k") else f"{column}: {text}", source=source,
                column=column, paper=paper, ours=ours, verdict=verdict, kind=kind, note=note, **fields)


def _welch_fields(smaller: list[float], larger: list[float]) -> dict:
    """The test fields of a claim "A < B" on seeds: Welch's test if both sides have two seeds or more,
    else untested (one seed)."""
    if len(smaller) < 2 or len(larger) < 2:
        effect = (sum(smaller) / len(smaller)) / (sum(larger) / len(larger)) - 1
        return dict(test="none: one training seed on a side", p=None, effect=effect, ci=None, mde=None,
                    basis="one seed")
    test = statistics.welch(smaller, larger)
    return dict(test=test["test"], p=test["p"], df=test["df"], effect=test["relative"], ci=list(test["relative_ci"]),
                mde=test["mde"], basis="test")


def _pair(results: Results, column: str, text: str, smaller, larger, source: str, kind: str = "paper",
          paper_values: dict | None = None) -> dict:
    """A Table 1 claim "smaller < larger" on a column, with its test on every variant."""
    paper_values = paper_values or PAPER_TABLE1[PAPER_COLUMN.get(column, "MNIST")]
    paper = (f"{paper_values[smaller]:.4f} < {paper_values[larger]:.4f}" if smaller in paper_values
             and larger in paper_values else "—")
    if not (results.has(*smaller, column) and results.has(*larger, column)):
        missing = [results.label(*key) for key in (smaller, larger) if not results.has(*key, column)]
        return _claim(text, source, column, paper, kind=kind,
                      note=f"table1.json has no {column} {' and no '.join(missing)} yet: `./run.sh table1 "
                           f"{results.scale}` trains it")
    a, b = results.summary(*smaller, column=column), results.summary(*larger, column=column)
    fields = _welch_fields(a["seeds"], b["seeds"])
    out = _claim(text, source, column, paper, f"{_fmt_summary(a)} vs {_fmt_summary(b)}", kind=kind,
                 verdict="untested" if fields["p"] is None else None, **fields)
    for variant, _ in TABLE1_VARIANTS[1:]:
        va, vb = (results.summary(*key, variant, column)["seeds"] for key in (smaller, larger))
        tested = _welch_fields(va, vb)
        out[f"p_{variant}"], out[f"effect_{variant}"] = tested["p"], tested["effect"]
    out["compared"] = [list(smaller), list(larger)]
    return out


def _depth_values(results: Results, column: str, variant: str = "mse") -> tuple[list[int], list[float], list[str]]:
    """(L of every run, its MSE, the rows missing) of IABP and HiABP L = 2..4 on a column."""
    levels, values, missing = [], [], []
    for row, score, level in DEPTH_ROWS:
        if not results.has(row, score, column):
            missing.append(results.label(row, score))
            continue
        seeds = results.summary(row, score, variant, column)["seeds"]
        levels += [level] * len(seeds)
        values += seeds
    return levels, values, missing


def depth_trend(results: Results, column: str) -> dict:
    """"The MSE falls as L grows": one test over every seed of L = 1..4 (the slope of log MSE on L),
    which has more power than each pair of neighbouring depths on three seeds a side."""
    paper_values = PAPER_TABLE1[PAPER_COLUMN.get(column, "MNIST")]
    paper = " > ".join(f"{paper_values[(row, score)]:.4f}" for row, score, _ in DEPTH_ROWS) + " (L = 1 to 4)"
    text = "the MSE falls as L grows (L = 1..4, one test over every seed)"
    levels, values, missing = _depth_values(results, column)
    if missing:
        return _claim(text, DEPTH_SOURCE, column, paper, note=f"table1.json has no {column} {', '.join(missing)} "
                      f"yet: `./run.sh table1 {results.scale}` trains it")
    means = {level: sum(v for l, v in zip(levels, values) if l == level) / levels.count(level) for level in
             sorted(set(levels))}
    ours = " > ".join(f"{means[level]:.4f}" for level in sorted(means)) + f" ({len(values)} runs)"
    if len(values) < 3 or len(values) == len(set(levels)) and len(values) < 5:
        return _claim(text, DEPTH_SOURCE, column, paper, ours, "untested", test="none: one seed per L", p=None,
                      effect=None, ci=None, basis="one seed")
    trend = statistics.log_linear_trend(levels, values)
    out = _claim(text, DEPTH_SOURCE, column, paper, ours, None, test=trend["test"], p=trend["p"], df=trend["df"],
                 effect=trend["per_level"], ci=list(trend["per_level_ci"]), mde=None, basis="test",
                 effect_unit="per layer")
    for variant, _ in TABLE1_VARIANTS[1:]:
        v_levels, v_values, _ = _depth_values(results, column, variant)
        v_trend = statistics.log_linear_trend(v_levels, v_values)
        out[f"p_{variant}"], out[f"effect_{variant}"] = v_trend["p"], v_trend["per_level"]
    return out


def table1_claims(results: Results, column: str | None = None) -> list[dict]:
    """The paper's Table 1 claims on one dataset column, the depth trend after the depth pairs."""
    column = column or results.column
    claims = [_pair(results, column, text, smaller, larger, source) for text, smaller, larger, source in TABLE1_CLAIMS]
    claims.insert(4, depth_trend(results, column))
    return claims


def own_table1_claims(results: Results) -> list[dict]:
    """Claims of ours on Table 1 (not counted with the paper's): the LVAE without its KL warm-up,
    the same claim against the other way of training that baseline."""
    no_warmup = ("lvae_no_warmup", "mse_E")
    if not (results.has(*BEST) and results.has(*no_warmup)):
        return []
    paper = {**PAPER_TABLE1["MNIST"], no_warmup: PAPER_TABLE1["MNIST"][("lvae", "mse_E")]}
    return [_pair(results, results.column, f"HiABP L = 4 < {results.label(*no_warmup)} (the paper's LVAE number "
                  "beside it)", BEST, no_warmup, "ours: the LVAE's warm-up both ways (docs/protocol.md)",
                  kind="ours", paper_values=paper)]


def _not_measured(results: Results, name: str, claim: str, source: str, paper: str, kind="paper") -> dict:
    return _claim(claim, source, None, paper, kind=kind,
                  note=f"{name}.json is not in this folder yet: `{results.commands[name]}` measures it")


TABLE3_SOURCE = "Table 3 (HiABP L = 4 on SVHN)"


def table3_claims(results: Results) -> list[dict]:
    """Table 3's claims were made on SVHN: measured here on MNIST, they are described (our own
    claims, one seed at T other than 15) and marked not comparable with the paper's numbers."""
    paper = ", ".join(f"T={t}: {v:.4f}" for t, v in sorted(PAPER_TABLE3.items())) + " (SVHN)"
    paper_gain = f"{_pct(PAPER_TABLE3[30] / PAPER_TABLE3[15] - 1)} (T = 10 → 15: " \
                 f"{_pct(PAPER_TABLE3[15] / PAPER_TABLE3[10] - 1)})"
    falls, little = ("Table 3: the MSE falls as T grows",
                     f"Table 3: little to gain beyond T = 15 (T = 15 → 30 takes less than {LITTLE_GAIN:.0%} off)")
    if results.table3 is None:
        return [_not_measured(results, "table3", falls, TABLE3_SOURCE, paper),
                _not_measured(results, "table3", little, TABLE3_SOURCE, paper_gain)]
    by_t = {r["langevin_steps"]: r for r in results.table3["rows"]}
    mean = {t: r["mse"] for t, r in by_t.items()}
    steps = sorted(by_t)
    dataset = next(iter(by_t.values())).get("dataset", "?")
    ours = ", ".join(f"T={t}: {mean[t]:.4f}" + (f" ± {by_t[t]['mse_std']:.4f}" if by_t[t].get("mse_std") else "")
                     for t in steps)
    other = f"measured on {dataset} with HiABP L = 3, the paper's numbers on SVHN with L = 4"
    claims = [_claim(falls, TABLE3_SOURCE, None, paper, ours + f" ({dataset})", "not comparable", note=other)]
    monotone = all(mean[b] < mean[a] for a, b in zip(steps, steps[1:]))
    claims.append(_claim(f"On {dataset}, HiABP L = 3's MSE falls at every longer T of Table 3", "ours (Table 3's "
                         "design on our data)", None, "—", ours, "untested", kind="ours", test="none: one seed at "
                         "T other than 15", p=None, basis="one seed",
                         note=("lower at every longer T" if monotone else "not lower at every longer T")
                         + " (on the means)"))
    if {10, 15, 30} <= set(mean):
        gain = mean[30] / mean[15] - 1
        claims.append(_claim(little, TABLE3_SOURCE, None, paper_gain,
                             f"{_pct(gain)} (T = 10 → 15: {_pct(mean[15] / mean[10] - 1)}) ({dataset})",
                             "not comparable", note=other))
    return claims


FIGURE1_SOURCE = "Figure 1 and Method, Initializing: informative initialisation reduces the Langevin steps needed"


def figure1_claims(results: Results) -> list[dict]:
    """Figure 1's claim from figure1.json: its own verdict if the figure decided it with a test
    (the training experiment's "claims"), else the test-time comparison, which no test decides."""
    claim = "Figure 1: the encoder's initialisation needs fewer Langevin steps than noise initialisation"
    paper = "a plot (no numbers), MNIST"
    if results.figure1 is None:
        return [_not_measured(results, "figure1", claim, FIGURE1_SOURCE, paper)]
    if results.figure1.get("claims"):  # the figure's own verdicts, each with its test (or none)
        return [_figure_claim(c, FIGURE1_SOURCE, paper) for c in results.figure1["claims"]]
    training = results.figure1.get("verdict")  # the training experiment (informative_init.decide)
    if training and training.get("comparisons"):
        # "IABP reaches, with some smaller training T, ABP's MSE at its largest T": the comparison of
        # the smallest Holm-adjusted p over the smaller T (a valid p for "at some T"), its effect relative
        # to ABP's mean; Holm then runs again over the paper's claims.
        comparisons, target = training["comparisons"], training["target"]
        best = min(comparisons, key=lambda c: c["p_holm"])
        return [_claim(claim, FIGURE1_SOURCE, None, paper, training["outcome"], None,
                       test=f"{best['test']}, IABP trained with T = {best['iabp_steps']} against ABP with T = "
                            f"{target['abp_steps']}: the smallest of the {len(comparisons)} smaller T's p, "
                            "Holm-corrected over them (figure1.md)",
                       p=best["p_holm"], effect=best["relative"], ci=[v / target["mse"] for v in best["ci"]],
                       mde=None, basis="test")]
    if training:  # trained, but no smaller T to compare yet
        return [_claim(claim, FIGURE1_SOURCE, None, paper, training.get("outcome", "—"), "untested",
                       test="none: no smaller training T of IABP measured", p=None, basis="a figure")]
    by = {}
    for r in results.figure1["rows"]:
        by.setdefault(r["langevin_steps"], {})[r["initialisation"]] = r["mse"]
    steps = sorted(t for t in by if {"encoder", "noise"} <= set(by[t]))
    wins = [t for t in steps if by[t]["encoder"] < by[t]["noise"]]
    ours = f"encoder lower at {len(wins)} of {len(steps)} test-time T in {steps}"
    return [_claim(claim, FIGURE1_SOURCE, None, paper, ours, "untested", test="none: a figure of one model per "
                   "initialisation", p=None, basis="a figure",
                   note="the two curves are two different trained generators (IABP, ABP) at test-time T; the "
                        "paper's claim is about training")]


FIGURE7_SOURCE = "Figure 7 and Experiments, Unsupervised Hierarchical Latent Disentanglement"


def figure7_claims(results: Results) -> list[dict]:
    """Figure 7's claims from figure7.json (written by `./run.sh figure7`), each with its own test."""
    data = results.figure7
    if data is None:
        return []
    if data.get("claims"):
        return [_figure_claim(c, FIGURE7_SOURCE, "a figure (no numbers), MNIST") for c in data["claims"]]
    names = {"stroke": "stroke width", "width": "digit width", "identity": "digit identity"}
    seeds = len(data.get("models") or []) or 1
    claims = []
    for v in data.get("verdicts", []):  # one factor each: its layer against every other layer
        weakest = min(v["comparisons"], key=lambda c: c["difference"])  # the claim needs all of them
        p = max(c["p"] for c in v["comparisons"])
        means = ", ".join(f"layer {layer} {value:.3f}" for layer, value in sorted(v["means"].items()))
        claims.append(_claim(
            f"Figure 7: resampling layer {v['layer']} of HiABP L = 3 changes {names.get(v['factor'], v['factor'])} "
            "most", FIGURE7_SOURCE, None, "a figure (no numbers), MNIST", f"mean change per resample: {means}",
            None, test=data.get("test", "paired t-test across test digits"), p=p, effect=weakest["difference"],
            ci=weakest["ci"], mde=None, basis="test", higher_holds=True, effect_unit="(absolute: px or class rate)",
            note=f"{seeds} training seed{'s' * (seeds > 1)}: the test is across {weakest['n']} test digits of "
                 "that model, not across trainings; effect: the claimed layer's change minus the next layer's"))
    return claims


def _figure_claim(c: dict, source: str, paper: str) -> dict:
    """A claim a figure's JSON decided ({"claim", "p", "effect", "ci", "test", "ours", "note", ...}): with a
    p-value it joins the tested claims (its verdict then comes from `decide`), else it is untested."""
    tested = c.get("p") is not None
    return _claim(c["claim"], c.get("source", source), None, c.get("paper", paper), c.get("ours", "—"),
                  None if tested else c.get("verdict", "untested"), c.get("kind", "paper"), c.get("note", ""),
                  test=c.get("test", "none"), p=c.get("p"), effect=c.get("effect"), ci=c.get("ci"), mde=c.get("mde"),
                  basis="test" if tested else c.get("basis", "a figure"))


TRAINING_IMAGES = "training images (paper's protocol)"  # as report.TRAINING_IMAGES
TABLE2_SOURCE = "Table 2 (HiABP on 10,000 CelebA faces at 64 x 64)"


def _table2_rows(results: Results, trained_on: str, images: str) -> dict:
    """{mask: row} of table2.json (rows written before the training-image protocol are test images)."""
    return {r["mask"]: r for r in results.table2["rows"]
            if r["trained_on"] == trained_on and r.get("images", "test images") == images}


def _image_size(dataset: str) -> str:
    """" at N x N" for a dataset spec that names its image size (images:DIR,image_size=N,...)."""
    size = next((part.split("=", 1)[1] for part in dataset.split(",") if part.startswith("image_size=")), None)
    return f" at {size} x {size}" if size else ""


def table2_claims(results: Results) -> list[dict]:
    """Table 2's absolute errors were measured on 64 x 64 faces with the paper's budget: ours (another
    resolution, data and budget) are described beside them, not judged. Beside it, a claim of ours:
    the model recovers the pixels it never saw better than a mean image does."""
    claim = ("Table 2: trained on occluded faces, HiABP recovers the never-observed pixels of its training images "
             "with the paper's error")
    paper = ", ".join(f"{m} {v:.4f}" for m, v in PAPER_TABLE2.items()) + " (CelebA, 10,000 faces, 64x64)"
    if results.table2 is None:
        return [_not_measured(results, "table2", claim, TABLE2_SOURCE, paper),
                _not_measured(results, "table2", LEARNS_FROM_INCOMPLETE_DATA[0], "ours",
                              LEARNS_FROM_INCOMPLETE_DATA[1], kind="ours")]
    on_training = _table2_rows(results, "trained on occluded images", TRAINING_IMAGES)
    on_test = _table2_rows(results, "trained on occluded images", "test images")
    measured = on_training or on_test
    masks = [m for m in PAPER_TABLE2 if m in measured]
    dataset = measured[masks[0]]["dataset"] if masks else "?"
    errors = {m: measured[m]["recovery_mae"] for m in masks}
    ours = ", ".join(f"{m} {errors[m]:.4f} ({_pct(errors[m] / PAPER_TABLE2[m] - 1)})" for m in masks)
    if on_test and on_training:
        ours += "; on occluded test faces: " + ", ".join(f"{m} {on_test[m]['recovery_mae']:.4f}" for m in masks)
    images = "training" if on_training else "test"
    rows = [_claim(claim, TABLE2_SOURCE, None, paper, ours + f" ({images} images)", "not comparable",
                   note=f"our images: {dataset}{_image_size(dataset)}, one training seed per mask, "
                        f"{results.step():,} updates; the paper's: 64 x 64 faces and its budget (table2.md)")]
    rows.append(learns_from_incomplete_data(results, measured, _table2_rows(
        results, plan.MEAN_IMAGE_REFERENCE, TRAINING_IMAGES if on_training else "test images"), images))
    return rows


LEARNS_FROM_INCOMPLETE_DATA = (  # (claim, what the paper shows)
    "HiABP learns from incomplete data: trained on occluded images, it recovers the occluded pixels better than "
    "a mean image, for every mask",
    "recovered faces (Figure 6); the paper gives no reference error")


def learns_from_incomplete_data(results: Results, occluded: dict, reference: dict, images: str) -> dict:
    """A claim of ours behind Table 2 that does not depend on the resolution: a model that never saw
    the occluded pixels recovers them better than the no-model reference (a mean image), for every
    mask (one training seed per mask, so no test)."""
    claim, paper = LEARNS_FROM_INCOMPLETE_DATA
    masks = [m for m in occluded if m in reference]
    if not masks:
        return _claim(claim, "ours", None, paper, kind="ours",
                      note=f"table2.json has no {plan.MEAN_IMAGE_REFERENCE} row: rerun `{results.commands['table2']}`")
    errors = {m: (occluded[m]["recovery_mae"], reference[m]["recovery_mae"]) for m in masks}
    ours = ", ".join(f"{m} {a:.4f} vs {b:.4f} ({_pct(a / b - 1)})" for m, (a, b) in errors.items())
    worse = [m for m, (a, b) in errors.items() if a >= b]
    return _claim(claim, "ours", None, paper, ours + f" (mean |error| on the occluded pixels of the {images} "
                  "images: model vs mean image)", "untested", kind="ours", test="none: one training seed per mask",
                  p=None, basis="one seed",
                  note=(f"no better than the mean image for {', '.join(worse)}" if worse else
                        "lower for every mask") + " (one seed: not a tested verdict)")


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


def decide(claims: list[dict]) -> list[dict]:
    """Holm's correction over the tested claims of the paper (each variant of Table 1 its own family;
    claims of ours are corrected among themselves), then each tested claim's verdict; an inconclusive
    one says what effect its test could have detected. Returns `claims`, completed."""
    for kind in ("paper", "ours"):
        for variant in ("",) + tuple(f"_{v}" for v, _ in TABLE1_VARIANTS[1:]):
            family = [c for c in claims if c["kind"] == kind and c.get(f"p{variant}") is not None
                      and c["verdict"] not in ("not comparable", "untested", NOT_MEASURED)]
            for c, adjusted in zip(family, statistics.holm([c[f"p{variant}"] for c in family])):
                c[f"p_holm{variant}"] = adjusted
                effect = c[f"effect{variant}"]  # "A < B" holds below 0; a larger-is-the-claim effect above it
                c[f"verdict{variant}"] = statistics.verdict(-effect if c.get("higher_holds") else effect, adjusted)
                c[f"family{variant}"] = len(family)
    for c in claims:
        if c["verdict"] == "inconclusive" and c.get("mde") is not None:
            extra = (f"inconclusive, not equal: with these seeds the test detects a difference of "
                     f"{c['mde']:.1%} or more with 80% power (alpha {statistics.ALPHA}, before correction)")
            c["note"] = "; ".join(filter(None, [extra, c["note"]]))
    return claims


def all_claims(results: Results) -> list[dict]:
    """Every claim, the paper's first (each Table 1 column), then ours, decided."""
    claims = [c for column in results.columns() for c in table1_claims(results, column)]
    claims += table3_claims(results) + figure1_claims(results) + figure7_claims(results) + table2_claims(results)
    claims = decide(claims + own_table1_claims(results))
    for c in claims:  # the learning curves' word on a claim that did not hold (MNIST's curves)
        if c.get("compared") and c["column"] == results.column and c["verdict"] != "holds":
            improving = _improving_note(results, [tuple(k) for k in c["compared"]])
            c["note"] = "; ".join(filter(None, [c["note"], improving]))
    return sorted(claims, key=lambda c: c["kind"] != "paper")


def _fmt_effect(c: dict) -> str:
    """"-20.4% [-21.5%, -19.3%]" (the relative effect and its 95% interval)."""
    if c.get("effect") is None:
        return "—"
    unit = f" {c['effect_unit']}" if c.get("effect_unit") else ""
    fmt = "{:+.3f}" if c.get("higher_holds") else "{:+.1%}"  # (a figure's effects are absolute)
    ci = "" if not c.get("ci") else f" [{fmt.format(c['ci'][0])}, {fmt.format(c['ci'][1])}]"
    return fmt.format(c["effect"]) + ci + unit


def _fmt_p(p) -> str:
    return "—" if p is None else f"{p:.2g}"


def count_line(claims: list[dict]) -> str:
    """The count of the paper's claims by kind of evidence (claims of ours are not counted)."""
    paper = [c for c in claims if c["kind"] == "paper"]
    n = {v: sum(c["verdict"] == v for c in paper) for v in VERDICTS + (NOT_MEASURED,)}
    tested = n["holds"] + n["does not hold"] + n["inconclusive"]
    untested = [c for c in paper if c["verdict"] == "untested"]
    reasons = ", ".join(sorted({c.get("basis") or "no test" for c in untested}))
    line = (f"{len(paper)} claims of the paper: {tested} decided by a test (Holm-corrected together): "
            f"{n['holds']} hold, {n['does not hold']} do not hold, {n['inconclusive']} inconclusive; "
            f"{n['untested']} without a test{f' ({reasons})' if reasons else ''}; "
            f"{n['not comparable']} not comparable (measured on other data)")
    return line + (f"; {n[NOT_MEASURED]} not measured yet." if n[NOT_MEASURED] else ".")


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


def _seed_counts(results: Results, column: str) -> str:
    """"3 seeds per row" or "3 seeds for VAE, ..., 1 for ..." of a column."""
    counts = {}
    for r in results.table1["rows"]:
        if r["column"] == column:
            counts.setdefault(len(results.summary(r["row"], r["score"], column=column)["seeds"]), []).append(r["label"])
    if len(counts) == 1:
        n = next(iter(counts))
        return f"{n} training seed{'s' * (n > 1)} per row"
    return "; ".join(f"{n} seed{'s' * (n > 1)}: {', '.join(labels)}" for n, labels in sorted(counts.items(),
                                                                                           reverse=True))


def _claims_table(claims: list[dict], second_t) -> list[str]:
    variants = [label.replace("T = 60", f"T = {second_t}") for _, label in TABLE1_VARIANTS[1:]]
    lines = ["| claim | where the paper makes it | paper | ours | test | effect, 95% CI | p | p, Holm | verdict | "
             + " | ".join(f"verdict, {v}" for v in variants) + " | note |",
             "|---|---|---|---|---|---|---|---|---|" + "---|" * len(variants) + "---|"]
    for c in claims:
        others = [c.get(f"verdict_{variant}", "—") for variant, _ in TABLE1_VARIANTS[1:]]
        lines.append(f"| {c['claim']} | {c['source']} | {c['paper']} | {c['ours']} | {c.get('test') or '—'} | "
                     f"{_fmt_effect(c)} | {_fmt_p(c.get('p'))} | {_fmt_p(c.get('p_holm'))} | **{c['verdict']}** | "
                     + " | ".join(others) + f" | {c['note']} |")
    return lines


def write_claims(out_dir: str, command: str | None = None, readme: str | None = None) -> str:
    """Writes out_dir/claims.md (and claims.json); with `readme`, refreshes its results block."""
    results = Results(out_dir)
    claims = all_claims(results)
    scale = _scale(out_dir)
    paper = [c for c in claims if c["kind"] == "paper"]
    ours = [c for c in claims if c["kind"] == "ours"]
    family = max((c.get("family", 0) for c in paper), default=0)
    alpha = statistics.ALPHA
    lines = [f"# The paper's claims at `{scale}` scale", "",
             "Every number below is read from the JSON files beside this one (table1.json, learning_curves.json, "
             f"table2.json, table3.json, figure1.json, figure7.json), which `./run.sh EXPERIMENT {scale}` wrote from "
             "trained runs (a claim whose file is not there yet says so); the paper's numbers are those of its "
             "Tables 1-3. Our runs: " + "; ".join(f"{column}: {results.step():,} updates, "
                                                  f"{_seed_counts(results, column)}" for column in results.columns())
             + ".", "",
             f"**Statistics** (`hiabp_tf/evaluation/statistics.py`). A claim *A < B* of Table 1 is decided on the "
             f"training seeds by {statistics.WELCH}; its effect is the relative difference (A − B) / B with the "
             f"95% confidence interval of the difference divided by B's mean. *The MSE falls as L grows* is decided "
             f"by the {statistics.TREND}, over every seed of L = 1..4; its effect is the change per layer. The "
             f"p-values of the {family} tested claims of the paper are corrected together by Holm's method: a claim "
             f"**holds** if A is lower with a Holm-adjusted p < {alpha}, **does not hold** if A is higher with "
             f"adjusted p < {alpha}, and is **inconclusive** otherwise, which is not a tie and never "
             "\"equal\": the note gives the smallest difference the test could have detected with 80% power. A "
             "claim no test can decide (one seed on a side, a figure) is **untested** and counted apart; one "
             "measured on other data or another resolution than the paper's is **not comparable**: ours is "
             "described beside it, not judged.", "",
             f"The verdict columns on the right decide the same claims with every Langevin method scored at "
             f"T = {results.second_t} (the VAE family has no chain and keeps its score: against a VAE this column "
             "gives HiABP a longer test-time computation, not an equal one) and with the deterministic [E+L] "
             "(z_0 = mu_phi(x), no Langevin noise), each its own Holm family.", "",
             "## The paper's claims", ""] + _claims_table(paper, results.second_t)
    changed = [c["claim"] for c in paper if any(c.get(f"verdict_{v}", c["verdict"]) != c["verdict"]
                                                for v, _ in TABLE1_VARIANTS[1:])]
    lines += ["", f"**{count_line(claims)}**", "",
              ("Verdicts that change with the test-time choice: " + "; ".join(changed) + "." if changed else
               f"No verdict changes with the test-time choice (T = {results.second_t}, deterministic [E+L]).")]
    if ours:
        lines += ["", "## Claims of our own (not counted above)", "",
                  "Measurements the paper does not make, on our data; tested ones are Holm-corrected among "
                  "themselves.", ""] + _claims_table(ours, results.second_t)
    for column in results.columns():
        paper_column = PAPER_COLUMN.get(column, "MNIST")
        lines += ["", f"## Our Table 1 ({column}) beside the paper's {paper_column} column", "",
                  f"| method | ours | seeds | ours, T = {results.second_t} | ours, deterministic [E+L] "
                  f"| paper ({paper_column}) | ours is |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['label']} | {_fmt_ours(r)} | {r['seeds']} | {_fmt(r['second_t'])} | {_fmt(r['det'])} | "
                  f"{_fmt(r['paper'])} | {r['relation']} |" for r in absolute_rows(results, column)]
    lines += ["", f"Not the same experiment: {_paper_difference(results)} (README, Results). Verdicts compare "
              "methods within one table; they do not depend on the absolute level.", "",
              f"Notes: *still improving* / *flat*: the method's MSE change over its last doubling of updates "
              f"(learning_curves.md), below {STILL_IMPROVING:.0%} counts as still improving; a measurement, "
              "not a reason for the verdict."]
    if command:
        lines += ["", f"Command: `{command}`"]
    path = os.path.join(out_dir, "claims.md")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    workdir_lib.write_json_atomic(os.path.join(out_dir, "claims.json"), {
        "command": command, "alpha": statistics.ALPHA, "count": count_line(claims), "claims": claims})
    if readme:
        update_readme(readme, readme_block(out_dir, os.path.dirname(os.path.abspath(readme)), results, claims))
    return path


def readme_block(out_dir: str, readme_dir: str = ".", results: Results | None = None,
                 claims: list[dict] | None = None) -> str:
    """The README's results block: Table 1 beside the paper's columns, the learning-curve figure,
    and the paper's claims with their verdicts, from the committed JSON files of `out_dir`; links
    are relative to `readme_dir`."""
    results = results or Results(out_dir)
    claims = claims or all_claims(results)
    rel = os.path.relpath(os.path.abspath(out_dir), os.path.abspath(readme_dir))
    lines = [README_START,
             f"<!-- written by `python -m hiabp_tf.experiments.report --kind=claims --out={rel} "
             "--readme=README.md`; do not edit -->"]
    for number, column in enumerate(results.columns()):
        paper_column = PAPER_COLUMN.get(column, "MNIST")
        lines += [f"| Table 1, {column} | ours, {results.step():,} updates (seeds) | ours, T = {results.second_t} | "
                  f"ours, deterministic [E+L] | paper: {paper_column}, 3e5 updates |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {r['label']} | {_fmt_ours(r)} ({r['seeds']}) | {_fmt(r['second_t'])} | {_fmt(r['det'])} | "
                  f"{_fmt(r['paper'])} |" for r in absolute_rows(results, column)]
        lines.append("")
        if number == 0:  # the first column's curves, on the first screen
            lines += [f"![learning curves]({rel}/learning_curves.png)", ""]
    lines += _trained_longer_lines(results, rel)
    lines += [f"**The paper's claims** ([{rel}/claims.md]({rel}/claims.md): the test of each, Welch's t-test on the "
              f"seeds or a trend over L, Holm-corrected; effect = relative difference, 95% CI): "
              f"{count_line(claims)}", "",
              "| verdict | claim | effect, 95% CI | p, Holm |", "|---|---|---|---:|"]
    lines += [f"| {c['verdict']} | {c['claim']} | {_fmt_effect(c)} | {_fmt_p(c.get('p_holm'))} |"
              for c in claims if c["kind"] == "paper"]
    latent = _load(out_dir, "latent_size.json", f"./run.sh latent_size {results.scale}", required=False)
    if latent:  # the panel's finding in one line (issue 37)
        lines += ["", f"**Latent size** ([{rel}/latent_size.md]({rel}/latent_size.md): the MNIST claims at total "
                  f"latent sizes {', '.join(map(str, latent['sizes']))}): {latent['sentence']}"]
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

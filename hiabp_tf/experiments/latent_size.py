"""The latent size the paper does not state: do its MNIST verdicts depend on it?

Table 1's MNIST rows VAE, VLAE (L = 4), IABP ([E] and [E+L]) and HiABP L = 2, 3, 4 are trained at the
total latent sizes of SIZES (Table 1's own runs are the 48), split equally over the layers as in
Table 1 (every size of plan.LATENT_SIZES divides evenly by every L = 1..4; `plan.split_latent` refuses
one that does not, rather than choose a split), with Table 1's seeds, networks, budget, precision and test-time T.
At each size the paper's MNIST claims (`CLAIMS`: IABP [E+L] < [E], the depth pairs, the depth trend,
HiABP L = 4 < VAE) are decided with the statistics of claims.md (Welch's test on the seeds, the
depth trend's slope of log MSE on L), and Holm's correction runs over every claim of every size
together (one family: they are read together). No size is chosen from these results: Table 1 stays
at 48.

Knows Table 1's rows (plan), the pages (a run's scores), the Table 1 claims and their statistics
(claims.py) and the figures; not the runs: `run.py` passes the workdirs (or records) of each cell.
"""

from __future__ import annotations

import os

from hiabp_tf.evaluation import statistics
from hiabp_tf.experiments import claims as claims_lib
from hiabp_tf.experiments import pages
from hiabp_tf.experiments import plan

TABLE1_SIZE = 48  # Table 1's total latent size (flags/mnist_*.flags)
# Table 1's rows of the panel and the score each reports: (row, score); IABP has both of its scores.
CELLS = (("vae", "mse_E"), ("vlae", "mse_E"), ("iabp", "mse_E"), ("iabp", "mse_EL"), ("hiabp_l2", "mse_EL"),
         ("hiabp_l3", "mse_EL"), ("hiabp_l4", "mse_EL"))
ROWS = tuple(dict.fromkeys(row for row, _ in CELLS))
# The paper's MNIST claims decided at each size: the pairs of Table 1 (by their text in claims.py)
# and the depth trend.
PAIRS = ("IABP: Langevin improves on the initializer, [E+L] < [E]", "HiABP L = 2 < IABP [E+L]",
         "HiABP L = 3 < L = 2", "HiABP L = 4 < L = 3", "HiABP L = 4 < VAE")
OUTPUT_NAME = "latent_size"


def column(size: int) -> str:
    """The claims' column name of a size (a claim's text is prefixed with it)."""
    return f"MNIST, total latent size {size}"


class _SizeResults(claims_lib.Results):
    """claims.Results over one size's cells instead of table1.json (the same claims code decides them)."""

    def __init__(self, rows: list[dict], scale: str):  # pylint: disable=super-init-not-called
        self.table1 = {"rows": rows}
        self.curves = {"curves": []}
        self.scale = scale
        self.column = rows[0]["column"] if rows else None
        self.second_t = None


def _label(row: str, score: str) -> str:
    return next(label for key, label, s in plan.TABLE1 if (key, s) == (row, score))


def cell_rows(size: int, cells: dict) -> list[dict]:
    """table1.json-like rows of one size: `cells` {(row, score): [MSE of each seed]} (rows without a
    seed are left out)."""
    return [dict(column=column(size), row=row, score=score, label=_label(row, score),
                 mse=statistics.seed_summary(values)) for (row, score), values in cells.items() if values]


def size_claims(size: int, cells: dict, scale: str) -> list[dict]:
    """The paper's MNIST claims (PAIRS and the depth trend) on one size's cells, not yet corrected."""
    results = _SizeResults(cell_rows(size, cells), scale)
    if results.column is None:
        results.column = column(size)
    chosen = [c for c in claims_lib.TABLE1_CLAIMS if c[0] in PAIRS]
    out = [claims_lib._pair(results, column(size), text, smaller, larger, source)  # pylint: disable=protected-access
           for text, smaller, larger, source in chosen]
    out.insert(4, claims_lib.depth_trend(results, column(size)))
    for c in out:
        c["size"] = size
        c["note"] = c["note"].replace(f"`./run.sh table1 {scale}` trains it", f"`./run.sh latent_size {scale}` "
                                      "trains it")
    return out


def decide(by_size: dict, scale: str) -> list[dict]:
    """Every size's claims, Holm-corrected together (one family per Table 1 variant, as claims.md)."""
    claims = [c for size in sorted(by_size) for c in size_claims(size, by_size[size], scale)]
    return claims_lib.decide(claims)


def _base(claim: dict) -> str:
    """A claim's text without its size prefix."""
    return claim["claim"].split(": ", 1)[1] if claim["claim"].startswith("MNIST, total latent size") else claim["claim"]


def dependence(claims: list[dict]) -> str:
    """One sentence: does any verdict depend on the latent size?"""
    measured = {}
    for c in claims:
        if c["verdict"] in ("holds", "does not hold", "inconclusive"):
            measured.setdefault(_base(c), {})[c["size"]] = c["verdict"]
    sizes = sorted({c["size"] for c in claims})
    complete = [text for text, verdicts in measured.items() if len(verdicts) == len(sizes)]
    differing = [f"{text} ({', '.join(f'{v} at {s}' for s, v in sorted(verdicts.items()))})"
                 for text, verdicts in measured.items() if len(set(verdicts.values())) > 1]
    if differing:
        return ("The verdict depends on the latent size for " + "; ".join(differing) + ".")
    if not complete:
        return ("Whether a verdict depends on the latent size cannot be said yet: no claim is decided at every "
                f"size ({', '.join(map(str, sizes))}).")
    partial = len(complete) < len(measured) or len(measured) < len(PAIRS) + 1
    return ("No verdict depends on the latent size: each claim decided at every size "
            f"({', '.join(map(str, sizes))}) has the same verdict at each"
            + (" (the others are not decided at every size yet)." if partial else "."))


def _fmt_cell(values) -> str:
    summary = statistics.seed_summary(values) if values else None
    if summary is None:
        return "not run"
    spread = f" ± {summary['std']:.5f}" if summary["std"] is not None else ""
    return f"{summary['mean']:.5f}{spread} ({len(values)} seed{'s' * (len(values) != 1)})"


def _fmt_verdict(c: dict) -> str:
    if c["verdict"] in ("holds", "does not hold", "inconclusive"):
        effect = c.get("effect")
        unit = " per layer" if c.get("effect_unit") == "per layer" else ""
        ci = c.get("ci")
        ci_text = f" [{ci[0]:+.1%}, {ci[1]:+.1%}]" if ci else ""
        return (f"**{c['verdict']}**: {effect:+.1%}{unit}{ci_text}, p = {c['p']:.2g}, "
                f"Holm p = {c['p_holm']:.2g}")
    return c["verdict"] + (f" ({c['note']})" if c.get("note") and c["verdict"] == "untested" else "")


def save_figure(by_size: dict, path: str, title: str) -> str:
    """MSE against total latent size, one line per Table 1 cell (mean over seeds, band: min to max),
    the paper's MNIST value of each cell marked at the right edge (the paper states no size)."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    from hiabp_tf.experiments import figures  # pylint: disable=import-outside-toplevel

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    sizes = sorted(by_size)
    paper = claims_lib.PAPER_TABLE1["MNIST"]
    for row, score in CELLS:
        points = [(s, by_size[s].get((row, score)) or []) for s in sizes]
        points = [(s, v) for s, v in points if v]
        colour = figures.ROW_COLOURS.get(row)
        style = "--" if score == "mse_E" and row == "iabp" else "-"
        if points:
            xs = [s for s, _ in points]
            ax.plot(xs, [sum(v) / len(v) for _, v in points], style, marker="o", color=colour,
                    label=_label(row, score))
            ax.fill_between(xs, [min(v) for _, v in points], [max(v) for _, v in points], color=colour, alpha=0.15)
        if (row, score) in paper:
            ax.plot([sizes[-1] * 1.15], [paper[(row, score)]], marker="_", markersize=14, color=colour)
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("total latent size (split equally over the layers); ticks at the right: the paper (size not stated)")
    ax.set_ylabel("test MSE")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write(out_dir: str, workdirs: dict, scale: str, command: str | None, pending=()) -> tuple[str, dict]:
    """latent_size.md, .png and .json in `out_dir`. `workdirs`: {size: {row: [workdir of each seed]}} of
    the trained runs; `pending`: the planned runs not trained yet (named on the page). Returns the .md
    path and the JSON data."""
    by_size, details = {}, []
    for size in sorted(workdirs):
        by_size[size] = {}
        for row, score in CELLS:
            runs = workdirs[size].get(row, [])
            by_size[size][(row, score)] = [pages.load_eval(w)[score] for w in runs]
        for row in ROWS:
            details += [pages.run_details(f"{_label(row, 'mse_EL' if row.startswith('hiabp') else 'mse_E')}, total "
                                          f"latent size {size}", w) for w in workdirs[size].get(row, [])]
    claims = decide(by_size, scale)
    sentence = dependence(claims)
    png = save_figure(by_size, os.path.join(out_dir, f"{OUTPUT_NAME}.png"),
                      f"MNIST, {scale} scale: test MSE against the total latent size")
    sizes = sorted(by_size)
    lines = ["# The latent size the paper does not state", "",
             "*For a reader asking whether the MNIST verdicts of Table 1 are a property of its latent size.*", "",
             f"![MSE against total latent size]({os.path.basename(png)})", "",
             "Table 1's MNIST rows at each total latent size, split equally over the layers (L = 4: "
             + ", ".join(f"{s} = {'/'.join(map(str, plan.split_latent(s, 4)))}" for s in sizes)
             + "), with Table 1's seeds, networks, budget, precision and test-time T; the "
             f"{TABLE1_SIZE} column is Table 1's own runs. Test MSE over the whole test split, mean ± std over "
             "the training seeds. The paper states no latent size; its MNIST values are in claims.md.", "",
             "| row | " + " | ".join(f"total {s}" for s in sizes) + " |", "|---|" + "---:|" * len(sizes)]
    for row, score in CELLS:
        lines.append(f"| {_label(row, score)} | "
                     + " | ".join(_fmt_cell(by_size[s][(row, score)]) for s in sizes) + " |")
    lines += ["", "## The paper's MNIST claims at each size", "",
              "Each claim decided as in claims.md: Welch's t-test on the training seeds (`scipy.stats`), the "
              "depth trend by the slope of log MSE on L over every seed; the effect is the relative difference "
              "(A - B) / B with its 95% confidence interval; Holm's correction over the "
              f"{sum(c.get('p') is not None and c['verdict'] not in ('untested',) for c in claims)} tested claims "
              "of every size together. Not significant is inconclusive, not equal.", "",
              "| claim | " + " | ".join(f"total {s}" for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
    by_text = {}
    for c in claims:
        by_text.setdefault(_base(c), {})[c["size"]] = c
    for text, per_size in by_text.items():
        lines.append(f"| {text} | " + " | ".join(_fmt_verdict(per_size[s]) if s in per_size else "—"
                                                  for s in sizes) + " |")
    lines += ["", f"**Does a verdict depend on the latent size?** {sentence}", "",
              f"No size is chosen from these results: Table 1 stays at {TABLE1_SIZE}."]
    if pending:
        lines += ["", f"Not trained yet ({len(pending)} runs): " + ", ".join(f"`{p}`" for p in pending)
                  + f"; `./run.sh latent_size {scale}` trains them (each resumes from its checkpoints)."]
    lines += pages.footer(command, details, ["mnist"])
    md = pages.write(out_dir, f"{OUTPUT_NAME}.md", lines)
    data = {"command": command, "sizes": sizes, "sentence": sentence, "pending": list(pending),
            "cells": [{"size": s, "row": row, "score": score, "seeds": by_size[s][(row, score)]}
                      for s in sizes for row, score in CELLS],
            "claims": [{k: c.get(k) for k in ("claim", "size", "verdict", "test", "effect", "ci", "p", "p_holm",
                                               "family", "note")} for c in claims]}
    pages.write_json(out_dir, f"{OUTPUT_NAME}.json", data)
    return md, data

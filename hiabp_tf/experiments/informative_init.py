"""Figure 1 in numbers: does the encoder's initialisation (IABP) reach, with fewer Langevin steps T in
training, the test MSE for which the initialisation from noise (ABP, non-persistent) needs more?

Knows the workdirs it is given and their scoring; knows nothing of the plan or the records (run.py
hands it the workdirs).

    training T    IABP and ABP trained with the same networks, data and budget at each T of
                  `plan.FIGURE1_TRAIN_STEPS` (T = 15 is Table 1's runs, with its seeds), each scored on
                  the whole test split at its own T ([E+L] for IABP, [L] for ABP): the claim's panel
    test-time T   one model, IABP trained with T = 15 (seed 0), scored at test-time T = 0 .. 60 from
                  the encoder's z_0 ([E+L]) and from z_0 ~ N(0, I) ([L] of the same generator,
                  `metrics.reconstruction_mse(from_noise=True)`, `evaluate_from_noise`): the two
                  curves differ only by where the chain starts

The claim is decided on the training panel (`decide`): the target is ABP's test MSE at its largest
training T; IABP at each smaller training T is compared with it (`compare`: Welch's t-test where both
sides have several seeds; one seed against several: is it another seed of theirs, a prediction
t-test; one seed on each side: no test), the p-values Holm-corrected over those T. It **holds** if
IABP is significantly lower at some smaller T (the page names the smallest), **does not hold** if it
is significantly higher at every smaller T, is **inconclusive** otherwise, and **untested** where no
test can be made. Where the two methods at one training T come within each other's seed spread on one
seed (SPREAD_SIGMAS x the relative seed std of the runs with several seeds), the page names that T:
it needs three seeds (`plan.FIGURE1_SEEDED_STEPS`).
"""

from __future__ import annotations

import json
import os

import numpy as np

from hiabp_tf.checks import errors
from hiabp_tf.data import input_pipeline
from hiabp_tf.evaluation import metrics
from hiabp_tf.evaluation import statistics
from hiabp_tf.runtime import workdir as workdir_lib

IABP, ABP = "IABP", "ABP"
METHOD_LABELS = {IABP: "IABP (encoder initialisation) [E+L]", ABP: "ABP (noise initialisation) [L]"}
SCORES = {IABP: "mse_EL", ABP: "mse_L"}
INIT_LABELS = {"encoder": "IABP model, z_0 from the encoder [E+L]", "noise": "IABP model, z_0 ~ N(0, I) [L]"}
ALPHA = 0.05
TEST = ("IABP at each training T below ABP's largest against ABP there, test MSE over the seeds: Welch's t-test "
        "(scipy.stats.ttest_ind, equal_var=False) where both sides have two seeds or more; one seed against several: "
        "a prediction t-test (is it another seed of theirs: t = (x - mean) / (s sqrt(1 + 1/n)), n - 1 df); one seed "
        "on each side: no test. Two-sided, Holm-corrected over those T, p < 0.05. Holds if IABP is significantly "
        "lower at some smaller T, does not hold if significantly higher at every one, else inconclusive")
# Planning, not a verdict: where one side has one seed, two methods within this many seed stds (the
# relative std of the runs with several seeds, scaled to their MSE) of each other need more seeds.
SPREAD_SIGMAS = 2.0
CLAIM = ("Figure 1: informative initialisation reduces the Langevin steps T that learning needs: IABP reaches, "
         "with a smaller training T, the test MSE ABP reaches at its largest training T")


# ----------------------------------------------------------------------------------- evaluating

def noise_result_path(workdir: str, dataset, langevin_steps: int) -> str:
    """eval_<data>_test_T<steps>_init-noise.json beside `evaluate`'s results."""
    from hiabp_tf.evaluation import scoring as evaluate_lib  # pylint: disable=import-outside-toplevel
    path = evaluate_lib.result_path(workdir, dataset, "test", "none", langevin_steps)
    return path[:-len(".json")] + "_init-noise.json"


def evaluate_from_noise(workdir: str, langevin_steps: int, seed: int = 0, batch_size: int = 500,
                        data_dir=None) -> dict:
    """The test MSE of `workdir`'s model after `langevin_steps` Langevin steps from z_0 ~ N(0, I) on
    every test image ("mse_L"; for ABP the same as its own [L]), seeded as `evaluate` seeds its
    batches; kept as JSON in the workdir and reused while its step and seed are the same."""
    config, _ = workdir_lib.load_config(workdir)
    path = noise_result_path(workdir, config.dataset, langevin_steps)
    model, config, _, step = workdir_lib.restore(workdir)
    if os.path.isfile(path):
        with open(path) as f:
            previous = json.load(f)
        if previous.get("step") == step and previous.get("seed") == seed:
            return previous
    dataset, info = input_pipeline.make_eval_dataset(config.dataset, "test", batch_size=batch_size, data_dir=data_dir)
    scores = metrics.reconstruction_mse(model, dataset, seed=seed, langevin_steps=langevin_steps, from_noise=True)
    if scores["num_examples"] != info.num_examples:
        raise RuntimeError(f"scored {scores['num_examples']} of {info.num_examples} examples")
    result = {"method": config.method, "num_layers": config.num_layers, "trained_on": str(config.dataset),
              "dataset": str(config.dataset), "split": "test", "init": "noise", "num_examples": scores["num_examples"],
              "step": step, "mse_L": scores["mse_L"], "langevin_steps": langevin_steps,
              "step_size": config.step_size, "sigma": config.sigma, "seed": seed, "train_seed": config.seed}
    workdir_lib.write_json_atomic(path, result)
    return result


def training_rows(training: dict) -> list[dict]:
    """{method: {T: [workdirs, one per seed]}} -> one row per (method, training T): the test MSE of
    each seed at its own T, mean and std (ddof 1)."""
    from hiabp_tf.experiments import pages  # pylint: disable=import-outside-toplevel
    rows = []
    for method, by_steps in training.items():
        for steps in sorted(by_steps, key=int):
            workdirs = list(by_steps[steps])
            if not workdirs:
                continue
            results = [pages.load_or_evaluate(w) for w in workdirs]
            for workdir, result in zip(workdirs, results):
                if result["langevin_steps"] != int(steps):
                    raise errors.WorkdirError(f"{workdir} was scored with T = {result['langevin_steps']}, not its "
                                              f"training T = {steps}.")
            summary = statistics.seed_summary([r[SCORES[method]] for r in results])
            rows.append(dict(method=method, label=METHOD_LABELS[method], training_steps=int(steps),
                             mse=summary["mean"], mse_std=summary["std"], mse_seeds=summary["seeds"],
                             train_seeds=[r["train_seed"] for r in results], step=results[0]["step"],
                             dataset=results[0]["dataset"], workdirs=workdirs))
    return rows


def test_time_rows(workdir: str, steps) -> list[dict]:
    """The same IABP model at each test-time T, from the encoder ([E+L], `evaluate`) and from noise."""
    from hiabp_tf.experiments import pages  # pylint: disable=import-outside-toplevel
    rows = []
    for init in ("encoder", "noise"):
        for t in steps:
            mse = (pages.load_or_evaluate(workdir, langevin_steps=t)["mse_EL"] if init == "encoder"
                   else evaluate_from_noise(workdir, t)["mse_L"])
            rows.append({"init": INIT_LABELS[init], "initialisation": init, "langevin_steps": int(t), "mse": mse})
    return rows


# ------------------------------------------------------------------------------------- deciding

def compare(a, b) -> dict:
    """Is the mean of `a` below that of `b` (test MSEs over training seeds)? {"test", "p" (two-sided),
    "difference" = mean(a) - mean(b) with its 95% "ci", "relative" = difference / mean(b)}.

    Two seeds or more on both sides: Welch's t-test (`scipy.stats.ttest_ind(equal_var=False)`). One
    seed on one side: is it another seed of the other side? t = (x - mean) / (s sqrt(1 + 1/n)) with
    n - 1 degrees of freedom (the one-seed side is taken to have the other's seed spread). One seed
    on both sides: no test (p None)."""
    from scipy import stats  # pylint: disable=import-outside-toplevel
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    difference = float(a.mean() - b.mean())
    out = dict(difference=difference, relative=difference / float(b.mean()), p=None, ci=None)
    if len(a) >= 2 and len(b) >= 2:
        if np.ptp(a) == 0 and np.ptp(b) == 0:
            return dict(out, test="Welch's t-test (no spread: the means decide)", p=0.0 if difference else 1.0,
                        ci=[difference, difference])
        result = stats.ttest_ind(a, b, equal_var=False)
        low, high = result.confidence_interval(0.95)
        return dict(out, test="Welch's t-test", p=float(result.pvalue), ci=[float(low), float(high)])
    if len(a) == 1 and len(b) == 1:
        return dict(out, test="one seed on each side: no test")
    single, several = (a, b) if len(a) == 1 else (b, a)
    scale = float(several.std(ddof=1) * np.sqrt(1 + 1 / len(several)))
    df = len(several) - 1
    if scale == 0:
        return dict(out, test="one seed against seeds without spread: the means decide",
                    p=0.0 if difference else 1.0, ci=[difference, difference])
    p = float(2 * stats.t.sf(abs(difference) / scale, df))
    half = float(stats.t.ppf(0.975, df) * scale)
    return dict(out, test=f"one seed against {len(several)}: prediction t-test, {df} df", p=p,
                ci=[difference - half, difference + half])


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, index in enumerate(sorted(range(len(pvalues)), key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def verdict_of(c: dict, p: float | None = None) -> str:
    """holds (IABP lower), does not hold (higher), inconclusive (p >= ALPHA), untested (no test)."""
    p = c["p"] if p is None else p
    if p is None:
        return "untested"
    if p >= ALPHA:
        return "inconclusive"
    return "holds" if c["difference"] < 0 else "does not hold"


def relative_seed_std(rows: list[dict]) -> tuple[float | None, list[str]]:
    """The root mean square of std / mean over the rows with several seeds, and which rows those are."""
    seeded = [r for r in rows if r.get("mse_std") is not None and r["mse"]]
    if not seeded:
        return None, []
    return (float(np.sqrt(np.mean([(r["mse_std"] / r["mse"]) ** 2 for r in seeded]))),
            [f"{r['method']} T = {r['training_steps']}" for r in seeded])


def decide(rows: list[dict]) -> dict:
    """The verdict on the claim from `training_rows` (see the module docstring)."""
    by = {(r["method"], r["training_steps"]): r for r in rows}
    iabp_steps = sorted(t for m, t in by if m == IABP)
    abp_steps = sorted(t for m, t in by if m == ABP)
    relative, seeded = relative_seed_std(rows)
    out = dict(claim=CLAIM, relative_seed_std=relative, seed_spread_from=seeded, same_t=[], reached=[],
               needs_seeds=[], comparisons=[], target=None)
    for t in sorted(set(iabp_steps) & set(abp_steps)):
        a, b = by[(IABP, t)], by[(ABP, t)]
        c = compare(a["mse_seeds"], b["mse_seeds"])
        out["same_t"].append(dict(training_steps=t, verdict=verdict_of(c), **c))
        close = relative is not None and abs(c["difference"]) < SPREAD_SIGMAS * relative * (a["mse"] + b["mse"]) / 2
        if min(len(a["mse_seeds"]), len(b["mse_seeds"])) < 2 and (close or relative is None):
            out["needs_seeds"].append(t)
    for abp_t in abp_steps:  # by the means: the smallest IABP T whose MSE is at most ABP's at abp_t
        reach = next((t for t in iabp_steps if by[(IABP, t)]["mse"] <= by[(ABP, abp_t)]["mse"]), None)
        out["reached"].append(dict(abp_steps=abp_t, iabp_steps=reach))
    if not abp_steps or not iabp_steps:
        return dict(out, verdict="untested",
                    outcome="not measured yet: " + ("ABP" if not abp_steps else "IABP") + " has no trained run")
    target_t = abp_steps[-1]
    target = by[(ABP, target_t)]
    smaller = [t for t in iabp_steps if t < target_t]
    out["target"] = dict(abp_steps=target_t, mse=target["mse"], mse_std=target["mse_std"])
    if not smaller:
        return dict(out, verdict="untested",
                    outcome=f"no IABP run with a training T below ABP's {target_t} is trained yet")
    comparisons = [dict(iabp_steps=t, **compare(by[(IABP, t)]["mse_seeds"], target["mse_seeds"])) for t in smaller]
    tested = [c for c in comparisons if c["p"] is not None]
    for c, p in zip(tested, holm([c["p"] for c in tested])):
        c["p_holm"] = p
    for c in comparisons:
        c["verdict"] = verdict_of(c, c.get("p_holm"))
    out["comparisons"] = comparisons
    lower = [c for c in comparisons if c["verdict"] == "holds"]
    if lower:
        c = lower[0]
        return dict(out, verdict="holds", outcome=(
            f"IABP trained with T = {c['iabp_steps']} has a lower test MSE ({by[(IABP, c['iabp_steps'])]['mse']:.5f}, "
            f"{c['relative']:+.1%}) than ABP trained with T = {target_t} ({target['mse']:.5f}): "
            f"{target_t / c['iabp_steps']:g}x fewer Langevin steps per update reach it"))
    if comparisons and all(c["verdict"] == "does not hold" for c in comparisons):
        return dict(out, verdict="does not hold", outcome=(
            f"at every training T below {target_t} ({', '.join(map(str, smaller))}) IABP's test MSE is significantly "
            f"above ABP's {target['mse']:.5f} at T = {target_t}"))
    if not tested:
        return dict(out, verdict="untested", outcome=f"no test: one seed on each side at T = {target_t}")
    return dict(out, verdict="inconclusive", outcome=(
        f"IABP's test MSE at T = {', '.join(map(str, smaller))} is not significantly below ABP's "
        f"{target['mse']:.5f} at T = {target_t}"))


# -------------------------------------------------------------------------------------- writing

def _fmt(value) -> str:
    return "—" if value is None else f"{value:.5f}"


def _cell(row: dict | None) -> str:
    if row is None:
        return "not trained yet"
    if row["mse_std"] is None:
        return f"{row['mse']:.5f} (1 seed)"
    return f"{row['mse']:.5f} ± {row['mse_std']:.5f} ({len(row['mse_seeds'])} seeds)"


def _test_text(c: dict) -> str:
    text = f"{c['difference']:+.5f} ({c['relative']:+.1%})"
    if c.get("ci"):
        text += f", 95% CI [{c['ci'][0]:+.5f}, {c['ci'][1]:+.5f}]"
    text += f"; {c['test']}"
    if c.get("p") is not None:
        text += f", p = {c['p']:.3g}" + (f" (Holm: {c['p_holm']:.3g})" if c.get("p_holm") is not None else "")
    return f"{c['verdict']}: {text}"


def write(out_dir: str, training: dict, same_model: str | None, steps, command: str | None,
          pending=(), planned_steps=()) -> str:
    """figure1.md, figure1.png and figure1.json in `out_dir`.

    `training`: {IABP: {T: [workdirs]}, ABP: {...}} of the trained runs; `same_model`: the IABP
    workdir scored at every test-time T of `steps` from the encoder and from noise (None: no such
    panel); `pending`: the planned runs not trained yet (named on the page); `planned_steps`: every
    training T of the plan (the table shows those not trained yet)."""
    from hiabp_tf.experiments import figures  # pylint: disable=import-outside-toplevel
    from hiabp_tf.experiments import pages  # pylint: disable=import-outside-toplevel

    train = training_rows(training)
    verdict = decide(train)
    test = test_time_rows(same_model, steps) if same_model else []
    png = os.path.join(out_dir, "figure1.png")
    if test:
        figures.save_langevin_curve(test, png, "the same IABP model (T = 15): test MSE vs test-time T",
                                    training=[dict(r, method=r["label"]) for r in train],
                                    training_title="test MSE vs training T (IABP and ABP, equal budgets)")
    by = {(r["method"], r["training_steps"]): r for r in train}
    all_steps = sorted({int(t) for t in planned_steps} | {t for _, t in by})
    lines = ["# Figure 1: informative initialisation", ""] + (
        [f"![figure 1]({os.path.basename(png)})", ""] if test else []) + [
             "## Training T", "",
             "IABP and ABP (non-persistent) trained with the same networks, data, optimiser and number of updates "
             "at each Langevin T, each scored over the whole test split at its own T. The claim is decided here.", "",
             f"| training T | {METHOD_LABELS[IABP]} | {METHOD_LABELS[ABP]} |", "|---|---:|---:|"]
    for t in all_steps:
        lines.append(f"| {t} | {_cell(by.get((IABP, t)))} | {_cell(by.get((ABP, t)))} |")
    lines += ["", f"### The claim: **{verdict['verdict']}**", "", f"{CLAIM}.", "", f"Ours: {verdict['outcome']}."]
    for c in verdict.get("comparisons", []):
        lines.append(f"- IABP at T = {c['iabp_steps']} against ABP at T = {verdict['target']['abp_steps']}: "
                     f"{_test_text(c)}")
    if verdict["reached"]:
        lines += ["", "The smallest training T at which IABP's mean test MSE is at most ABP's, for each of ABP's T "
                  "(by the means; described, not tested): " + "; ".join(
                      f"ABP at T = {r['abp_steps']}: "
                      + (f"IABP at T = {r['iabp_steps']}" if r["iabp_steps"] is not None else "IABP at no T trained")
                      for r in verdict["reached"]) + "."]
    if verdict["same_t"]:
        lines += ["", "At the same training T, IABP against ABP:", ""]
        lines += [f"- T = {c['training_steps']}: {_test_text(c)}" for c in verdict["same_t"]]
    if verdict["needs_seeds"]:
        lines += ["", f"At T = {', '.join(map(str, verdict['needs_seeds']))} the two methods come within each "
                  "other's seed spread on one seed: that T needs three seeds (`plan.FIGURE1_SEEDED_STEPS`)."]
    spread = (f"{verdict['relative_seed_std']:.1%}, the root mean square of std / mean over "
              f"{', '.join(verdict['seed_spread_from'])}" if verdict["relative_seed_std"] is not None else
              "none: no run has several seeds")
    lines += ["", f"How it is decided: {TEST}. Seeds still to train are named where the two methods at one T are "
              f"within {SPREAD_SIGMAS:g} relative seed stds of each other with one seed (relative seed std {spread})."]
    if pending:
        lines += ["", "Not trained yet (`./run.sh figure1 SCALE` trains them): " + ", ".join(f"`{p}`" for p in pending)
                  + "."]
    if test:
        lines += ["", "## Test-time T, one model", "",
                  "The IABP generator trained with T = 15 (seed 0), scored at each test-time T from the encoder's "
                  "z_0 and from z_0 ~ N(0, I): the same networks, so the two columns differ only by the "
                  "initialisation.", "", f"| test-time T | {INIT_LABELS['encoder']} | {INIT_LABELS['noise']} |",
                  "|---|---:|---:|"]
        for t in steps:
            cells = [next(r["mse"] for r in test if r["initialisation"] == i and r["langevin_steps"] == t)
                     for i in ("encoder", "noise")]
            lines.append(f"| {t} | {_fmt(cells[0])} | {_fmt(cells[1])} |")
    details = [pages.run_details(f"{METHOD_LABELS[r['method']]}, T = {r['training_steps']}"
                                   + (f", seed run {i + 1}" if i else ""), w)
               for r in train for i, w in enumerate(r["workdirs"])]
    if same_model:
        details.append(f"- **test-time panel**: `{same_model}`; from noise: "
                       "`metrics.reconstruction_mse(from_noise=True)` (Langevin from z_0 ~ N(0, I), the encoder "
                       "unused), evaluation seed 0, batch b seeded by (0, b) as `evaluate`.")
    datasets = {r["dataset"] for r in train} or (
        {workdir_lib.load_config(same_model)[0].dataset} if same_model else set())
    lines += pages.footer(command, details, datasets)
    workdir_lib.write_json_atomic(os.path.join(out_dir, "figure1.json"), {
        "command": command, "rows": test, "training": train, "verdict": verdict, "pending": list(pending),
        "test": TEST})
    return pages.write(out_dir, "figure1.md", lines)

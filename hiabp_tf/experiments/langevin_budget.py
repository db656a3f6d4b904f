r"""Quality per unit of compute: test MSE against Langevin gradient evaluations and training wall
time, for IABP (encoder initialisation) and ABP (initialisation from N(0, I) noise).

Knows the plan's Figure 1 flag files (its base runs), training and scoring; knows nothing of the
records or of run.py's reports.

    python -m hiabp_tf.experiments.langevin_budget --scale=quick --out=results/quick

For every T in --langevin_steps (default 1, 2, 5, 10, 15, 30, 60) it trains one IABP run (method
hiabp, L = 1) and one ABP run (method abp) with the base flagfile's settings and --langevin_steps=T,
in runs/<scale>/<flagfile name>_t<T>; times training; scores the whole test split with T test-time
Langevin steps ([E+L] for IABP, [L] for ABP) and writes to --out:

    langevin_budget.md    provenance, the table, and how many fewer Langevin steps (and how much
                          less training time) IABP needs to reach ABP's best test MSE
    langevin_budget.png   MSE vs gradient evaluations per iteration; MSE vs training wall time
    langevin_budget.json  the rows of the table

Base flagfiles: quick scale flags/mnist5k_iabp.flags and flags/mnist5k_abp.flags (offline
mnist_5k, 300 steps), paper scale flags/mnist_hiabp_l1.flags and flags/mnist_abp.flags (MNIST from
tensorflow-datasets, 3e5 steps).

Rerunning resumes every run from its checkpoint; a run already at its steps is only re-evaluated.
Training wall time is recorded after every training call in the workdir's budget_timing.json (the
update loop of `hiabp_tf.training.loop.train`: the first step's tracing and the checkpoints included, the data and
model setup and the flagfile's in-training test evaluations excluded), so a rerun that trains no new
step keeps the recorded time.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import sys
import time

from absl import app
from absl import flags
from absl import logging

from hiabp_tf import config as config_lib
from hiabp_tf.checks import cli
from hiabp_tf.checks import errors
from hiabp_tf.core import hardware
from hiabp_tf.evaluation import metrics
from hiabp_tf.evaluation import scoring as evaluate_lib
from hiabp_tf.experiments import plan
from hiabp_tf.runtime import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # hiabp_tf/<group>/x.py
DEFAULT_STEPS = (1, 2, 5, 10, 15, 30, 60)
# The two initialisations compared, and the score key and label of each one's test MSE.
IABP, ABP = "IABP", "ABP"
SCORES = {IABP: ("mse_EL", "[E+L]"), ABP: ("mse_L", "[L]")}
# The runs compared: Figure 1's encoder-initialised IABP and noise-initialised ABP (plan.py).
BASE_FLAGFILES = {scale: dict(zip((IABP, ABP), (f"flags/{run.flagfile}.flags" for run in plan.runs("figure1", scale))))
                  for scale in ("quick", "paper")}
TIMING_FILE = "budget_timing.json"
OUTPUT_NAME = "langevin_budget"


def define_flags():
    """Defines the command-line flags (only when run as a command, so modules import cleanly)."""
    flags.DEFINE_enum("scale", "quick", list(BASE_FLAGFILES), "Which base flagfiles: quick (offline mnist_5k, "
                      "300 steps) or paper (MNIST from tensorflow-datasets, 3e5 steps).")
    flags.DEFINE_string("out", None, "Folder for langevin_budget.md/.png/.json (default results/<scale>).")
    flags.DEFINE_string("runs_dir", None, "Folder of the training runs (default runs/<scale>).")
    flags.DEFINE_list("langevin_steps", [str(t) for t in DEFAULT_STEPS],
                      "The values of T: one IABP and one ABP run each, trained and tested with T steps.")
    flags.DEFINE_string("iabp_flagfile", None, "Base flagfile of IABP (default: the scale's).")
    flags.DEFINE_string("abp_flagfile", None, "Base flagfile of ABP (default: the scale's).")
    flags.DEFINE_integer("num_steps", None, "Override the flagfiles' --num_steps (e.g. a tiny check).")
    flags.DEFINE_integer("width", None, "Override the flagfiles' --width (e.g. a tiny check).")
    flags.DEFINE_integer("batch_size", None, "Override the flagfiles' --batch_size (e.g. a tiny check).")
    flags.DEFINE_string("data_dir", None, "tensorflow-datasets data_dir (paper scale).")
    flags.DEFINE_string("command", None, "The command to record in the table (default: this one).")


FLAGS = flags.FLAGS


# --------------------------------------------------------------------------- the comparison


def _times(ratio: float) -> str:
    return f"{round(ratio, 2):g}"


def steps_statement(iabp_mse: dict, abp_mse: dict) -> str:
    """How many Langevin steps IABP needs to reach ABP's best test MSE.

    ABP's best is its lowest test MSE over all T (the smallest such T on a tie); IABP reaches it at
    the smallest T whose test MSE is <= that value. `iabp_mse`, `abp_mse`: {T: test MSE}."""
    if not iabp_mse or not abp_mse:
        raise ValueError("steps_statement needs at least one T for each method.")
    best_mse, best_t = min((float(m), int(t)) for t, m in abp_mse.items())
    reached = sorted(int(t) for t, m in iabp_mse.items() if float(m) <= best_mse)
    target = f"ABP's best test MSE ({best_mse:.5f} at T={best_t})"
    if not reached:
        iabp_best, iabp_t = min((float(m), int(t)) for t, m in iabp_mse.items())
        tried = ", ".join(str(t) for t in sorted(int(t) for t in iabp_mse))
        return (f"IABP never reaches {target}: at no T tried ({tried}) is its test MSE <= {best_mse:.5f}; "
                f"IABP's best is {iabp_best:.5f} at T={iabp_t}.")
    t = reached[0]
    head = f"IABP reaches {target} with T={t} (test MSE {float(iabp_mse[t]):.5f}), i.e. "
    if t < best_t:
        return head + f"{_times(best_t / t)} x fewer Langevin steps."
    if t == best_t:
        return head + "with the same number of Langevin steps."
    return head + f"{_times(t / best_t)} x more Langevin steps (IABP needs more steps than ABP here)."


def wall_time_statement(iabp_mse: dict, abp_mse: dict, iabp_seconds: dict, abp_seconds: dict) -> str:
    """The same comparison in training wall time: the fastest IABP run whose test MSE is <= ABP's
    best against the run where ABP has its best. `*_seconds`: {T: seconds or None if unknown}."""
    best_mse, best_t = min((float(m), int(t)) for t, m in abp_mse.items())
    reached = [int(t) for t, m in iabp_mse.items() if float(m) <= best_mse]
    if not reached:
        return "In training wall time: no comparison, since IABP never reaches ABP's best test MSE."
    abp_time = abp_seconds.get(best_t)
    timed = sorted((float(iabp_seconds[t]), t) for t in reached if iabp_seconds.get(t) is not None)
    if abp_time is None or not timed:
        missing = f"ABP at T={best_t}" if abp_time is None else "IABP's runs that reach it"
        return f"In training wall time: no comparison, since the training time of {missing} was not recorded."
    seconds, t = timed[0]
    head = (f"In training wall time: IABP's fastest run that reaches it (T={t}) trained in {seconds:.1f} s, "
            f"ABP's best run (T={best_t}) in {float(abp_time):.1f} s, i.e. ")
    if seconds <= abp_time:
        return head + f"{_times(float(abp_time) / max(seconds, 1e-9))} x less training time."
    return head + f"{_times(seconds / max(float(abp_time), 1e-9))} x more training time."


def interpolated_steps(mse_by_t: dict, target: float):
    """The T at which a method's test MSE first falls to `target`, interpolating linearly in log T
    between the grid points; None if it never does. (The grid's smallest T if already there.)"""
    points = sorted((int(t), float(m)) for t, m in mse_by_t.items())
    if points[0][1] <= target:
        return float(points[0][0])
    for (t0, m0), (t1, m1) in zip(points, points[1:]):
        if m0 > target >= m1:
            fraction = (m0 - target) / (m0 - m1)
            return float(math.exp(math.log(t0) + fraction * (math.log(t1) - math.log(t0))))
    return None


def interpolated_statement(iabp_mse: dict, abp_mse: dict) -> str:
    """Between the grid points (linear in log T): the T at which IABP reaches ABP's best, and for
    every IABP run the T at which ABP would reach the same MSE."""
    best_mse, best_t = min((float(m), int(t)) for t, m in abp_mse.items())
    parts = []
    t_iabp = interpolated_steps(iabp_mse, best_mse)
    if t_iabp is not None:
        parts.append(f"Interpolating linearly in log T between the grid points, IABP reaches ABP's best "
                     f"test MSE at T ~ {t_iabp:.0f}, {_times(best_t / t_iabp)} x fewer steps than ABP's T={best_t}.")
    matches = []
    for t, m in sorted((int(t), float(m)) for t, m in iabp_mse.items()):
        t_abp = interpolated_steps(abp_mse, m)
        matches.append(f"T={t}: ABP needs " + (f"T ~ {t_abp:.0f}" if t_abp is not None
                                                else f"more than {max(int(k) for k in abp_mse)}"))
    parts.append("For IABP's test MSE at each T, the ABP steps that give the same MSE: " + "; ".join(matches) + ".")
    return " ".join(parts)


def budget_statement(iabp_mse: dict, abp_mse: dict, iabp_seconds=None, abp_seconds=None) -> str:
    """`steps_statement`, `interpolated_statement`, then (if training times are given)
    `wall_time_statement`."""
    text = steps_statement(iabp_mse, abp_mse) + " " + interpolated_statement(iabp_mse, abp_mse)
    if iabp_seconds is not None and abp_seconds is not None:
        text += " " + wall_time_statement(iabp_mse, abp_mse, iabp_seconds, abp_seconds)
    return text


# --------------------------------------------------------------------------- runs


def load_timing(workdir: str) -> dict:
    """The training-time record of a workdir: {"calls": [{steps, train_seconds, ...}, ...]}."""
    path = os.path.join(workdir, TIMING_FILE)
    if not os.path.isfile(path):
        return {"calls": []}
    with open(path) as f:
        return json.load(f)


def timing_summary(record: dict, final_step: int) -> dict:
    """Training wall time of a run at `final_step` from its record: {"train_seconds", "timed_steps",
    "estimated"}. If some steps were trained without a record (a call killed before it finished),
    the time is extrapolated from the timed steps and marked estimated; None if nothing was timed."""
    steps = sum(int(c["steps"]) for c in record["calls"])
    seconds = sum(float(c["train_seconds"]) for c in record["calls"])
    if steps <= 0:
        return {"train_seconds": None, "timed_steps": 0, "estimated": False}
    if steps >= final_step:
        return {"train_seconds": seconds, "timed_steps": steps, "estimated": False}
    return {"train_seconds": seconds * final_step / steps, "timed_steps": steps, "estimated": True}


def train_timed(config: config_lib.RunConfig, workdir: str, train_kwargs: dict, data_dir=None) -> dict:
    """Trains (or resumes) `config` in `workdir`, appending the call's timing to its record;
    returns this call's timing. Refuses a workdir trained with another T."""
    if os.path.isfile(os.path.join(workdir, workdir_lib.CONFIG_FILE)):
        previous = workdir_lib.load_run(workdir)[0]
        if previous.langevin_steps != config.langevin_steps:
            raise errors.WorkdirError(
                f"{workdir} holds a run trained with T = {previous.langevin_steps}, not {config.langevin_steps}; "
                "use another --runs_dir, or remove that workdir.")
    from hiabp_tf.training import loop as train  # imported here: it pulls in keras

    timing = {}
    train.train(config, workdir, data_dir=data_dir, timing=timing, **train_kwargs)
    if timing["steps"] > 0:
        record = load_timing(workdir)
        record["calls"].append({**timing, "date": datetime.datetime.now().isoformat(timespec="seconds"),
                                "cpu_cores": hardware.cpu_cores(), "host": platform.node()})
        workdir_lib.write_json_atomic(os.path.join(workdir, TIMING_FILE), record)
    return timing


def base_configs(flagfile_paths: dict, overrides: dict) -> dict:
    """{label: (flagfile, RunConfig, train kwargs)}; checks IABP is hiabp with L = 1 and ABP is abp."""
    out = {}
    for label, path in flagfile_paths.items():
        config, kwargs = config_lib.load_flagfile(path, **overrides)
        expected = ("hiabp", 1) if label == IABP else ("abp", config.num_layers)
        if (config.method, config.num_layers) != expected:
            raise errors.ConfigError(
                f"{path} trains --method={config.method} with L={config.num_layers}; the {label} base "
                f"flagfile must train --method={expected[0]}" + (" with --num_layers=1." if label == IABP else "."))
        out[label] = (path, config, kwargs)
    return out


def run_point(label: str, flagfile: str, config: config_lib.RunConfig, train_kwargs: dict, t: int,
              runs_dir: str, data_dir=None) -> dict:
    """Trains (or resumes) and evaluates one (method, T) run; returns its row of the table."""
    name = f"{os.path.splitext(os.path.basename(flagfile))[0]}_t{t}"
    workdir = os.path.join(runs_dir, name)
    config = dataclasses.replace(config, langevin_steps=t, eval_langevin_steps=t)
    logging.info("%s, T = %d: training in %s", label, t, workdir)
    call = train_timed(config, workdir, train_kwargs, data_dir)
    result = evaluate_lib.evaluate(workdir, data_dir=data_dir)
    if result["langevin_steps"] != t:
        raise RuntimeError(f"{workdir} was evaluated with T = {result['langevin_steps']}, not {t}")
    key, score = SCORES[label]
    step = int(result["step"])
    timing = timing_summary(load_timing(workdir), step)
    row = {
        "method": label, "score": score, "langevin_steps": t, "steps": step,
        "grad_evals_per_iteration": t, "grad_evals_training": step * t, "grad_evals_per_test_image": t,
        **timing, "new_steps_this_call": call["steps"], "mse": result[key],
        "num_examples": result["num_examples"], "eval_seconds": result["seconds"],
        "dataset": config.dataset, "batch_size": config.batch_size, "seed": config.seed,
        "eval_seed": result["seed"], "flagfile": flagfile, "workdir": workdir,
    }
    logging.info("%s, T = %d: test MSE %s %.5f, training %s s", label, t, score, row["mse"],
                 "?" if row["train_seconds"] is None else f"{row['train_seconds']:.1f}")
    return row


# --------------------------------------------------------------------------- the report


def _seconds(row) -> str:
    if row["train_seconds"] is None:
        return "not recorded"
    text = f"{row['train_seconds']:.1f}"
    return f"≈ {text} (extrapolated from {row['timed_steps']} timed steps)" if row["estimated"] else text


def write_report(out_dir: str, rows: list[dict], command: str, scale: str, elapsed: float | None = None,
                 data_dir=None) -> tuple[str, str]:
    """langevin_budget.md, .png and .json in `out_dir` from the rows of `run_point`."""
    from hiabp_tf.experiments import figures  # matplotlib only where a figure is drawn
    from hiabp_tf.experiments import pages

    os.makedirs(out_dir, exist_ok=True)
    rows = sorted(rows, key=lambda r: ([IABP, ABP].index(r["method"]), r["langevin_steps"]))
    by_method = {label: [r for r in rows if r["method"] == label] for label in (IABP, ABP)}
    mse = {label: {r["langevin_steps"]: r["mse"] for r in rs} for label, rs in by_method.items()}
    seconds = {label: {r["langevin_steps"]: r["train_seconds"] for r in rs} for label, rs in by_method.items()}
    png = figures.save_budget_curves(
        [{"method": f"{r['method']} {r['score']}", "langevin_steps": r["langevin_steps"],
          "train_seconds": r["train_seconds"], "mse": r["mse"]} for r in rows],
        os.path.join(out_dir, f"{OUTPUT_NAME}.png"),
        f"Test MSE per unit of compute ({scale} scale): IABP (encoder init.) vs ABP (noise init.), train T = test T")
    statement = (budget_statement(mse[IABP], mse[ABP], seconds[IABP], seconds[ABP])
                 if mse[IABP] and mse[ABP] else "Only one method was run: no comparison.")

    datasets = sorted({r["dataset"] for r in rows})
    flagfile_text = "; ".join(f"{label}: `{rs[0]['flagfile']}`" for label, rs in by_method.items() if rs)
    steps = sorted({r["steps"] for r in rows})
    batch = sorted({r["batch_size"] for r in rows})
    import tensorflow as tf

    lines = [
        f"# Quality per unit of compute: test MSE vs Langevin steps ({scale} scale)", "",
        f"- Command: `{command}`" + (f" ({elapsed:.0f} s wall time; runs already trained are only "
                                     "re-evaluated)" if elapsed is not None else ""),
        f"- Data: {', '.join(datasets)}; training on the train split, test MSE over the whole test split "
        f"({', '.join(str(n) for n in sorted({r['num_examples'] for r in rows}))} images).",
        f"- Steps: {', '.join(str(s) for s in steps)} updates of batch {', '.join(str(b) for b in batch)} per run; "
        f"base flagfiles {flagfile_text}, each with `--langevin_steps=T` and test-time T = training T.",
        f"- Seeds: training seed {', '.join(str(s) for s in sorted({r['seed'] for r in rows}))} (weights, data "
        f"order, Langevin noise), evaluation seed {', '.join(str(s) for s in sorted({r['eval_seed'] for r in rows}))}.",
        f"- Machine: {hardware.describe()}, no GPU; TensorFlow {tf.__version__}, Python "
        f"{platform.python_version()}; written {datetime.date.today().isoformat()}. Wall times are of one run "
        "each on a machine that may be shared with other work: indicative, not benchmarks.",
        "", f"![langevin budget]({os.path.basename(png)})", "",
        "| method | T | Langevin grad. evals / iteration | grad. evals in training (total) | "
        "grad. evals / test image | training wall time (s) | test MSE ↓ |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['method']} {r['score']} | {r['langevin_steps']} | {r['grad_evals_per_iteration']} | "
                     f"{r['grad_evals_training']:,} | {r['grad_evals_per_test_image']} | {_seconds(r)} | "
                     f"{r['mse']:.5f} |")
    lines += [
        "", f"**{statement}**", "",
        "Definitions. ABP's best test MSE is its lowest over every T above; IABP reaches it at the smallest T "
        "whose test MSE is <= that value, and the step ratio is ABP's T over IABP's. In wall time, the fastest "
        "IABP run that reaches it is compared with the ABP run at its best T.",
        "",
        "One Langevin gradient evaluation is one gradient dE/dz of the batch's energy (one generator forward "
        "and backward pass over the batch). Each training iteration runs T Langevin steps on its batch, so T "
        "evaluations per iteration and steps x T in training; each test image gets T. Not counted, but in the "
        "wall time: IABP's encoder pass and its update, and both methods' generator update. Training wall time: "
        "the update loop of `train.train` (the first step's graph tracing and the checkpoints included; data "
        "and model setup and the in-training test evaluations excluded), summed over the calls that trained "
        "the run (`budget_timing.json` in its workdir).",
        "",
    ]
    lines += [f"For scale: predicting the mean training image for every test image gives MSE "
              f"{metrics.mean_image_mse(d, data_dir):.5f} on {d}." for d in datasets]
    lines += ["", pages.PROTOCOL, "", "## Runs", ""]
    lines += [pages.run_details(f"{r['method']}, T = {r['langevin_steps']}", r["workdir"]) for r in rows]
    md = os.path.join(out_dir, f"{OUTPUT_NAME}.md")
    pages.write(out_dir, f"{OUTPUT_NAME}.md", lines)
    workdir_lib.write_json_atomic(os.path.join(out_dir, f"{OUTPUT_NAME}.json"),
                                 {"command": command, "statement": statement, "rows": rows})
    return md, png


def run(scale: str = "quick", out_dir=None, runs_dir=None, langevin_steps=DEFAULT_STEPS, flagfile_paths=None,
        overrides=None, data_dir=None, command=None) -> str:
    """Trains and evaluates every (method, T), then writes the report; returns the .md path."""
    start = time.perf_counter()
    if scale not in BASE_FLAGFILES:
        raise errors.ConfigError(f"--scale={scale} is unknown; choose one of {', '.join(BASE_FLAGFILES)}.")
    steps = sorted({int(t) for t in langevin_steps})
    if not steps or steps[0] < 1:
        raise errors.ConfigError(f"--langevin_steps must be positive integers, got {list(langevin_steps)}.")
    out_dir = out_dir or os.path.join("results", scale)
    runs_dir = runs_dir or os.path.join("runs", scale)
    paths = {label: os.path.join(REPO, p) for label, p in BASE_FLAGFILES[scale].items()}
    paths.update(flagfile_paths or {})
    bases = base_configs(paths, {k: v for k, v in (overrides or {}).items() if v is not None})
    rows = []
    for t in steps:
        for label, (path, config, kwargs) in bases.items():
            shown = os.path.relpath(path, REPO) if os.path.abspath(path).startswith(REPO + os.sep) else path
            rows.append(run_point(label, shown, config, kwargs, t, runs_dir, data_dir))
    command = command or "python -m hiabp_tf.experiments.langevin_budget " + " ".join(sys.argv[1:])
    md, _ = write_report(out_dir, rows, command, scale, time.perf_counter() - start, data_dir)
    return md


def main():
    try:
        steps = [int(t) for t in FLAGS.langevin_steps]
    except ValueError:
        raise app.UsageError(f"--langevin_steps={','.join(FLAGS.langevin_steps)} must be integers.")
    flagfile_paths = {label: p for label, p in ((IABP, FLAGS.iabp_flagfile), (ABP, FLAGS.abp_flagfile)) if p}
    md = run(FLAGS.scale, FLAGS.out, FLAGS.runs_dir, steps, flagfile_paths,
             {"num_steps": FLAGS.num_steps, "width": FLAGS.width, "batch_size": FLAGS.batch_size},
             FLAGS.data_dir, FLAGS.command)
    logging.info("Wrote %s", md)
    with open(md) as f:
        print(f.read())


if __name__ == "__main__":
    cli.run(main, define_flags, workdir_flag=None)

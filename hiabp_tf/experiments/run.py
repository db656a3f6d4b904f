"""Trains, evaluates and reports the paper's experiments as `plan` lists them (what `./run.sh` runs).

Knows the plan (which runs, by their fields), the records (what is finished) and the processes that
train and evaluate; knows nothing of how a page is written (report) or what a run's name is made of.

    python -m hiabp_tf.experiments.run EXPERIMENT [SCALE]     e.g. table1 cpu, all quick, claims cpu

Each run is `python -m hiabp_tf.train` (resumed if its workdir has checkpoints) and then
`python -m hiabp_tf.evaluate`, in their own processes, logging to runs/<scale>/<name>.log. Trainings
run `jobs` at a time, each op on (cores / jobs) threads: on 2 cores two one-thread trainings finish
a table sooner than one two-thread training after another (results/performance.md); one at a time
at paper scale (a GPU each). HIABP_JOBS and TF_NUM_INTRAOP_THREADS override. An evaluation already
done on the same checkpoint with the same flags is not repeated (runs/<scale>/<name>/evaluate.out).
At the cpu and paper scales a run trained and evaluated is recorded in results/<scale>/runs/<name>
(`records`): it is never retrained, and reports read the record where runs/ lacks the run.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import time

from hiabp_tf.checks import errors
from hiabp_tf.core import hardware
from hiabp_tf.evaluation import statistics
from hiabp_tf.experiments import plan
from hiabp_tf.experiments import records
from hiabp_tf.runtime import sittings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # hiabp_tf/<group>/x.py
COMMANDS = plan.EXPERIMENTS + ("claims", "all")


class RunFailed(RuntimeError):
    """A training or evaluation exited with an error; the message ends with the end of its log."""


def _say(message: str) -> None:
    print(f"[run.sh] {message}", file=sys.stderr, flush=True)


def jobs_for(scale: str) -> int:
    return int(os.environ.get("HIABP_JOBS") or (1 if scale == "paper" else 2))


def flag_args(run: plan.Run, flags_dir: str = "flags") -> list[str]:
    """The flag file arguments of hiabp_tf.train: the run's file, then its scale's (`plan.Run.flag_files`)."""
    return [f"--flagfile={flags_dir}/{path}" for path in run.flag_files]


def _read(path: str) -> str:
    """The text of `path`, or "" if there is none."""
    if not os.path.isfile(path):
        return ""
    with open(path) as f:
        return f.read()


def _tail(log: str, lines: int = 5) -> str:
    with open(log, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def run_dir(scale: str, name: str, runs_root: str = "runs") -> str:
    """A run's workdir: runs_root/SCALE/NAME (its log is beside it, NAME.log)."""
    return os.path.join(runs_root, scale, name)


def train_args(scale: str, run: plan.Run, runs_root: str = "runs", flags_dir: str = "flags") -> list[str]:
    """The arguments of `python -m hiabp_tf.train` that train (or resume) `run` at `scale`."""
    return [*flag_args(run, flags_dir), *run.train_flags,
            f"--workdir={run_dir(scale, run.name, runs_root)}"]


def num_steps(scale: str, run: plan.Run, flags_dir: str = "flags") -> int:
    """The --num_steps `run` trains to at `scale`: its budget, else its flag files'."""
    if run.budget is not None:
        return run.budget
    from hiabp_tf import config as config_lib  # pylint: disable=import-outside-toplevel
    _, kwargs = config_lib.load_flagfile([os.path.join(flags_dir, f) for f in run.flag_files])
    return kwargs["num_steps"]


def trained_in_runs(scale: str, run: plan.Run, runs_root: str = "runs", flags_dir: str = "flags") -> bool:
    """Whether runs_root/SCALE/NAME is trained to its --num_steps (its checkpoint index lists that step)."""
    index = os.path.join(run_dir(scale, run.name, runs_root), "checkpoints", "checkpoint")
    return os.path.isfile(index) and f'"ckpt-{num_steps(scale, run, flags_dir)}"' in _read(index)


def recorded(scale: str, run: plan.Run, results_root: str = "results", flags_dir: str = "flags") -> bool:
    """Whether `run` has a record (results_root/SCALE/runs/NAME) of its --num_steps, or one that
    says its training diverged (`diverged`): neither is trained again."""
    record_path = records.record_dir(scale, run.name, results_root)
    step = records.recorded_step(record_path)
    return step is not None and (step == num_steps(scale, run, flags_dir) or records.diverged(record_path) is not None)


def diverged(scale: str, name: str, results_root: str = "results") -> str | None:
    """The error of run `name` if its record says that its training diverged, else None."""
    return records.diverged(records.record_dir(scale, name, results_root))


_DIVERGED = "error: training diverged at step "


def _divergence(output: str) -> tuple[int, str] | None:
    """(step, error line) of the last divergence `hiabp_tf.train` reported in `output`, if any."""
    lines = [line for line in output.splitlines() if line.startswith(_DIVERGED)]
    if not lines:
        return None
    step = lines[-1][len(_DIVERGED):].split(":", 1)[0]
    return (int(step), lines[-1][len("error: "):]) if step.isdigit() else None


def run_finished(scale: str, run: plan.Run, runs_root: str = "runs", flags_dir: str = "flags",
                 results_root: str = "results") -> bool:
    """Whether `run` is trained to its --num_steps: in runs_root, or recorded under results_root."""
    return trained_in_runs(scale, run, runs_root, flags_dir) or recorded(scale, run, results_root, flags_dir)


def source_dir(scale: str, name: str, runs_root: str = "runs", results_root: str = "results") -> str:
    """Where a report reads run `name`: its workdir while that has checkpoints of at least the
    recorded step, else its record if there is one, else the workdir (whose absence the report then
    names). A workdir behind its record (a retraining under way, or one stopped early) is not read:
    the finished record is what the tables show until the retraining is recorded over it."""
    workdir, record = run_dir(scale, name, runs_root), records.record_dir(scale, name, results_root)
    recorded_step = records.recorded_step(record)
    if recorded_step is None:
        return workdir
    try:
        return workdir if records.latest_step(workdir) >= recorded_step else record
    except errors.WorkdirError:  # no checkpoint in runs/ (the usual case in a new session)
        return record


def record(scale: str, run: plan.Run, runs_root: str = "runs", results_root: str = "results",
           flags_dir: str = "flags") -> str | None:
    """Records the trained and evaluated `run` (at the scales that keep records); returns the record."""
    if scale not in records.SCALES or not trained_in_runs(scale, run, runs_root, flags_dir):
        return None
    return records.save(run_dir(scale, run.name, runs_root), records.record_dir(scale, run.name, results_root),
                        num_steps(scale, run, flags_dir), records.model_dir(scale, run.name, results_root))


# The test images of the evaluations during training (--eval_examples of flags/cpu.flags and the paper's).
CURVE_EXAMPLES = {"cpu": 1000, "paper": 1000}


def committed_curve(source: str, workdir: str, fields: dict | None = None) -> list[dict]:
    """The learning curve of `workdir` as a committed learning_curves.json (`source`) holds it: the
    points of every curve that is that run's alone (one seed; IABP's [E] and [E+L] rows share a run),
    each with `fields` (how the evaluations during training were made: dataset, T, images, seed)."""
    import json  # pylint: disable=import-outside-toplevel
    points = {}
    if os.path.isfile(source):
        with open(source) as f:
            for entry in json.load(f).get("curves", []):
                if entry.get("workdirs") == [workdir] and entry.get("num_seeds") == 1:
                    for step, value in zip(entry["steps"], entry["mse"]):
                        points.setdefault(step, {**(fields or {}), "step": step})[entry["score"]] = value
    return [points[step] for step in sorted(points)]


def rebuild_record(scale: str, run: plan.Run, results_root: str = "results", threads: int | None = None) -> str:
    """The record of a run whose workdir is lost but whose model is shipped (results/SCALE/models/NAME):
    its evaluations rescored from the shipped weights (which reproduce the trained ones' scores to
    3 significant digits, shipped.json), its learning curve taken from the learning_curves.json of
    results/SCALE where it is that run's alone (one seed); its sittings are lost with the workdir.
    record.json says so."""
    import json  # pylint: disable=import-outside-toplevel
    import shutil  # pylint: disable=import-outside-toplevel

    from hiabp_tf.runtime import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
    model = records.model_dir(scale, run.name, results_root)
    record_path = records.record_dir(scale, run.name, results_root)
    if not os.path.isfile(os.path.join(model, workdir_lib.SHIPPED_FILE)):
        raise errors.WorkdirError(f"{model} is not a shipped model: nothing to rebuild {run.name}'s record from.")
    shipped = workdir_lib.read_shipped(model)  # a WorkdirError naming the file if it cannot be read
    work = os.path.abspath(record_path.rstrip("/") + ".rescoring")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(model, work)
    env = dict(os.environ, **({"TF_NUM_INTRAOP_THREADS": str(threads)} if threads else {}))
    for number, flags in enumerate(run.evaluations):
        _evaluate(work, f"{work}.log", flags, env, number)
    source = os.path.join(results_root, scale, "learning_curves.json")
    config, _ = workdir_lib.load_config(work)
    curve = committed_curve(source, shipped["source"], dict(
        dataset=config.dataset, langevin_steps=config.langevin_steps, split="test", seed=config.seed,
        num_examples=CURVE_EXAMPLES[scale]))
    with open(os.path.join(work, workdir_lib.LEARNING_CURVE_FILE), "w") as f:
        f.writelines(json.dumps(point) + "\n" for point in curve)
    for name in (workdir_lib.WEIGHTS_FILE, workdir_lib.SHIPPED_FILE):
        os.remove(os.path.join(work, name))
    saved = records.save(work, record_path, int(shipped["step"]), model, source=shipped["source"], rebuilt=(
        f"{shipped['source']} was lost (runs/ is not committed): scores rescored from the shipped weights in {model} "
        f"({shipped['weights_dtype']}); learning curve {'from ' + source if curve else 'not kept'}; its "
        "training sittings not kept"))
    shutil.rmtree(work, ignore_errors=True)
    if os.path.isfile(f"{work}.log"):
        os.remove(f"{work}.log")
    return saved


def train_and_evaluate(scale: str, run: plan.Run, threads: int | None = None, runs_root: str = "runs",
                       flags_dir: str = "flags", evaluate: bool = True, results_root: str = "results") -> str:
    """Trains (or resumes) runs_root/SCALE/NAME, then (if `evaluate`) writes its eval_*.json (skipped
    when the same evaluation of the same checkpoint is already there), one per `run.evaluations`;
    returns evaluate's JSON lines."""
    workdir = run_dir(scale, run.name, runs_root)
    if scale in records.SCALES and not trained_in_runs(scale, run, runs_root, flags_dir) and recorded(
            scale, run, results_root, flags_dir):
        kept = records.record_dir(scale, run.name, results_root)
        if records.diverged(kept):
            _say(f"{run.name}: not retrained, its record {kept} says {records.diverged(kept)} "
                 "(delete the record to retry it)")
            return ""
        _say(f"{run.name}: recorded in {kept}, not retrained (delete the record to retrain it)")
        return "\n".join(_read(os.path.join(kept, "evaluate.out" if n == 0 else f"evaluate.{n}.out")).strip()
                         .split("\n")[-1] for n in range(len(run.evaluations)) if evaluate)
    log = f"{workdir}.log"
    os.makedirs(os.path.dirname(log), exist_ok=True)
    env = dict(os.environ, **({"TF_NUM_INTRAOP_THREADS": str(threads)} if threads else {}))
    _say(f"{run.name}: training{' and evaluating' * evaluate} (workdir {workdir}, log {log})")
    start = os.path.getsize(log) if os.path.isfile(log) else 0
    with open(log, "a") as out:
        done = subprocess.run([sys.executable, "-m", "hiabp_tf.train", *train_args(scale, run, runs_root, flags_dir)],
                              stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if done.returncode != 0:
        with open(log, errors="replace") as f:
            f.seek(start)
            divergence = _divergence(f.read())
        if divergence is None or scale not in records.SCALES:
            raise RunFailed(f"{run.name} FAILED; the end of {log}:\n{_tail(log)}")
        # Training is deterministic here: a retry diverges again, so the run is recorded as diverged
        # (the table names it beside the seeds it has) and the other runs and the report go on.
        kept = records.save_diverged(workdir, records.record_dir(scale, run.name, results_root), *divergence)
        _say(f"{run.name}: {divergence[1]}; recorded as diverged in {kept} (delete it to retry the run)")
        return ""
    if not evaluate:
        _say(f"{run.name}: trained")
        return ""
    lines = "\n".join(_evaluate(workdir, log, flags, env, number) for number, flags in enumerate(run.evaluations))
    if run.name in plan.shipped_names(scale):  # at once: runs/ may be lost before the report ships it
        table = "table2" if run.mask else "table1"
        _ship(workdir, records.model_dir(scale, run.name, results_root), log, env, f"./run.sh {table} {scale}")
    record(scale, run, runs_root, results_root, flags_dir)
    return lines


def _ship(workdir: str, model: str, log: str, env: dict, command: str) -> None:
    """`python -m hiabp_tf.serving.ship` (a process of its own, as training's); a failure is said and
    left to the report, which ships what it finds unshipped."""
    with open(log, "a") as err:
        done = subprocess.run([sys.executable, "-m", "hiabp_tf.serving.ship", f"--workdir={workdir}", f"--out={model}",
                               f"--command={command}"], stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=REPO)
    _say(f"{os.path.basename(workdir)}: " + (f"shipped to {model}" if done.returncode == 0 else
                                             f"shipping to {model} FAILED (the report ships it again); see {log}"))


def _evaluate(workdir: str, log: str, evaluate_flags, env: dict, number: int = 0) -> str:
    """Runs `python -m hiabp_tf.evaluate --workdir=WORKDIR EVALUATE_FLAGS` unless the same
    evaluation of the same checkpoint is recorded (evaluate.out, evaluate.<number>.out after the
    first: the flags on its first line, then evaluate's output); returns evaluate's JSON line."""
    marker = "# evaluate " + " ".join(evaluate_flags)
    result = os.path.join(workdir, "evaluate.out" if number == 0 else f"evaluate.{number}.out")
    checkpoint_index = os.path.join(workdir, "checkpoints", "checkpoint")
    previous = _read(result)
    # Up to date: the same flags, on a checkpoint no newer than the result (a record has no
    # checkpoints: its scores stand). The result's mtime is read only if it has those flags.
    up_to_date = previous.split("\n", 1)[0] == marker and (
        not os.path.isfile(checkpoint_index) or os.path.getmtime(checkpoint_index) <= os.path.getmtime(result))
    name = os.path.basename(workdir)
    if not up_to_date:
        with open(log, "a") as err:
            done = subprocess.run([sys.executable, "-m", "hiabp_tf.evaluate", f"--workdir={workdir}",
                                   *evaluate_flags], stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                                  cwd=REPO)
        if done.returncode != 0:
            raise RunFailed(f"{name}: evaluation FAILED; the end of {log}:\n{_tail(log)}")
        with open(result + ".tmp", "w") as f:
            f.write(marker + "\n" + done.stdout)
        os.replace(result + ".tmp", result)
    line = _read(result).strip().splitlines()[-1]
    _say(f"{name}: {line}")
    return line


def train_all(scale: str, runs: list[plan.Run], runs_root: str = "runs", evaluate: bool = True) -> None:
    """Every run trained and (if `evaluate`) evaluated, `jobs_for(scale)` at a time, longest first;
    finished runs are kept when another fails (RunFailed names every failure)."""
    jobs = jobs_for(scale)
    threads = int(os.environ.get("TF_NUM_INTRAOP_THREADS") or max(1, (os.cpu_count() or 1) // jobs))
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as executor:
        futures = [executor.submit(train_and_evaluate, scale, run, threads, runs_root, evaluate=evaluate)
                   for run in plan.longest_first(runs)]
        failures = [str(f.exception()) for f in futures if f.exception() is not None]
    if failures:
        raise RunFailed("some runs failed; finished runs are kept:\n" + "\n".join(failures))


class Provenance:
    """The note every table carries on how it was made: this command's wall time, cores, trainings
    at a time and, from the runs' sittings.json, what their training cost over every sitting (a
    table resumed over several sessions, or machines, says so)."""

    def __init__(self, scale: str, pool_seconds: int | None = None, workdirs: list[str] = (),
                 report_only: bool = False):
        self.scale, self.pool_seconds, self.start = scale, pool_seconds, time.monotonic()
        self.workdirs, self.report_only = list(workdirs), report_only

    def of(self, workdirs) -> "Provenance":
        """The note of one page of this command that is made of `workdirs` alone (the samples pages of
        each dataset): the same command, wall time and machine, the training cost of those runs only."""
        page = Provenance(self.scale, self.pool_seconds, workdirs, self.report_only)
        page.start = self.start
        return page

    def __str__(self) -> str:
        machine, jobs = hardware.describe(), jobs_for(self.scale)
        recorded = sittings.summary(self.workdirs)
        recorded = recorded and f"; {recorded}"
        if self.pool_seconds is not None:
            return (f"its runs trained in the pool of `./run.sh all {self.scale}`: {self.pool_seconds} s wall time "
                    f"for every run of every experiment on {machine}, {jobs} trainings at a time{recorded}")
        if self.report_only:  # (its wall time would be the report's seconds, not the training's)
            return f"--report_only: a report of runs trained earlier, this command trained nothing{recorded}"
        threads = os.environ.get("TF_NUM_INTRAOP_THREADS")
        return (f"{round(time.monotonic() - self.start)} s wall time on {machine}, {jobs} trainings at a "
                f"time{f', TF_NUM_INTRAOP_THREADS={threads}' if threads else ''}; runs already trained to their "
                f"steps are only re-evaluated{recorded}")


def _workdirs(scale: str, runs: dict) -> dict:
    """{label: where a report reads the run} of {label: run}."""
    return {label: source_dir(scale, run.name) for label, run in runs.items()}


# evaluate.<number>.out of Table 2's complete-image model scored on occluded images (past Table 1's
# evaluations of the same run, which are numbered from 0).
TABLE2_EVALUATIONS = 10


def _ship_trained(scale: str, workdirs, command: str) -> None:
    """Ships each of `workdirs` that is in runs/ to results/SCALE/models/NAME (a record's model was
    shipped when its run was in runs/)."""
    from hiabp_tf.serving import ship  # pylint: disable=import-outside-toplevel
    for workdir in workdirs:
        if records.recorded_step(workdir) is None:
            ship.ship(workdir, records.model_dir(scale, os.path.basename(workdir)), command=command)


def report(experiment: str, scale: str, provenance: Provenance, only: list[str] | None = None) -> None:
    """Writes results/<scale>/ for `experiment`, whose runs are trained and evaluated."""
    from hiabp_tf.experiments import report as report_lib  # pylint: disable=import-outside-toplevel

    out = f"results/{scale}"
    if experiment == "core":
        table = "hiabp.md" if scale == "paper" else f"hiabp_{plan.main_column(scale)}.md"  # mnist5k, or mnist at cpu
        command = f"./run.sh {'' if scale == 'quick' else 'core '}{scale}  ({provenance})"
        report_lib.write_runs_table(out, table, f"IABP / HiABP test reconstruction MSE ({scale} scale)",
                                    list(_workdirs(scale, plan.core_runs(scale)).items()), command)
    elif experiment == "table1":
        titles = {"mnist5k": "mnist_5k", "mnist": "MNIST", "svhn": "SVHN", "celeba": "CelebA"}
        models = plan.table1_models(scale)
        keyed = {(titles[model.column], model.row): [source_dir(scale, run.name) for run in plan.seed_runs(model)
                                                     if (only is None or source_dir(scale, run.name) in only)
                                                     and not diverged(scale, run.name)]
                 for model in models}
        lost = {run.name: diverged(scale, run.name) for model in models for run in plan.seed_runs(model)
                if diverged(scale, run.name)}
        keyed = {key: workdirs for key, workdirs in keyed.items() if workdirs}  # (report_only: what is trained)
        overlay = " + flags/cpu.flags" if scale == "cpu" else ""
        seeds = f"training seeds {', '.join(map(str, plan.SEEDS[scale]))} (runs NAME, NAME_seed1, ...)"
        report_lib.write_table1(out, "table1.md", f"Table 1: test reconstruction MSE of every method ({scale} scale, "
                                "equal steps)", keyed,
                                f"./run.sh table1 {scale}  (flags/<prefix>_<row>.flags{overlay}; {seeds}; "
                                f"{provenance})", second_t=plan.SECOND_TEST_T, diverged=lost,
                                notes=_diagnosis_notes(out, scale))
        if scale == "cpu":  # the first seed of every row shipped beside the table, to rescore in seconds
            _ship_trained(scale, [workdirs[0] for workdirs in keyed.values()], f"./run.sh table1 {scale}")
        if scale != "paper":  # one learning-curve page per dataset column (the first: learning_curves.*)
            for number, prefix in enumerate(plan.columns(scale)):
                column = {key: value for key, value in keyed.items() if key[0] == titles[prefix]}
                if not column:
                    continue
                long_runs = {run.row: run for run in plan.long_runs(scale) if run.column == prefix}
                planned = {key: source_dir(scale, long_runs[key[1]].name) for key in column if key[1] in long_runs}
                long = {key: workdir for key, workdir in planned.items() if only is None or workdir in only}
                report_lib.write_learning_curves(out, column, f"./run.sh table1 {scale}  (the evaluations during "
                                                 f"training of the Table 1 runs, {seeds})", long_runs=long,
                                                 name="learning_curves" + (f"_{prefix}" if number else ""),
                                                 long_missing=[key[1] for key in planned if key not in long])
    elif experiment == "table2":
        base_run = plan.table2_base(scale)
        base = base_run.name
        complete = source_dir(scale, base)  # its workdir in runs/, or its record with its shipped model
        env = dict(os.environ)  # the evaluations inherit TF_NUM_INTRAOP_THREADS as they are
        os.makedirs(os.path.dirname(run_dir(scale, base)), exist_ok=True)
        for number, mask in enumerate(plan.MASKS, TABLE2_EVALUATIONS):  # trained on complete images, tested occluded
            _evaluate(complete, f"{run_dir(scale, base)}.log", (f"--mask={mask}",), env, number)
        if complete == run_dir(scale, base):
            record(scale, base_run)  # its record keeps these evaluations too
        occluded = {mask: source_dir(scale, plan.table2_run(scale, mask).name) for mask in plan.MASKS}
        report_lib.write_table2(out, "table2.md", f"Table 2: learning from incomplete data, recovery error on "
                                f"occluded pixels ({scale} scale, {base})", occluded, complete,
                                f"./run.sh table2 {scale}  ({provenance})")
        if scale == "cpu":  # shipped beside the table as Table 1's (the complete-image model is Table 1's)
            _ship_trained(scale, occluded.values(), f"./run.sh table2 {scale}")
    elif experiment == "table3":
        # T = 15 is Table 1's run, with its training seeds; the other T are one seed each.
        report_lib.write_table3(out, "table3.md", f"Table 3: the effect of the number of Langevin steps T on HiABP "
                                f"({scale} scale, {plan.table3_base(scale).name})",
                                {str(t): [source_dir(scale, run.name) for run in (
                                    plan.seed_runs(plan.table3_run(scale, t)) if t == plan.TRAIN_T
                                    else [plan.table3_run(scale, t)])] for t in plan.LANGEVIN_STEPS},
                                f"./run.sh table3 {scale}  ({provenance})")
    elif experiment == "figure1":  # each run at its own training T; Table 1's IABP at every test-time T
        training, pending = {}, []
        for method, row in (("IABP", "iabp"), ("ABP", "abp")):
            for t in plan.FIGURE1_TRAIN_STEPS[scale]:
                for seed in plan.figure1_seeds(scale, t):
                    name = plan.figure1_run(scale, row, t, seed).name
                    if (only is None or source_dir(scale, name) in only) and not diverged(scale, name):
                        training.setdefault(method, {}).setdefault(t, []).append(source_dir(scale, name))
                    else:
                        pending.append(name + (" (its training diverged)" if diverged(scale, name) else ""))
        same = source_dir(scale, plan.figure1_run(scale, "iabp", plan.TRAIN_T).name)
        report_lib.write_figure1(out, training, same if only is None or same in only else None,
                                 list(plan.FIGURE1_STEPS), f"./run.sh figure1 {scale}  ({provenance})", pending,
                                 plan.FIGURE1_TRAIN_STEPS[scale])
    elif experiment == "figure7":  # the picture from the first seed; the numbers from every seed there is
        from hiabp_tf.evaluation import fid  # pylint: disable=import-outside-toplevel
        from hiabp_tf.experiments import disentangle  # pylint: disable=import-outside-toplevel
        from hiabp_tf.experiments import layer_factors  # pylint: disable=import-outside-toplevel
        faces_run = plan.figure7_faces(scale)
        faces = faces_run.name if faces_run else None
        digits = [run.name for run in plan.runs("figure7", scale) if run.name != faces]
        for path in disentangle.disentangle(source_dir(scale, digits[0]), f"{out}/figure7"):
            print(path, flush=True)
        prefix = plan.main_column(scale)
        classifier = fid.ClassifierFeatures.load_or_train(plan.fid_classifier_path(scale, prefix),
                                                          dataset="mnist" if prefix == "mnist" else "mnist_5k")
        kept = [name for name in digits + ([faces] if faces else []) if only is None or source_dir(scale, name) in only]
        num_images, num_resamples = layer_factors.SIZES.get(scale, (layer_factors.NUM_IMAGES,
                                                                    layer_factors.NUM_RESAMPLES))
        print(layer_factors.write_figure7(
            out, [(name, source_dir(scale, name)) for name in digits if name in kept], classifier,
            f"./run.sh figure7 {scale}  ({provenance})", [(faces, source_dir(scale, faces))] if faces in kept else [],
            num_images, num_resamples, picture="figure7.png", planned_seeds=len(digits)), flush=True)
    elif experiment == "diagnostics":
        from hiabp_tf.experiments import diagnostics  # pylint: disable=import-outside-toplevel

        table1_models = {run.name: run for run in plan.table1_models(scale)}

        def seed_scores(name: str, key: str) -> list[float]:  # of a Table 1 run, over its seeds
            seeds = plan.seed_runs(table1_models[name])
            return [report_lib.load_eval(source_dir(scale, run.name))[key] for run in seeds
                    if run_finished(scale, run) and not diverged(scale, run.name)]

        def seed_std(name: str, key: str) -> float | None:
            summary = statistics.seed_summary(seed_scores(name, key))
            return summary and summary["std"]

        def table1_summary(name: str) -> dict | None:  # None for a run that is no Table 1 row
            return statistics.seed_summary(seed_scores(name, "mse_E")) if name in table1_models else None

        planned = {run.name: run for experiment_ in ("table1", "diagnostics") for run in plan.runs(experiment_, scale)}
        data = diagnostics.collect(scale, out, source_dir, say=_say,
                                   finished=lambda name: name in planned and run_finished(scale, planned[name]))
        diagnostics.write(out, data, diagnostics.precision_rows(scale, source_dir, report_lib.load_eval, seed_std),
                          diagnostics.bottleneck_rows(scale, source_dir, report_lib.load_eval, table1_summary, data),
                          f"./run.sh diagnostics {scale}  ({provenance})",
                          protocol="docs/protocol.md" if scale == "cpu" else None)
    elif experiment == "latent_size":
        from hiabp_tf.experiments import latent_size  # pylint: disable=import-outside-toplevel
        panel = plan.runs("latent_size", scale)
        if not panel:
            _say(f"latent_size: the {scale} scale plans no latent-size panel (plan.LATENT_SIZES has the cpu and "
                 "paper scales')")
            return
        workdirs = {size: {} for size in plan.LATENT_SIZES[scale] + (latent_size.TABLE1_SIZE,)}
        pending = []
        for run in panel:  # the seeds of a cell in seed order; what is not trained (or diverged) is named
            if (only is None or source_dir(scale, run.name) in only) and run_finished(scale, run) \
                    and not diverged(scale, run.name):
                workdirs[run.latent_size or latent_size.TABLE1_SIZE].setdefault(run.row, []).append(
                    source_dir(scale, run.name))
            else:
                pending.append(run.name)
        md, _ = latent_size.write(out, workdirs, scale, f"./run.sh latent_size {scale}  ({provenance})", pending)
        print(md, flush=True)
    elif experiment == "samples":
        for page, runs in plan.samples_pages(scale).items():  # each page with its own runs' training cost
            workdirs = _workdirs(scale, runs)
            report_lib.write_samples(out, list(workdirs.items()),
                                     f"./run.sh samples {scale}  ({provenance.of(workdirs.values())})", name=page)


def _diagnosis_notes(out: str, scale: str) -> dict:
    """{(column, row): one line} for Table 1's rows whose first seed leaves a latent layer with fewer than
    half its units active, from results/SCALE/diagnostics.json (`./run.sh diagnostics`), if measured."""
    from hiabp_tf.experiments import diagnostics  # pylint: disable=import-outside-toplevel
    path = os.path.join(out, diagnostics.JSON)
    if not os.path.isfile(path):
        return {}
    import json  # pylint: disable=import-outside-toplevel
    with open(path) as f:
        data = json.load(f)
    notes = {}
    for run in plan.table1_models(scale):  # the first seed's: the one whose figures are shown
        entry = data.get("runs", {}).get(run.name)
        if entry and entry.get("steps") and diagnostics.has_idle_layer(entry):
            notes[(diagnostics.TITLES[run.column], run.row)] = diagnostics.active_units_note(entry)
    return notes


def prepare(experiments, scale: str) -> None:
    """What must exist before the parallel evaluations: Table 1's FID classifier, trained once."""
    if "table1" not in experiments:
        return
    from hiabp_tf.evaluation import fid  # pylint: disable=import-outside-toplevel
    for column in plan.columns(scale):
        if column in ("mnist5k", "mnist"):
            fid.ClassifierFeatures.load_or_train(plan.fid_classifier_path(scale, column),
                                                 dataset="mnist" if column == "mnist" else "mnist_5k")


def claims(scale: str) -> None:
    from hiabp_tf.experiments import claims as claims_lib  # pylint: disable=import-outside-toplevel
    # The README's first screen shows the cpu scale's results.
    path = claims_lib.write_claims(f"results/{scale}", f"./run.sh claims {scale}",
                                   "README.md" if scale == "cpu" else None)
    print(open(path).read(), flush=True)


def report_trained(experiments, scale: str) -> None:
    """Evaluates and reports what is trained of `experiments`, training nothing: each finished run's
    evaluations (skipped when up to date), then each report from the finished runs (Table 1 with the
    seeds there are, its column *seeds* says how many); an experiment lacking a run is skipped."""
    from hiabp_tf.experiments import report as report_lib  # pylint: disable=import-outside-toplevel
    threads = int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0) or None
    env = dict(os.environ, **({"TF_NUM_INTRAOP_THREADS": str(threads)} if threads else {}))
    prepare(experiments, scale)
    for experiment in experiments:
        finished = [run for run in plan.runs(experiment, scale)
                    if run_finished(scale, run) and not diverged(scale, run.name)]
        for run in finished:
            workdir = source_dir(scale, run.name)
            if workdir == run_dir(scale, run.name):  # (a record's evaluations were made before it was kept)
                for number, flags in enumerate(run.evaluations):
                    _evaluate(workdir, f"{workdir}.log", flags, env, number)
                record(scale, run)
        try:
            report(experiment, scale, Provenance(scale, None, [source_dir(scale, run.name) for run in finished],
                                                 report_only=True),
                   only=[source_dir(scale, run.name) for run in finished])
        except (errors.WorkdirError, KeyError) as e:
            _say(f"{experiment}: not reported, a run it needs is not trained yet ({e})")
    report_lib.write_index(f"results/{scale}", None)


def run(command: str, scale: str, train_only: bool = False, report_only: bool = False) -> None:
    """Trains, evaluates and reports `command` ("all": every experiment) at `scale`; with
    `train_only`, only trains its runs (e.g. in the background, to report later); with
    `report_only`, only evaluates and reports what is trained (`report_trained`)."""
    os.chdir(REPO)  # flag files, runs/ and results/ are relative to the repository
    weights = os.environ.get("INCEPTION_WEIGHTS")
    if command == "claims":
        return claims(scale)
    if scale == "paper" and not weights and command in ("table1", "all"):
        _say("INCEPTION_WEIGHTS is not set: no FID for svhn and celeba (see docs/reproducing.md)")
    experiments = plan.EXPERIMENTS if command == "all" else (command,)
    if {"table1", "diagnostics"} & set(experiments):  # the dataset columns the data dir leaves out, and why
        for line in plan.columns_left_out(scale):
            _say(line)
    if train_only:
        return train_all(scale, plan.pool(experiments, scale, weights), evaluate=False)
    if report_only:
        return report_trained(experiments, scale)
    start = time.monotonic()
    prepare(experiments, scale)
    pool_seconds = None
    if command == "all":  # every run of every experiment in one pool, then each finds its runs done
        pool_start = time.monotonic()
        train_all(scale, plan.pool(experiments, scale, weights))
        pool_seconds = round(time.monotonic() - pool_start)
    for experiment in experiments:
        runs = plan.runs(experiment, scale, weights)
        provenance = Provenance(scale, pool_seconds, [source_dir(scale, run.name) for run in runs])
        train_all(scale, runs)
        report(experiment, scale, provenance)
    if command == "all":
        claims(scale)
        from hiabp_tf.experiments import report as report_lib  # pylint: disable=import-outside-toplevel
        report_lib.write_index(f"results/{scale}", f"./run.sh all {scale}  ({round(time.monotonic() - start)} s "
                               f"wall time on {hardware.describe()}, {jobs_for(scale)} trainings at a time)")


def rebuild_records(scale: str, names) -> int:
    """`python -m hiabp_tf.experiments.run --rebuild_records SCALE NAME ...`: rebuilds the records of lost
    Table 1 runs from their shipped models (`rebuild_record`)."""
    by_name = {run.name: run for run in plan.runs("table1", scale)}
    for name in names:
        if name not in by_name:
            print(f"error: {name} is not a Table 1 run of the {scale} scale", file=sys.stderr)
            return 2
        print(rebuild_record(scale, by_name[name]), flush=True)
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--rebuild_records"] and len(argv) >= 3 and argv[1] in plan.SCALES:
        return rebuild_records(argv[1], argv[2:])
    usage = f"usage: ./run.sh {{{'|'.join(COMMANDS)}}} [{'|'.join(plan.SCALES)}] [--train_only | --report_only]"
    train_only, report_only = "--train_only" in argv, "--report_only" in argv
    argv = [arg for arg in argv if arg not in ("--train_only", "--report_only")]
    if not 1 <= len(argv) <= 2 or argv[0] not in COMMANDS or (len(argv) == 2 and argv[1] not in plan.SCALES):
        print(usage, file=sys.stderr)
        return 2
    try:
        run(argv[0], argv[1] if len(argv) == 2 else "quick", train_only, report_only)
    except RunFailed as e:
        _say(str(e))
        return 1
    except errors.USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

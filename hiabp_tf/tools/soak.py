r"""Soak test of crash and resume: kill a training run with SIGKILL at random moments and during
checkpoint saves, start a second training on its workdir, corrupt its newest checkpoint, let it
finish, and check nothing was lost. Writes results/reliability.md.

    python -m hiabp_tf.tools.soak --out=results/reliability.md [--kills=5 --save_kills=2 --num_steps=200 --seed=0]

It trains the same small configuration twice under --deterministic: once uninterrupted, once
interrupted (each restart is the same command):
  * killed --kills times at random training steps;
  * killed --save_kills times during a checkpoint save: on the progress line of a checkpoint step N
    (the save of ckpt-N comes next), the folder is polled every millisecond and the run killed as
    soon as a file of ckpt-N appears; the report says what the kill left on disk;
  * while the first run holds the workdir's lock (paused with SIGSTOP, so the check does not
    depend on timing), the same command is started again: it must be refused (exit status 2,
    naming the first run's pid) and write nothing;
  * before the last restart, the newest checkpoint's data file is truncated to half (--corrupt):
    the last run must warn, fall back to the checkpoint before it, move the damaged files intact
    into checkpoints/unreadable/ and finish.
The report lists the runs, the steps redone, whether every kept checkpoint restores, and the final
evaluation of both runs, which must match.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

from absl import flags

from hiabp_tf import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # hiabp_tf/<group>/x.py


def define_flags():
    flags.DEFINE_string("out", "results/reliability.md", "Markdown report to write.")
    flags.DEFINE_integer("kills", 5, "How many times the run is killed with SIGKILL at a random step.")
    flags.DEFINE_integer("save_kills", 2, "How many times the run is killed with SIGKILL during a checkpoint save.")
    flags.DEFINE_bool("corrupt", True, "Truncate the newest checkpoint's data file before the last restart.")
    flags.DEFINE_bool("second_training", True, "Start a second training on the workdir while the first holds it.")
    flags.DEFINE_integer("num_steps", 200, "Training steps of the soaked run.")
    flags.DEFINE_integer("checkpoint_every", 5, "--checkpoint_every of the soaked run.")
    flags.DEFINE_integer("seed", 0, "Seed of the kill times and of training.")
    flags.DEFINE_string("workdir", None, "Where the two runs go (default: a temporary folder).")


FLAGS = flags.FLAGS

TRAIN_FLAGS = ["--dataset=mnist_5k", "--num_layers=2", "--latent_dims=8,8", "--width=8", "--batch_size=100",
               "--langevin_steps=5", "--log_every=1", "--eval_every=1000000", "--eval_examples=100",
               "--deterministic"]


def _env():
    return {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _train_command(workdir, num_steps, checkpoint_every, seed):
    return [sys.executable, "-m", "hiabp_tf.train", f"--workdir={workdir}", f"--num_steps={num_steps}",
            f"--checkpoint_every={checkpoint_every}", f"--seed={seed}", *TRAIN_FLAGS]


def _last_step(log: str) -> int:
    steps = [int(line.split("step ", 1)[1].split("/", 1)[0]) for line in log.splitlines()
             if "] step " in line and "/" in line.split("step ", 1)[1].split()[0]]
    return max(steps, default=0)


def _resumed_from(log: str):
    """The step a run resumed from, 0 for a fresh start, None if it was killed before it knew."""
    for line in log.splitlines():
        if "Resumed from" in line:
            return int(line.rsplit("at step ", 1)[1].rstrip(". "))
        if "] Training " in line:
            return 0
    return None


def _evaluate(workdir):
    out = subprocess.run([sys.executable, "-m", "hiabp_tf.evaluate", f"--workdir={workdir}"], env=_env(),
                         cwd=REPO, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _checkpoints_restore(workdir):
    """Restores every kept checkpoint of `workdir` into a fresh model; returns [(name, ok)]."""
    code = (
        "import sys, tensorflow as tf\n"
        "from hiabp_tf import methods, workdir as workdir_lib\n"
        "config, shape, n = workdir_lib.load_run(sys.argv[1])\n"
        "for path in tf.train.get_checkpoint_state(sys.argv[1] + '/checkpoints').all_model_checkpoint_paths:\n"
        "    model = methods.build_model(config, shape, n)\n"
        "    ckpt, step = workdir_lib.make_checkpoint(model)\n"
        "    ckpt.restore(path).expect_partial().assert_existing_objects_matched()\n"
        "    print(path.rsplit('/', 1)[1], int(step.numpy()))\n")
    out = subprocess.run([sys.executable, "-c", code, workdir], env=_env(), cwd=REPO, capture_output=True, text=True)
    return out.returncode == 0, out.stdout.split()


# The supervisor never imports TensorFlow (the package's constants and checkpoint helpers come with
# it): it only starts, watches and kills the training processes, so it reads the index file, whose
# format is text, itself.
def _index_lists(checkpoint_dir, name):
    """Whether the checkpoint index file of `checkpoint_dir` lists checkpoint `name` (e.g. ckpt-60)."""
    try:
        with open(os.path.join(checkpoint_dir, "checkpoint")) as f:
            return f'"{name}"' in f.read()
    except OSError:
        return False


def _newest_listed(checkpoint_dir):
    """The latest checkpoint of the index file (e.g. "ckpt-60")."""
    with open(os.path.join(checkpoint_dir, "checkpoint")) as f:
        for line in f:
            if line.startswith("model_checkpoint_path:"):
                return line.split('"')[1]
    return None


def save_kill_outcome(names, name, listed):
    """What a kill during the save of checkpoint `name` left: from the folder's file `names` after
    the kill and whether the index lists it."""
    if listed:
        return f"just after the save ({name} complete and listed)"
    if any(n.startswith(name + "_temp") for n in names):
        return f"while writing {name} (its temporary files)"
    if name + ".index" in names:
        return f"after writing {name}, before the checkpoint index listed it"
    return f"before {name} was written"


def _kill_during_save(proc, checkpoint_dir, number):
    """Kills `proc` as soon as a file of ckpt-`number` appears in `checkpoint_dir` (the save that
    follows the progress line of step `number`); returns what the kill left."""
    name = f"ckpt-{number}"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if any(n.startswith(name + ".") or n.startswith(name + "_") for n in os.listdir(checkpoint_dir)):
                break
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return save_kill_outcome(os.listdir(checkpoint_dir), name, _index_lists(checkpoint_dir, name))


def _second_training(proc, workdir, command):
    """Starts `command` again while `proc` holds the run lock of `workdir` (paused meanwhile):
    returns the second run's exit status, its `error:` line and whether it left the workdir as it was."""
    lock = os.path.join(workdir, "train.lock")
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with open(lock) as f:
                if json.load(f).get("pid") == proc.pid:
                    break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGSTOP)
    try:
        before = _listing(workdir)
        second = subprocess.run(command, env=_env(), cwd=REPO, capture_output=True, text=True)
        untouched = _listing(workdir) == before
    finally:
        proc.send_signal(signal.SIGCONT)
    errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    return {"returncode": second.returncode, "error": errors[0] if errors else second.stderr[-500:],
            "names_pid": f"process {proc.pid} " in second.stderr, "untouched": untouched}


def _listing(folder):
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            st = os.stat(os.path.join(root, name))
            out[os.path.relpath(os.path.join(root, name), folder)] = (st.st_size, st.st_mtime_ns)
    return out


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _corrupt_newest(checkpoint_dir):
    """Truncates the data file of the newest listed checkpoint to half; returns what was done."""
    name = _newest_listed(checkpoint_dir)
    data = os.path.join(checkpoint_dir, f"{name}.data-00000-of-00001")
    size = os.path.getsize(data)
    with open(data, "r+b") as f:
        f.truncate(size // 2)
    return {"checkpoint": name, "file": os.path.basename(data), "size": size, "truncated_to": size // 2,
            "sha256": _sha256(data), "index_sha256": _sha256(os.path.join(checkpoint_dir, f"{name}.index"))}


def kill_plan(rng, kills, save_kills, num_steps, checkpoint_every):
    """[(step, kind)], by step: `kills` random steps ("random") and `save_kills` checkpoint steps
    ("save"), all different and below num_steps."""
    saves = rng.sample(range(checkpoint_every, num_steps, checkpoint_every), save_kills)
    randoms = rng.sample(sorted(set(range(1, num_steps)) - set(saves)), kills)
    return sorted([(s, "random") for s in randoms] + [(s, "save") for s in saves])


def soak(workdir, kills, num_steps, checkpoint_every, seed, save_kills=0, corrupt=False, second_training=False):
    rng = random.Random(seed)
    reference = os.path.join(workdir, "uninterrupted")
    start = time.perf_counter()
    subprocess.run(_train_command(reference, num_steps, checkpoint_every, seed), env=_env(), cwd=REPO,
                   check=True, capture_output=True)
    reference_seconds = time.perf_counter() - start

    soaked = os.path.join(workdir, "killed")
    checkpoint_dir = os.path.join(soaked, "checkpoints")
    command = _train_command(soaked, num_steps, checkpoint_every, seed)
    # Kill moments, drawn once. A random kill comes as soon as the run logs that step (the next
    # step is then in flight, or a checkpoint being written); a save kill during the save that
    # follows the progress line of its checkpoint step.
    plan = kill_plan(rng, kills, save_kills, num_steps, checkpoint_every)
    events, second, corruption = [], None, None
    for k in range(len(plan) + 1):
        if corrupt and k == len(plan) and os.path.exists(os.path.join(checkpoint_dir, "checkpoint")):
            corruption = _corrupt_newest(checkpoint_dir)
        proc = subprocess.Popen(command, env=_env(), cwd=REPO, stderr=subprocess.PIPE, text=True)
        if second_training and k == 0:
            second = _second_training(proc, soaked, command)
        seen, kind, outcome = [], plan[k][1] if k < len(plan) else None, None
        if kind is not None:
            target = plan[k][0]
            for line in proc.stderr:
                seen.append(line)
                if "] step " not in line or _last_step(line) < target:
                    continue
                if kind == "random":
                    proc.send_signal(signal.SIGKILL)
                    break
                if _last_step(line) % checkpoint_every == 0:  # the save of this step comes next
                    outcome = _kill_during_save(proc, checkpoint_dir, _last_step(line))
                    break
        log = "".join(seen) + proc.communicate()[1]
        events.append({"run": k + 1, "kind": kind, "target": plan[k][0] if kind else None,
                       "returncode": proc.returncode, "resumed_from": _resumed_from(log),
                       "reached": _last_step(log), "outcome": outcome,
                       "warnings": [line.split("] ", 1)[-1].strip() for line in log.splitlines()
                                    if "is unreadable" in line or "Moved the unreadable" in line]})
    if corruption is not None:  # the damaged files, kept byte for byte?
        aside = os.path.join(checkpoint_dir, "unreadable")
        kept = [os.path.join(aside, name) for name in (corruption["file"], corruption["checkpoint"] + ".index")]
        corruption["kept"] = (all(os.path.exists(path) for path in kept) and
                              [_sha256(path) for path in kept] == [corruption["sha256"], corruption["index_sha256"]])
        corruption["aside"] = sorted(os.listdir(aside)) if os.path.isdir(aside) else []
    # Steps redone: all steps trained across the runs, minus the steps the job needs.
    trained = sum(e["reached"] - (e["resumed_from"] or 0) for e in events if e["reached"])
    redone = trained - num_steps
    restore_ok, restored = _checkpoints_restore(soaked)
    return {"reference": _evaluate(reference), "soaked": _evaluate(soaked), "events": events, "redone": redone,
            "restore_ok": restore_ok, "restored": restored, "reference_seconds": reference_seconds,
            "second": second, "corruption": corruption, "workdir": workdir}


def _command_line(settings):
    flags_text = " ".join(f"--{k}={v}" for k, v in settings.items() if not isinstance(v, bool))
    bools = " ".join(f"--{'' if v else 'no'}{k}" for k, v in settings.items() if isinstance(v, bool))
    return f"python -m hiabp_tf.tools.soak {flags_text} {bools}".strip()


def write_report(path, result, settings):
    """Writes the Markdown report; returns whether nothing was lost (every check passed)."""
    ref, soaked = result["reference"], result["soaked"]
    num_steps, checkpoint_every = settings["num_steps"], settings["checkpoint_every"]
    events, second, corruption = result["events"], result["second"], result["corruption"]
    same = ref["mse_E"] == soaked["mse_E"] and ref["mse_EL"] == soaked["mse_EL"]
    short = lambda text: short_line(text, result["workdir"])  # noqa: E731
    killed = [e for e in events if e["kind"] and e["returncode"] == -signal.SIGKILL]
    save_kills = [e for e in events if e["kind"] == "save"]
    lines = ["# Reliability: crash and resume soak", "",
             f"Command: `{_command_line(settings)}` ({datetime.date.today().isoformat()}).", "",
             f"Training (`{' '.join(TRAIN_FLAGS)}`, {num_steps} steps, checkpoint every {checkpoint_every}) ran once "
             f"uninterrupted ({result['reference_seconds']:.0f} s) and once interrupted, each time restarted with "
             f"the same command: killed with SIGKILL at {settings['kills']} random training steps and "
             f"{settings['save_kills']} times during a checkpoint save (on the progress line of a checkpoint step "
             "the folder is polled every millisecond and the run killed as soon as a file of that checkpoint "
             "appears)"
             + ("; a second training started on the workdir while the first held it" if second else "")
             + ("; the newest checkpoint's data file truncated to half before the last restart" if corruption
                else "") + ".", "",
             "| run | interrupted | exit status | resumed from step | last step logged |", "|---|---|---|---|---|"]
    for e in events:
        resumed = "killed during start-up" if e["resumed_from"] is None else e["resumed_from"]
        if e["kind"] is None:
            how = "no (finished)"
        elif e["returncode"] == 0:
            how = "too late: it had finished"
        elif e["kind"] == "save":
            how = f"killed during a save: {e['outcome']}"
        else:
            how = f"killed at step {e['target']}"
        if e["warnings"]:
            how += " (it found the newest checkpoint unreadable: see below)"
        lines.append(f"| {e['run']} | {how} | {e['returncode']} | {resumed} | {e['reached'] or '—'} |")
    checks = [same, soaked["step"] == num_steps, result["restore_ok"]]
    lines += ["", f"- Kills survived: {len(killed)} ({len(save_kills)} during a checkpoint save); final step "
              f"{soaked['step']} of {num_steps} ({'right' if soaked['step'] == num_steps else 'WRONG'}).",
              f"- Steps trained twice: {result['redone']} (at most {checkpoint_every} per kill that interrupted "
              "training" + (", plus those since the checkpoint before the corrupted one" if corruption else "")
              + ").",
              f"- Every kept checkpoint restores: {'yes' if result['restore_ok'] else 'NO'} "
              f"({' '.join(result['restored'])})."]
    if second:
        refused = second["returncode"] == 2 and second["names_pid"] and second["untouched"]
        checks.append(refused)
        lines.append(f"- A second training on the workdir while run 1 held it: "
                     f"{'refused' if refused else 'NOT REFUSED CLEANLY'} (exit status {second['returncode']}, "
                     f"{'naming' if second['names_pid'] else 'NOT naming'} run 1's process id, "
                     f"{'nothing written' if second['untouched'] else 'THE WORKDIR CHANGED'}): "
                     f"`{short(second['error'])}`")
    if corruption:
        last = events[-1]
        fell_back = bool(last["warnings"]) and last["resumed_from"] is not None and last["resumed_from"] < int(
            corruption["checkpoint"].rsplit("-", 1)[1])
        checks += [fell_back, corruption["kept"]]
        lines.append(f"- Corrupted newest checkpoint: {corruption['file']} truncated from {corruption['size']:,} "
                     f"to {corruption['truncated_to']:,} bytes before run {last['run']}, which "
                     + (f"warned, fell back to step {last['resumed_from']} and finished" if fell_back
                        else "DID NOT FALL BACK")
                     + f"; the damaged files were {'kept byte for byte' if corruption['kept'] else 'NOT KEPT'} in "
                     f"checkpoints/unreadable/ ({', '.join(corruption['aside']) or 'empty'}). Its warnings:")
        lines += [f"  - `{short(w)}`" for w in last["warnings"]]
    lines += ["", "| run | test MSE [E] | test MSE [E+L] |", "|---|---|---|",
              f"| uninterrupted | {ref['mse_E']:.8f} | {ref['mse_EL']:.8f} |",
              f"| interrupted {len(events) - 1} times | {soaked['mse_E']:.8f} | {soaked['mse_EL']:.8f} |", "",
              f"Final evaluations {'match exactly' if same else 'DIFFER'}. "
              + ("Nothing was lost." if all(checks) else "SOMETHING WAS LOST OR NOT REFUSED: see above.")]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    return all(checks)


def short_line(text, folder, limit=400):
    """One log line for the report: paths relative to the soak's `folder`, long lines cut."""
    text = text.replace(os.path.join(os.path.abspath(folder), ""), "")
    return text if len(text) <= limit else text[:limit] + " ..."


def main():
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="hiabp_soak_")
    settings = dict(kills=FLAGS.kills, save_kills=FLAGS.save_kills, num_steps=FLAGS.num_steps,
                    checkpoint_every=FLAGS.checkpoint_every, seed=FLAGS.seed, corrupt=FLAGS.corrupt,
                    second_training=FLAGS.second_training)
    result = soak(workdir, FLAGS.kills, FLAGS.num_steps, FLAGS.checkpoint_every, FLAGS.seed,
                  save_kills=FLAGS.save_kills, corrupt=FLAGS.corrupt, second_training=FLAGS.second_training)
    ok = write_report(FLAGS.out, result, settings)
    print(open(FLAGS.out).read())
    return 0 if ok else 1


if __name__ == "__main__":
    cli.run(main, define_flags, workdir_flag=None)

r"""Soak test of crash and resume: kill a training run with SIGKILL at random moments, let it finish,
and check nothing was lost. Writes results/reliability.md.

    python -m hiabp_tf.soak --out=results/reliability.md [--kills=5 --num_steps=200 --seed=0]

It trains the same small configuration twice under --deterministic: once uninterrupted, once killed
--kills times at random moments (each restart is the same command), and reports the kills survived,
the steps redone, whether every kept checkpoint restores, and the final evaluation of both runs,
which must match.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def define_flags():
    flags.DEFINE_string("out", "results/reliability.md", "Markdown report to write.")
    flags.DEFINE_integer("kills", 5, "How many times the run is killed with SIGKILL.")
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
        "from hiabp_tf import experiment\n"
        "config, shape, n = experiment.load_run(sys.argv[1])\n"
        "for path in tf.train.get_checkpoint_state(sys.argv[1] + '/checkpoints').all_model_checkpoint_paths:\n"
        "    model = experiment.build_model(config, shape, n)\n"
        "    ckpt, step = experiment.make_checkpoint(model)\n"
        "    ckpt.restore(path).expect_partial().assert_existing_objects_matched()\n"
        "    print(path.rsplit('/', 1)[1], int(step.numpy()))\n")
    out = subprocess.run([sys.executable, "-c", code, workdir], env=_env(), cwd=REPO, capture_output=True, text=True)
    return out.returncode == 0, out.stdout.split()


def soak(workdir, kills, num_steps, checkpoint_every, seed):
    rng = random.Random(seed)
    reference = os.path.join(workdir, "uninterrupted")
    start = time.perf_counter()
    subprocess.run(_train_command(reference, num_steps, checkpoint_every, seed), env=_env(), cwd=REPO,
                   check=True, capture_output=True)
    reference_seconds = time.perf_counter() - start

    soaked = os.path.join(workdir, "killed")
    # Kill moments: random training steps, drawn once; a run is killed with SIGKILL as soon as it
    # logs that step (the next step is then in flight, or a checkpoint being written).
    targets = sorted(rng.sample(range(1, num_steps), kills))
    events = []
    for k in range(kills + 1):
        proc = subprocess.Popen(_train_command(soaked, num_steps, checkpoint_every, seed), env=_env(), cwd=REPO,
                                stderr=subprocess.PIPE, text=True)
        seen = []
        if k < kills:
            for line in proc.stderr:
                seen.append(line)
                if "] step " in line and _last_step(line) >= targets[k]:
                    proc.send_signal(signal.SIGKILL)
                    break
        log = "".join(seen) + proc.communicate()[1]
        events.append({"run": k + 1, "killed": k < kills, "returncode": proc.returncode,
                       "resumed_from": _resumed_from(log), "reached": _last_step(log)})
    # Steps redone: all steps trained across the runs, minus the steps the job needs.
    trained = sum(e["reached"] - (e["resumed_from"] or 0) for e in events if e["reached"])
    redone = trained - num_steps
    restore_ok, restored = _checkpoints_restore(soaked)
    return {"reference": _evaluate(reference), "soaked": _evaluate(soaked), "events": events, "redone": redone,
            "restore_ok": restore_ok, "restored": restored, "reference_seconds": reference_seconds}


def write_report(path, result, kills, num_steps, checkpoint_every, seed):
    ref, soaked = result["reference"], result["soaked"]
    same = ref["mse_E"] == soaked["mse_E"] and ref["mse_EL"] == soaked["mse_EL"]
    lines = ["# Reliability: crash and resume soak", "",
             f"Command: `python -m hiabp_tf.soak --kills={kills} --num_steps={num_steps} "
             f"--checkpoint_every={checkpoint_every} --seed={seed}` ({datetime.date.today().isoformat()}).", "",
             f"Training (`{' '.join(TRAIN_FLAGS)}`, {num_steps} steps, checkpoint every {checkpoint_every}) ran once "
             f"uninterrupted ({result['reference_seconds']:.0f} s) and once killed with SIGKILL {kills} times at "
             "random training steps, each time restarted with the same command.", "",
             "| run | killed | exit status | resumed from step | last step logged |", "|---|---|---|---|---|"]
    for e in result["events"]:
        resumed = "killed during start-up" if e["resumed_from"] is None else e["resumed_from"]
        killed = ("no (finished)" if not e["killed"] else
                  "too late: it had finished" if e["returncode"] == 0 else "yes")
        lines.append(f"| {e['run']} | {killed} | {e['returncode']} | "
                     f"{resumed} | {e['reached'] or '—'} |")
    lines += ["", f"- Kills survived: {sum(e['killed'] for e in result['events'])}; final step "
              f"{soaked['step']} of {num_steps} ({'right' if soaked['step'] == num_steps else 'WRONG'}).",
              f"- Steps trained twice because of the kills: {result['redone']} (at most {checkpoint_every} "
              "per kill that interrupted training).",
              f"- Every kept checkpoint restores: {'yes' if result['restore_ok'] else 'NO'} "
              f"({' '.join(result['restored'])}).",
              "", "| run | test MSE [E] | test MSE [E+L] |", "|---|---|---|",
              f"| uninterrupted | {ref['mse_E']:.8f} | {ref['mse_EL']:.8f} |",
              f"| killed {kills} times | {soaked['mse_E']:.8f} | {soaked['mse_EL']:.8f} |", "",
              f"Final evaluations {'match exactly' if same else 'DIFFER'}."]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    return same and soaked["step"] == num_steps and result["restore_ok"]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="hiabp_soak_")
    result = soak(workdir, FLAGS.kills, FLAGS.num_steps, FLAGS.checkpoint_every, FLAGS.seed)
    ok = write_report(FLAGS.out, result, FLAGS.kills, FLAGS.num_steps, FLAGS.checkpoint_every, FLAGS.seed)
    print(open(FLAGS.out).read())
    return 0 if ok else 1


if __name__ == "__main__":
    define_flags()
    app.run(main)

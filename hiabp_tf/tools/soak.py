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
  * after the kills (all of them in the first 60% of the run), a stop request during an evaluation
    (--stop_during_eval): SIGTERM on the progress line of an evaluation step E (its evaluation comes
    next); the run must end it unrecorded, save ckpt-E and exit with 128 + 15, and the next run must
    evaluate step E before it trains;
  * then a full disk (--disk_full): the next run's workdir is a tmpfs too small for its next
    checkpoint, mounted over the workdir in a private mount namespace (`unshare`: root or
    unprivileged user namespaces) and holding a copy of it; the run must end in one `error:` line
    (exit status 2, no traceback) naming the intact latest checkpoint, which the following run
    resumes from (the tmpfs's contents are copied back as the workdir). Where no small file system
    can be mounted, the report says the fault was not run;
  * before the last restart, the newest checkpoint's data file is truncated to half (--corrupt):
    the last run must warn, fall back to the checkpoint before it, move the damaged files intact
    into checkpoints/unreadable/ and finish.
  * after the last run (--damaged_files), the files the project reads back are damaged, one at a time, in
    copies of the finished workdir and of a model shipped from it, and the command that reads each is run:
    a corrupt record.json, a missing or truncated shipped.json, weights with a NaN, a sittings.json entry
    with "from_step": null, a learning curve line that is JSON but no evaluation, config.json a folder,
    tensorboard a file, train.lock a folder; each must end in one `error:` line naming the file (exit
    status 2, no traceback, nothing of the original changed), or, where the files say it is kept aside,
    go on. An image folder's cache is truncated between two evaluations on the folder (the second must
    decode it again and give the same scores), and five of its images are then changed (a third
    evaluation must write a result of its own, the first kept byte for byte).
The report lists the runs, the steps redone, whether every kept checkpoint restores, the learning
curves (every evaluation during training) and the final evaluation of both runs, which must match.
It records the machine's load: wall times of a shared machine are not the soak's alone.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from absl import flags

from hiabp_tf.checks import cli

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
    flags.DEFINE_bool("stop_during_eval", True, "Send SIGTERM during an evaluation, after the kills.")
    flags.DEFINE_bool("disk_full", True, "Run once on a file system too small for the next checkpoint.")
    flags.DEFINE_bool("damaged_files", True, "After the last run, damage each file the project reads back and run "
                      "the command that reads it (see the module docstring).")
    flags.DEFINE_integer("eval_every", 25, "--eval_every of the soaked run (evaluations of 1,000 test images, "
                         "two batches of 500).")


FLAGS = flags.FLAGS

TRAIN_FLAGS = ["--dataset=mnist_5k", "--num_layers=2", "--latent_dims=8,8", "--width=8", "--batch_size=100",
               "--langevin_steps=5", "--log_every=1", "--eval_examples=1000", "--deterministic"]
# Kills come in the first KILL_HORIZON of the run, so that the stop and disk-full faults have steps after them.
KILL_HORIZON = 0.6


def _env():
    return {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _train_command(workdir, num_steps, checkpoint_every, seed, eval_every=1_000_000):
    return [sys.executable, "-m", "hiabp_tf.train", f"--workdir={workdir}", f"--num_steps={num_steps}",
            f"--checkpoint_every={checkpoint_every}", f"--seed={seed}", f"--eval_every={eval_every}", *TRAIN_FLAGS]


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


def kill_plan(rng, kills, save_kills, num_steps, checkpoint_every, horizon=None):
    """[(step, kind)], by step: `kills` random steps ("random") and `save_kills` checkpoint steps
    ("save"), all different and below `horizon` (default num_steps)."""
    horizon = num_steps if horizon is None else horizon
    saves = rng.sample(range(checkpoint_every, horizon, checkpoint_every), save_kills)
    randoms = rng.sample(sorted(set(range(1, horizon)) - set(saves)), kills)
    return sorted([(s, "random") for s in randoms] + [(s, "save") for s in saves])


def _stop_during_eval(proc, eval_every, num_steps):
    """Sends SIGTERM to `proc` on the progress line of its first evaluation step (its evaluation
    comes next); returns (the log read so far, that step or None, the
    time the signal was sent)."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        step = _last_step(line) if "] step " in line and "/" in line.split("] step ", 1)[1].split()[0] else 0
        if step and (step % eval_every == 0 or step == num_steps):
            proc.send_signal(signal.SIGTERM)
            return "".join(seen), step, time.monotonic()
    return "".join(seen), None, None


# Runs a command with its workdir on a small tmpfs, in a private mount namespace: the tmpfs holds a
# copy of the workdir and is bind-mounted over it, so the command is the very same; the workdir's
# contents at the end are copied out (to $3), the real workdir being untouched meanwhile.
_SMALL_DISK_SCRIPT = """
set -u
workdir=$1 mnt=$2 out=$3 status=$4 size=$5; shift 5
mount -t tmpfs -o size="$size" tmpfs "$mnt" || exit 97
cp -a "$workdir/." "$mnt/" || exit 98
mount --bind "$mnt" "$workdir" || exit 97
"$@"
echo $? > "$status"
cp -a "$workdir/." "$out/"
"""


def _disk_usage(folder):
    return sum(-(-os.path.getsize(os.path.join(root, n)) // 4096) * 4096
               for root, _, names in os.walk(folder) for n in names)


def _disk_full_run(command, workdir):
    """Runs `command` once with `workdir` on a file system with room for half of one more
    checkpoint; afterwards the workdir is what the run left there. Returns the run's exit status,
    log, the newest listed checkpoint before and after, and what is left of unfinished saves; or
    {"skipped": why} where no small file system can be mounted (this process needs root, or
    unprivileged user namespaces for `unshare -Urm`)."""
    checkpoint_dir = os.path.join(workdir, "checkpoints")
    before = _newest_listed(checkpoint_dir)
    checkpoint_bytes = sum(os.path.getsize(os.path.join(checkpoint_dir, n)) for n in os.listdir(checkpoint_dir)
                           if n.startswith(before + "."))
    size = _disk_usage(workdir) + checkpoint_bytes // 2
    scratch = tempfile.mkdtemp(prefix=".disk_full-", dir=os.path.dirname(workdir))
    mnt, out, status = (os.path.join(scratch, name) for name in ("mnt", "out", "status"))
    os.makedirs(mnt)
    os.makedirs(out)
    unshare = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-Urm"]
    done = subprocess.run([*unshare, "sh", "-c", _SMALL_DISK_SCRIPT, "sh", workdir, mnt, out, status, str(size),
                           *command], env=_env(), cwd=REPO, capture_output=True, text=True)
    if not os.path.exists(status):
        shutil.rmtree(scratch, ignore_errors=True)
        return {"skipped": f"cannot mount a small file system here (`{' '.join(unshare)}` and tmpfs: exit status "
                           f"{done.returncode}, {done.stderr.strip()[-200:]})"}
    with open(status) as f:
        returncode = int(f.read())
    shutil.rmtree(workdir)
    os.rename(out, workdir)
    shutil.rmtree(scratch, ignore_errors=True)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    return {"returncode": returncode, "log": done.stderr, "error": errors[0] if errors else done.stderr[-500:],
            "one_line": len(errors) == 1 and "Traceback" not in done.stderr, "size": size,
            "checkpoint_bytes": checkpoint_bytes, "before": before, "after": _newest_listed(checkpoint_dir),
            "unfinished": sorted(n for n in os.listdir(checkpoint_dir) if "_temp" in n)}


def _learning_curve(workdir):
    """{step: record} of a workdir's learning_curve.jsonl (the latest record of a step), as the package reads it."""
    records = {}
    try:
        with open(os.path.join(workdir, "learning_curve.jsonl")) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                records[int(record["step"])] = record
    except OSError:
        pass
    return records


def _event(k, kind, target, proc_or_code, log, outcome=None):
    return {"run": k, "kind": kind, "target": target, "returncode": proc_or_code, "resumed_from": _resumed_from(log),
            "reached": _last_step(log), "outcome": outcome,
            "warnings": [line.split("] ", 1)[-1].strip() for line in log.splitlines()
                         if "is unreadable" in line or "Moved the unreadable" in line]}


def _command(args, cache=None):
    """Runs `python -m hiabp_tf.<args>`; (exit status, stderr, stdout)."""
    env = _env() if cache is None else {**_env(), "XDG_CACHE_HOME": cache}
    done = subprocess.run([sys.executable, "-m", *args], env=env, cwd=REPO, capture_output=True, text=True)
    return done.returncode, done.stderr, done.stdout


def _tree(folder):
    """{relative path: SHA-256 (files) or "folder"} of everything under `folder`."""
    tree = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs:
            tree[os.path.relpath(os.path.join(root, name), folder)] = "folder"
        for name in names:
            tree[os.path.relpath(os.path.join(root, name), folder)] = _sha256(os.path.join(root, name))
    return tree


def _last_checkpoint_step(workdir):
    return int(_newest_listed(os.path.join(workdir, "checkpoints")).rsplit("-", 1)[1])


def _damage(path, how):
    """Damages the file or folder at `path`: "truncate" (to half), "remove", "folder" (a folder in its place),
    "file" (a file in its place), or text to write over it."""
    if how == "truncate":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    elif how == "remove":
        os.remove(path)
    elif how == "folder":
        os.remove(path) if os.path.isfile(path) else None
        os.makedirs(path)
    elif how == "file":
        shutil.rmtree(path, ignore_errors=True)
        with open(path, "w") as f:
            f.write("not a folder\n")
    else:
        with open(path, "w") as f:
            f.write(how)


def _nan_weights(path):
    code = ("import sys, numpy as np\n"
            "npz = dict(np.load(sys.argv[1]))\n"
            "key = sorted(npz)[0]\n"
            "npz[key] = npz[key].copy(); npz[key].flat[0] = np.nan\n"
            "np.savez(sys.argv[1], **npz)\n")
    subprocess.run([sys.executable, "-c", code, path], env=_env(), check=True)


def damaged_files_probe(workdir, soaked, command):
    """The --damaged_files fault (module docstring): [{file, damage, command, returncode, error, ok}] and the
    image-cache probe's outcome. `soaked` is the finished workdir (not changed), `command` its training command."""
    probe_dir = os.path.join(workdir, "damaged")
    shipped = os.path.join(probe_dir, "shipped")
    os.makedirs(probe_dir, exist_ok=True)
    code, err, _ = _command(["hiabp_tf.serving.ship", f"--workdir={soaked}", f"--out={shipped}"])
    if code != 0:
        return {"skipped": f"shipping the soaked run failed (exit status {code}): {err.strip()[-300:]}"}

    def copy(source, name):
        target = os.path.join(probe_dir, name)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
        return target

    def record(name):  # a run's record: its small files and record.json (experiments/records.py)
        target = os.path.join(probe_dir, name)
        os.makedirs(target)
        for file in ("config.json", "sittings.json", "learning_curve.jsonl"):
            shutil.copy(os.path.join(soaked, file), target)
        with open(os.path.join(target, "record.json"), "w") as f:
            json.dump({"step": 0, "workdir": soaked, "model": shipped}, f)
        return target

    train = [arg.replace(soaked, "{w}") for arg in command[2:]]
    cases = [  # (file, damage, folder maker, command args with {w}, expected: "error" or "goes on")
        ("record.json", '{"step": 35', record, ["hiabp_tf.evaluate", "--workdir={w}"], "error"),
        ("shipped.json", "remove", lambda n: copy(shipped, n), ["hiabp_tf.evaluate", "--workdir={w}"], "error"),
        ("shipped.json", "truncate", lambda n: copy(shipped, n),
         ["hiabp_tf.export", "--workdir={w}", "--out={w}/exported"], "error"),
        ("weights.npz", _nan_weights, lambda n: copy(shipped, n), ["hiabp_tf.evaluate", "--workdir={w}"], "error"),
        ("config.json", "folder", lambda n: copy(soaked, n), ["hiabp_tf.evaluate", "--workdir={w}"], "error"),
        ("tensorboard", "file", lambda n: copy(soaked, n), train + ["--num_steps=1000"], "error"),
        ("train.lock", "folder", lambda n: copy(soaked, n), train + ["--num_steps=1000"], "error"),
        # Five more steps: the sitting is recorded at their checkpoint, and the unreadable file kept aside.
        ("sittings.json", '[{"started": "x", "from_step": null, "to_step": 5, "seconds": 1}]',
         lambda n: copy(soaked, n), train + [f"--num_steps={_last_checkpoint_step(soaked) + 5}"], "goes on"),
    ]
    results = []
    for k, (file, how, make, args, expected) in enumerate(cases):
        folder = make(f"case{k + 1}")
        path = os.path.join(folder, file)
        how(path) if callable(how) else _damage(path, how)
        before = _tree(folder)
        args = [a.replace("{w}", folder) for a in args]
        returncode, err, _ = _command(args)
        errors_ = [line for line in err.splitlines() if line.startswith("error:")]
        one = len(errors_) == 1 and "Traceback" not in err
        after = _tree(folder)
        # train.lock names its last holder: a training rewrites it on taking the lock, before anything is checked.
        changed = sorted(name for name, digest in before.items() if after.get(name) != digest and name != "train.lock")
        if expected == "goes on":
            errors_ = [line.split("] ", 1)[-1] for line in err.splitlines() if "Moved the unreadable" in line][:1]
        if expected == "goes on":
            ok = returncode == 0 and "Traceback" not in err and any(
                name.startswith("sittings.json.unreadable") for name in os.listdir(folder))
        else:
            ok = returncode == 2 and one and file in errors_[0] and not changed
        results.append({"file": file, "damage": how.__name__.strip("_") if callable(how) else how,
                        "command": " ".join(a.replace(os.path.join(probe_dir, ""), "") for a in args[:2]),
                        "returncode": returncode, "error": errors_[0] if errors_ else err.strip()[-300:],
                        "changed": changed, "expected": expected, "ok": ok})
    return {"cases": results, "cache": _cache_probe(probe_dir, soaked)}


def _cache_probe(probe_dir, soaked):
    """Evaluates `soaked` on a folder of 30 digits, truncates the folder's image cache, evaluates again (the
    same scores, the cache rebuilt), then changes five images and evaluates a third time (a result of its
    own; the first one kept byte for byte)."""
    folder, cache = os.path.join(probe_dir, "digits"), os.path.join(probe_dir, "cache")
    code = ("import os, sys, tensorflow as tf\n"
            "from hiabp_tf.data import input_pipeline\n"
            "x = input_pipeline.mnist_5k_arrays()[2]\n"
            "os.makedirs(sys.argv[1], exist_ok=True)\n"
            "for i in range(int(sys.argv[2]), 30):\n"
            "    image = tf.io.encode_png(x[i + int(sys.argv[3])])\n"
            "    tf.io.write_file(os.path.join(sys.argv[1], f'{i:02d}.png'), image)\n")
    subprocess.run([sys.executable, "-c", code, folder, "0", "0"], env=_env(), check=True, capture_output=True)
    args = ["hiabp_tf.evaluate", f"--workdir={soaked}", f"--dataset=images:{folder},test_images=10"]
    first = _command(args, cache)
    caches = [os.path.join(cache, "hiabp_tf", "images", n) for n in os.listdir(os.path.join(cache, "hiabp_tf",
                                                                                            "images"))]
    for path in caches:
        _damage(path, "truncate")
    second = _command(args, cache)  # the same data: its result rewritten under the same name
    kept = {n: _sha256(os.path.join(soaked, n)) for n in os.listdir(soaked) if n.startswith("eval_images")}
    subprocess.run([sys.executable, "-c", code, folder, "25", "100"], env=_env(), check=True, capture_output=True)
    third = _command(args, cache)
    scores = [json.loads(out.strip().splitlines()[-1]) if code == 0 else {} for code, _, out in (first, second, third)]
    after = sorted(n for n in os.listdir(soaked) if n.startswith("eval_images"))
    first_kept = len(kept) == 1 and all(n in after and _sha256(os.path.join(soaked, n)) == d for n, d in kept.items())
    for name in after:  # the soaked workdir is compared with the uninterrupted one: leave it as it was
        os.remove(os.path.join(soaked, name))
    return {"returncodes": [first[0], second[0], third[0]],
            "rebuilt": "Ignoring the unreadable image cache" in second[1],
            "same": bool(scores[0]) and scores[0].get("mse_E") == scores[1].get("mse_E"),
            "results": len(after), "first_kept": first_kept,
            "tracebacks": sum("Traceback" in err for _, err, _ in (first, second, third))}


def soak(workdir, kills, num_steps, checkpoint_every, seed, save_kills=0, corrupt=False, second_training=False,
         stop_during_eval=False, disk_full=False, eval_every=1_000_000, damaged_files=False):
    rng = random.Random(seed)
    load = os.getloadavg()[0]
    reference = os.path.join(workdir, "uninterrupted")
    start = time.perf_counter()
    subprocess.run(_train_command(reference, num_steps, checkpoint_every, seed, eval_every), env=_env(), cwd=REPO,
                   check=True, capture_output=True)
    reference_seconds = time.perf_counter() - start

    soaked = os.path.join(workdir, "killed")
    checkpoint_dir = os.path.join(soaked, "checkpoints")
    command = _train_command(soaked, num_steps, checkpoint_every, seed, eval_every)
    # Kill moments, drawn once. A random kill comes as soon as the run logs that step (the next
    # step is then in flight, or a checkpoint being written); a save kill during the save that
    # follows the progress line of its checkpoint step. The faults come after the kills, then the
    # last run; the newest checkpoint is corrupted before the last kill (or the first fault), so
    # that the faults' checks (the run after each resumes from where it left) see intact files.
    faults = [kind for kind, wanted in (("stop_eval", stop_during_eval), ("disk_full", disk_full)) if wanted]
    horizon = int(num_steps * KILL_HORIZON) if faults else num_steps
    runs = kill_plan(rng, kills, save_kills, num_steps, checkpoint_every, horizon) + [(None, f) for f in faults]
    runs.append((None, None))
    corrupt_before = max(len(runs) - 1 - len(faults) - 1, 0) if faults else len(runs) - 1
    events, second, corruption, stop, full = [], None, None, None, None
    for k, (target, kind) in enumerate(runs):
        if corrupt and k == corrupt_before and os.path.exists(os.path.join(checkpoint_dir, "checkpoint")):
            corruption = dict(_corrupt_newest(checkpoint_dir), run=k + 1)
        if kind == "disk_full":
            full = dict(_disk_full_run(command, soaked), run=k + 1)
            if "skipped" not in full:
                events.append(_event(k + 1, kind, None, full["returncode"], full["log"]))
            log = full.get("log", "")
        else:
            proc = subprocess.Popen(command, env=_env(), cwd=REPO, stderr=subprocess.PIPE, text=True)
            if second_training and k == 0:
                second = _second_training(proc, soaked, command)
            seen, outcome, sent = [], None, None
            if kind == "stop_eval":
                text, target, sent = _stop_during_eval(proc, eval_every, num_steps)
                seen.append(text)
            elif kind is not None:
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
            events.append(_event(k + 1, kind, target, proc.returncode, log, outcome))
            if kind == "stop_eval":
                stop = {"run": k + 1, "step": target, "returncode": proc.returncode,
                        "seconds": round(time.monotonic() - sent, 1) if sent else None,
                        "saved": target is not None and _index_lists(checkpoint_dir, f"ckpt-{target}"),
                        "recorded": f"] step {target}: test" in log,  # this run's evaluation, cut short?
                        # An earlier run may have evaluated the step already (a kill after its evaluation).
                        "needed": target not in _learning_curve(soaked)}
        if stop is not None and k == stop["run"]:  # the run after the stop (0-based k is the next run)
            stop["evaluated_on_resume"] = f"Step {stop['step']} was not evaluated" in log
        if full is not None and "skipped" not in full and k == full["run"]:
            full["resumed_from_kept"] = events[-1]["resumed_from"] == int(full["before"].rsplit("-", 1)[1])
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
    damaged = damaged_files_probe(workdir, soaked, command) if damaged_files else None
    curves = {name: _learning_curve(path) for name, path in (("reference", reference), ("soaked", soaked))}
    return {"reference": _evaluate(reference), "soaked": _evaluate(soaked), "events": events, "redone": redone,
            "restore_ok": restore_ok, "restored": restored, "reference_seconds": reference_seconds,
            "second": second, "corruption": corruption, "workdir": workdir, "stop": stop, "disk_full": full,
            "curves_match": bool(curves["reference"]) and all(
                curves["soaked"].get(step, {}).get(key) == record.get(key)
                for step, record in curves["reference"].items() for key in ("mse_E", "mse_EL")),
            "curve_steps": sorted(curves["reference"]), "load": (load, os.getloadavg()[0], os.cpu_count()),
            "damaged": damaged}


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
             + (f"; the newest checkpoint's data file truncated to half before run {corruption.get('run', 'last')}"
                if corruption else "")
             + (f"; SIGTERM during an evaluation (every {settings['eval_every']} steps, 1,000 test images in two "
                "batches)" if result.get("stop") else "")
             + ("; one run on a file system too small for its next checkpoint" if result.get("disk_full") else "")
             + ".", "", _machine_line(result.get("load")), "",
             "| run | interrupted | exit status | resumed from step | last step logged |", "|---|---|---|---|---|"]
    for e in events:
        resumed = "killed during start-up" if e["resumed_from"] is None else e["resumed_from"]
        if e["kind"] is None:
            how = "no (finished)"
        elif e["returncode"] == 0:
            how = "too late: it had finished"
        elif e["kind"] == "save":
            how = f"killed during a save: {e['outcome']}"
        elif e["kind"] == "stop_eval":
            how = f"SIGTERM as the evaluation of step {e['target']} began"
        elif e["kind"] == "disk_full":
            how = "its disk full at its next checkpoint"
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
        last = next((e for e in events if e["run"] == corruption.get("run")), events[-1])
        fell_back = bool(last["warnings"]) and last["resumed_from"] is not None and last["resumed_from"] < int(
            corruption["checkpoint"].rsplit("-", 1)[1])
        checks += [fell_back, corruption["kept"]]
        lines.append(f"- Corrupted newest checkpoint: {corruption['file']} truncated from {corruption['size']:,} "
                     f"to {corruption['truncated_to']:,} bytes before run {last['run']}, which "
                     + (f"warned, fell back to step {last['resumed_from']} and "
                        + ("finished" if last["returncode"] == 0 else "trained on (until its kill)") if fell_back
                        else "DID NOT FALL BACK")
                     + f"; the damaged files were {'kept byte for byte' if corruption['kept'] else 'NOT KEPT'} in "
                     f"checkpoints/unreadable/ ({', '.join(corruption['aside']) or 'empty'}). Its warnings:")
        lines += [f"  - `{short(w)}`" for w in last["warnings"]]
    stop, full = result.get("stop"), result.get("disk_full")
    if stop:
        needed, done = stop.get("needed", True), stop.get("evaluated_on_resume", False)
        ok = (stop["returncode"] == 128 + signal.SIGTERM and stop["saved"] and not stop["recorded"]
              and done == needed)
        checks.append(ok)
        recorded = "RECORDED" if stop["recorded"] else "not recorded"
        saved = "saved" if stop["saved"] else "NOT SAVED"
        if needed:
            resumed = f"evaluated step {stop['step']} before training" if done else "DID NOT EVALUATE IT"
        else:
            resumed = (f"had no evaluation to redo (a run before had evaluated step {stop['step']})" if not done
                       else "EVALUATED IT AGAIN")
        lines.append(f"- Stop during an evaluation: SIGTERM on the progress line of step {stop['step']} (its "
                     f"evaluation comes next): run {stop['run']} exited with status {stop['returncode']} "
                     f"{stop['seconds']} s later, the evaluation {recorded}, ckpt-{stop['step']} {saved}; run "
                     f"{stop['run'] + 1} {resumed}.")
    if full and "skipped" in full:
        lines.append(f"- Full disk: not run: {full['skipped']}.")
    elif full:
        ok = (full["returncode"] == 2 and full["one_line"] and full["error"].startswith("error: no space left")
              and full["after"] == full["before"] and not full["unfinished"] and full.get("resumed_from_kept", False))
        checks.append(ok)
        kept = f"stayed {full['before']}" if full["after"] == full["before"] else f"CHANGED to {full['after']}"
        left = "no unfinished save left" if not full["unfinished"] else f"LEFT {', '.join(full['unfinished'])}"
        resumed = "resumed from it" if full.get("resumed_from_kept") else "DID NOT RESUME FROM IT"
        lines.append(f"- Full disk: run {full['run']} had its workdir on a {full['size'] / 2**20:.1f} MiB tmpfs (its "
                     f"files and half of one {full['checkpoint_bytes'] / 2**20:.1f} MiB checkpoint): exit status "
                     f"{full['returncode']}, {'one error line, no traceback' if full['one_line'] else 'NOT ONE LINE'}"
                     f"; the latest checkpoint {kept}, {left}; run {full['run'] + 1} {resumed}: "
                     f"`{short(full['error'])}`")
    if "curves_match" in result:
        checks.append(result["curves_match"])
        lines.append(f"- Learning curves (the evaluations during training, at steps "
                     f"{', '.join(str(s) for s in result['curve_steps'])}): "
                     + ("identical in both runs." if result["curves_match"] else "THEY DIFFER."))
    damaged = result.get("damaged")
    if damaged and "skipped" in damaged:
        lines.append(f"- Damaged files: not run: {damaged['skipped']}.")
    elif damaged:
        checks += [case["ok"] for case in damaged["cases"]]
        cache = damaged["cache"]
        cache_ok = (cache["returncodes"] == [0, 0, 0] and cache["rebuilt"] and cache["same"] and cache["results"] == 2
                    and cache["first_kept"] and not cache["tracebacks"])
        checks.append(cache_ok)
        passed = sum(case["ok"] for case in damaged["cases"])
        lines += [f"- Damaged files (after the last run, each in a copy of the finished workdir or of a model shipped "
                  f"from it): {passed} of {len(damaged['cases'])} handled as they must be: one `error:` line naming "
                  "the file, exit status 2, no traceback, nothing of the copy changed; or, for sittings.json, "
                  "training goes on and keeps the file aside.", "",
                  "  | file | damage | command | exit status | outcome |", "  |---|---|---|---|---|"]
        for case in damaged["cases"]:
            verdict = "right" if case["ok"] else "WRONG" + (f" (changed {', '.join(case['changed'])})"
                                                             if case["changed"] else "")
            lines.append(f"  | {case['file']} | {case['damage']} | `{case['command']}` | {case['returncode']} | "
                         f"{verdict}: `{short(case['error']).replace('|', '/')}` |")
        lines += ["", f"- Image cache: an evaluation on a folder of 30 digits, its cache truncated, evaluated again: "
                  f"exit statuses {', '.join(map(str, cache['returncodes']))}; the cache "
                  f"{'was decoded again (a warning naming it)' if cache['rebuilt'] else 'WAS NOT REBUILT'} and the "
                  f"scores {'are the same' if cache['same'] else 'DIFFER'}; with five images changed, a third "
                  f"evaluation wrote {cache['results'] - 1} result(s) of its own and the first was "
                  f"{'kept byte for byte' if cache['first_kept'] else 'NOT KEPT'}"
                  + ("." if not cache["tracebacks"] else f"; {cache['tracebacks']} TRACEBACKS.")]
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


def _machine_line(load) -> str:
    """Cores and load average: a soak on a shared machine has wall times that are not its own."""
    if not load:
        return ""
    start, end, cores = load
    shared = max(start, end) > 0.5 * (cores or 1)
    return (f"Machine: {cores} cores, load average {start:.1f} at the start and {end:.1f} at the end"
            + (": shared with other work, so the wall times are not the soak's alone." if shared else "."))


def short_line(text, folder, limit=400):
    """One log line for the report: paths relative to the soak's `folder`, long lines cut."""
    text = text.replace(os.path.join(os.path.abspath(folder), ""), "")
    return text if len(text) <= limit else text[:limit] + " ..."


def main():
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="hiabp_soak_")
    settings = dict(kills=FLAGS.kills, save_kills=FLAGS.save_kills, num_steps=FLAGS.num_steps,
                    checkpoint_every=FLAGS.checkpoint_every, eval_every=FLAGS.eval_every, seed=FLAGS.seed,
                    corrupt=FLAGS.corrupt, second_training=FLAGS.second_training,
                    stop_during_eval=FLAGS.stop_during_eval, disk_full=FLAGS.disk_full,
                    damaged_files=FLAGS.damaged_files)
    result = soak(workdir, FLAGS.kills, FLAGS.num_steps, FLAGS.checkpoint_every, FLAGS.seed,
                  save_kills=FLAGS.save_kills, corrupt=FLAGS.corrupt, second_training=FLAGS.second_training,
                  stop_during_eval=FLAGS.stop_during_eval, disk_full=FLAGS.disk_full, eval_every=FLAGS.eval_every,
                  damaged_files=FLAGS.damaged_files)
    ok = write_report(FLAGS.out, result, settings)
    print(open(FLAGS.out).read())
    return 0 if ok else 1


if __name__ == "__main__":
    cli.run(main, define_flags, workdir_flag=None)

"""Bad input stops before any training with a message naming the flag or file (issue: clear errors)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from hiabp_tf import config as config_lib
from hiabp_tf import evaluate
from hiabp_tf import train
from hiabp_tf.checks import cli
from hiabp_tf.checks import errors
from hiabp_tf.data import input_pipeline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _npz(tmp_path, name, **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return f"npz:{path}"


def _cases(tmp_path):
    good = np.zeros((20, 28, 28), np.uint8)
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip file at all")
    (tmp_path / "empty.npz").write_bytes(b"")
    not_a_dir = tmp_path / "a_file"
    not_a_dir.write_text("x")
    return {
        "unknown dataset": (dict(dataset="no_such_data"), "--dataset"),
        "missing npz": (dict(dataset=f"npz:{tmp_path / 'missing.npz'}"), "not found"),
        "empty npz": (dict(dataset=f"npz:{tmp_path / 'empty.npz'}"), "empty.npz"),
        "corrupt npz": (dict(dataset=f"npz:{tmp_path / 'corrupt.npz'}"), "corrupt.npz"),
        "wrong keys": (dict(dataset=_npz(tmp_path, "keys.npz", train=good, test=good)), "x_train"),
        "float dtype with NaN": (dict(dataset=_npz(tmp_path, "nan.npz", x_train=np.full((4, 28, 28), np.nan),
                                                   x_test=np.zeros((4, 28, 28)))), "uint8"),
        "wrong rank": (dict(dataset=_npz(tmp_path, "rank.npz", x_train=np.zeros((4, 784), np.uint8),
                                         x_test=np.zeros((4, 784), np.uint8))), "rank"),
        "two channels": (dict(dataset=_npz(tmp_path, "ch.npz", x_train=np.zeros((4, 28, 28, 2), np.uint8),
                                           x_test=np.zeros((4, 28, 28, 2), np.uint8))), "channels"),
        "unsupported image size": (dict(dataset=_npz(tmp_path, "size.npz", x_train=np.zeros((20, 30, 30), np.uint8),
                                                     x_test=np.zeros((4, 30, 30), np.uint8)), batch_size=10),
                                   "image shape"),
        "L = 0": (dict(num_layers=0, latent_dims=()), "--num_layers"),
        "L = 5": (dict(num_layers=5, latent_dims=(2,) * 5), "--num_layers"),
        "latent list length": (dict(num_layers=2, latent_dims=(4,)), "--latent_dims"),
        "T < 0": (dict(langevin_steps=-1), "--langevin_steps"),
        "s <= 0": (dict(step_size=0.0), "--step_size"),
        "sigma <= 0": (dict(sigma=-0.3), "--sigma"),
        "batch larger than data": (dict(batch_size=5000), "--batch_size"),
        "unknown mask": (dict(mask="triangle"), "--mask"),
        "workdir not writable": (dict(workdir=str(not_a_dir / "run")), "--workdir"),
    }


CASE_NAMES = ["unknown dataset", "missing npz", "empty npz", "corrupt npz", "wrong keys", "float dtype with NaN",
              "wrong rank", "two channels", "unsupported image size", "L = 0", "L = 5", "latent list length",
              "T < 0", "s <= 0", "sigma <= 0", "batch larger than data", "unknown mask", "workdir not writable"]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_training_input_is_a_clear_error_before_training(case, tmp_path):
    """Each bad input raises one of the user errors (printed as one `error:` line, exit 2) naming the
    flag or file, and no checkpoint is written."""
    overrides, expected = _cases(tmp_path)[case]
    workdir = overrides.pop("workdir", str(tmp_path / "run"))
    settings = dict(dataset="mnist_5k", latent_dims=(4,), width=4, batch_size=50)
    with pytest.raises(errors.USER_ERRORS) as error:
        train.train(config_lib.RunConfig(**{**settings, **overrides}), workdir, 2)
    assert expected in str(error.value)
    assert not os.path.isdir(os.path.join(workdir, "checkpoints"))


@pytest.mark.slow
def test_checkpoint_of_another_architecture_or_method_is_refused(tmp_path):
    """A workdir trained with other networks or another method is not resumed."""
    settings = dict(dataset="mnist_5k", latent_dims=(4,), width=4, batch_size=50)
    train.train(config_lib.RunConfig(**settings), str(tmp_path), 1)
    for other in (dict(width=8), dict(method="vae")):
        with pytest.raises(errors.WorkdirError, match="--workdir"):
            train.train(config_lib.RunConfig(**{**settings, **other}), str(tmp_path), 2)


def test_evaluate_without_checkpoint_and_tfds_offline(tmp_path, monkeypatch):
    """evaluate on an empty folder names --workdir; a tfds dataset that cannot be downloaded fails
    at once with how to supply it."""
    with pytest.raises(errors.WorkdirError, match="--workdir"):
        evaluate.evaluate(str(tmp_path))
    monkeypatch.setattr(input_pipeline, "_host_reachable", lambda *a, **k: False)
    with pytest.raises(input_pipeline.DataError, match="--data_dir"):
        train.train(config_lib.RunConfig(dataset="svhn_cropped", latent_dims=(4,), width=4), str(tmp_path / "r"), 1,
                    data_dir=str(tmp_path / "tfds"))


@pytest.mark.slow
def test_command_line_errors_are_one_paragraph_without_traceback(tmp_path):
    """From the shell: a missing flagfile and an invalid flag value exit non-zero with a short message
    and no stack trace; --verbosity=1 adds the trace for bad values."""
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    missing = subprocess.run([sys.executable, "-m", "hiabp_tf.train", "--flagfile=flags/no_such.flags",
                              f"--workdir={tmp_path}"], cwd=REPO, env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "no_such.flags" in missing.stderr and "Traceback" not in missing.stderr
    bad = subprocess.run([sys.executable, "-m", "hiabp_tf.train", "--step_size=0", f"--workdir={tmp_path}"],
                         cwd=REPO, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "error: --step_size (s) must be > 0" in bad.stderr
    assert "Traceback" not in bad.stderr
    verbose = subprocess.run([sys.executable, "-m", "hiabp_tf.train", "--step_size=0", "--verbosity=1",
                              f"--workdir={tmp_path}"], cwd=REPO, env=env, capture_output=True, text=True)
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr


def test_every_command_checks_its_arguments_and_workdir_the_same_way():
    from absl import app
    with pytest.raises(app.UsageError, match="Unexpected arguments: extra"):
        cli.check_command_line(["prog", "extra"], "w")
    with pytest.raises(app.UsageError, match="--workdir is required: a folder written by"):
        cli.check_command_line(["prog"], None)
    cli.check_command_line(["prog"], "w")  # fine


def test_messages_name_the_flag_and_say_what_the_path_is(tmp_path):
    """Issue 22, class 7: --eval_examples=0 and evaluate's --batch_size=0 name their flag (they said
    "evaluation batch size must be at least 1"); a workdir that is a symbolic link loop says so (it
    said "File exists"), for training and for every reader; so do a dangling link, a file, and an
    --out of export or inpaint that is a loop."""
    import hiabp_tf  # pylint: disable=import-outside-toplevel
    from hiabp_tf.serving import export  # pylint: disable=import-outside-toplevel
    from hiabp_tf.serving import inpaint  # pylint: disable=import-outside-toplevel
    config = config_lib.RunConfig(dataset="mnist_5k", latent_dims=(4,), width=4, batch_size=50)
    with pytest.raises(errors.ConfigError, match=r"^--eval_examples=0 must be an integer in 1\.\."):
        train.train(config, str(tmp_path / "run"), 1, eval_examples=0)
    with pytest.raises(errors.ConfigError, match=r"^--batch_size=0 must be an integer in 1\.\."):
        evaluate.evaluate(str(tmp_path / "run"), batch_size=0)
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    dangling = tmp_path / "dangling"
    os.symlink(tmp_path / "nowhere", dangling)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for path, said in ((loop, "is a symbolic link loop"),
                       (dangling, "is a symbolic link to .*nowhere, which does not exist"),
                       (a_file, "is a file, not a folder")):
        for read in (evaluate.evaluate, hiabp_tf.load):
            with pytest.raises(errors.WorkdirError, match=rf"^--workdir={path} {said}"):
                read(str(path))
    with pytest.raises(errors.WorkdirError, match=rf"^--workdir={loop} is a symbolic link loop .*; give a folder"):
        train.train(config, str(loop), 1)
    with pytest.raises(errors.ConfigError, match=rf"^--out={loop} is a symbolic link loop"):
        export.export(str(tmp_path / "run"), str(loop))
    with pytest.raises(errors.ConfigError, match=rf"^--out={loop} is a symbolic link loop"):
        inpaint.inpaint_files(str(tmp_path / "run"), "x.png", "pepper", str(loop))
    assert os.path.islink(loop) and os.path.islink(dangling)  # left as they were

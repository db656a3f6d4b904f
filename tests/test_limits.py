"""Issue 22, class 1: every integer that reaches a tensor is range-checked where it enters (hiabp_tf/checks/limits.py),
so no count wraps modulo 2**32: train's flags, evaluate's, inpaint's, disentangle's and the Python API's."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from hiabp_tf import config as config_lib
from hiabp_tf import evaluate
from hiabp_tf import methods
from hiabp_tf import train
from hiabp_tf.checks import errors
from hiabp_tf.checks import limits
from hiabp_tf.serving import api
from hiabp_tf.serving import inpaint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
TINY = dict(dataset="mnist_5k", num_layers=2, latent_dims=(4, 4), width=4, batch_size=50)
INT32 = r"0\.\.2147483647 \(2\*\*31 - 1\)"


@pytest.fixture(scope="module")
def untrained():
    """A TrainedModel of freshly built (untrained) tiny networks: enough to check the API's arguments."""
    config = config_lib.RunConfig(**TINY)
    return api.TrainedModel(methods.build_model(config, (28, 28, 1), 4000), config, (28, 28, 1), step=0)


def test_check_int_takes_integers_in_range_and_names_the_flag():
    assert limits.check_int(np.int64(7), "--x", 0, 7) == 7 and type(limits.check_int(np.int64(7), "--x", 0, 7)) is int
    for bad in (-1, 8, 2**32 + 3, 7.0, True, "7", None):
        with pytest.raises(errors.ConfigError, match=r"^--x=.* must be an integer in 0\.\.7\.$"):
            limits.check_int(bad, "--x", 0, 7)
    assert isinstance(errors.ConfigError("x"), ValueError)  # the API's bad arguments are ValueErrors


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(config_lib.RunConfig)
                                  if f.type.split(" ")[0] == "int"])
def test_every_integer_setting_is_refused_past_int32(name):
    """Every integer field of RunConfig (so every integer flag of train, a setting added later too)
    refuses 2**32 (which int32 would take as 0) with an error naming its flag."""
    with pytest.raises(errors.ConfigError, match=rf"^--{name}=4294967296 must be an integer in \d+\.\.\d+"):
        config_lib.RunConfig(**{**TINY, name: 2**32})


def test_train_settings_out_of_range_are_refused_before_anything_is_written(tmp_path):
    """The issue's `train --langevin_steps=4294967296`, and sizes and steps of my own."""
    cases = {
        "langevin_steps": (dict(langevin_steps=4294967296),
                           rf"--langevin_steps=4294967296 must be an integer in {INT32}"),
        "eval_langevin_steps": (dict(eval_langevin_steps=2**31), "--eval_langevin_steps=2147483648"),
        "width": (dict(width=2**40), rf"--width=1099511627776 must be an integer in 1\.\.{limits.WIDTH_MAX}"),
        "latent size": (dict(latent_dims=(4, 2**31)), r"--latent_dims=2147483648 must be an integer in 1\.\."),
        "batch": (dict(batch_size=2**31), "--batch_size=2147483648"),
        "float width": (dict(width=4.5), r"--width=4\.5 must be an integer"),
        "infinite sigma": (dict(sigma=float("inf")), r"--sigma=inf must be a finite number"),
        "NaN step size": (dict(step_size=float("nan")), r"--step_size=nan must be a finite number"),
    }
    for overrides, expected in cases.values():
        with pytest.raises(errors.ConfigError, match=expected):
            train.train(config_lib.RunConfig(**{**TINY, **overrides}), str(tmp_path / "run"), 1)
    config = config_lib.RunConfig(**TINY)
    for kwargs, expected in ((dict(num_steps=2**31), rf"--num_steps=2147483648 must be an integer in {INT32}"),
                             (dict(num_steps=-1), "--num_steps=-1"),
                             (dict(num_steps=1, eval_examples=0), r"--eval_examples=0 must be an integer in 1\.\."),
                             (dict(num_steps=1, checkpoint_every=2**31), "--checkpoint_every=2147483648"),
                             (dict(num_steps=1, keep_checkpoints=0), "--keep_checkpoints=0")):
        with pytest.raises(errors.ConfigError, match=expected):
            train.train(config, str(tmp_path / "run"), **kwargs)
    assert not (tmp_path / "run").exists()
    # The tops of the ranges are settings, not errors.
    top = config_lib.RunConfig(**{**TINY, "langevin_steps": limits.LANGEVIN_STEPS_MAX, "width": limits.WIDTH_MAX})
    assert top.langevin_steps == 2**31 - 1
    config_lib.check_train_flags(num_steps=limits.NUM_STEPS_MAX, eval_examples=1)


def test_evaluate_and_inpaint_refuse_counts_out_of_range_before_reading_the_workdir(tmp_path):
    """The issue's `evaluate --langevin_steps=4294967299` (scored 3 steps, wrote ..._T4294967299.json),
    and evaluate's --batch_size=0 and inpaint's T of my own: refused before the workdir is read."""
    workdir = str(tmp_path)  # no run at all: the range check comes first
    for kwargs, expected in ((dict(langevin_steps=4294967299), rf"^--langevin_steps=4294967299 must be an integer "
                                                               rf"in {INT32}"),
                             (dict(langevin_steps=-1), "--langevin_steps=-1"),
                             (dict(batch_size=0), r"^--batch_size=0 must be an integer in 1\.\."),
                             (dict(batch_size=2**31), "--batch_size=2147483648")):
        with pytest.raises(errors.ConfigError, match=expected):
            evaluate.evaluate(workdir, **kwargs)
    assert os.listdir(workdir) == []
    with pytest.raises(errors.ConfigError, match="--langevin_steps=4294967296"):
        inpaint.inpaint_files(workdir, "x.png", "pepper", str(tmp_path / "out"), langevin_steps=2**32)


def test_api_langevin_steps_and_sample_counts_are_range_checked(untrained):
    """The issue's `encode(x, langevin_steps=2**40)` (returned the T = 0 result at once), and my own:
    reconstruct and inpaint with T past int32, sample counts of 0 and past the memory bound."""
    x = np.zeros((2, 28, 28, 1), np.float32)
    with pytest.raises(ValueError, match=rf"^langevin_steps=1099511627776 must be an integer in {INT32} \(or None"):
        untrained.encode(x, langevin_steps=2**40)
    with pytest.raises(ValueError, match="langevin_steps=2147483648"):
        untrained.reconstruct(x, langevin_steps=2**31)
    with pytest.raises(ValueError, match="langevin_steps=True"):
        untrained.inpaint(x, np.ones((28, 28)), langevin_steps=True)
    most = limits.max_samples((28, 28, 1))
    assert most == 2**31 // (4 * 784)
    for n in (0, most + 1, 2**32):
        with pytest.raises(ValueError, match=rf"^n={n} must be an integer in 1\.\.{most} \(at most 2 GiB"):
            untrained.sample(n)
    assert untrained.encode(x, langevin_steps=1, seed=0)[0].shape == (2, 4)  # in range: computed


def test_figure_panel_sides_are_bounded():
    """disentangle's --rows / --cols: every image of a panel is decoded at once."""
    assert limits.check_figure_side(limits.FIGURE_SIDE_MAX, "--cols") == 32
    for bad in (0, limits.FIGURE_SIDE_MAX + 1, 10**6):
        with pytest.raises(errors.ConfigError, match=rf"--rows={bad} must be an integer in 1\.\.32 \(every image"):
            limits.check_figure_side(bad, "--rows")


@pytest.mark.slow
def test_out_of_range_counts_on_the_command_line_are_one_error_line(tmp_path):
    """From the shell: exit status 2, one `error:` naming the flag and the range, no traceback,
    nothing written (the issue's evaluate, train and disentangle examples)."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    for command, flag in ((["hiabp_tf.evaluate", "--langevin_steps=4294967299"], "--langevin_steps=4294967299"),
                          (["hiabp_tf.train", "--langevin_steps=4294967296", "--num_steps=1"],
                           "--langevin_steps=4294967296"),
                          (["hiabp_tf.disentangle", "--rows=100000"], "--rows=100000")):
        done = subprocess.run([sys.executable, "-m", *command, f"--workdir={workdir}"], cwd=REPO, env=ENV,
                              capture_output=True, text=True)
        assert done.returncode == 2, done.stderr[-2000:]
        assert f"error: {flag} must be an integer in" in done.stderr and "Traceback" not in done.stderr
        assert os.listdir(workdir) == []

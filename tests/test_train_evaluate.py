"""End to end: train.py and evaluate.py on mnist_5k with tiny networks (offline, a minute or so)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hiabp_tf import config as config_lib
from hiabp_tf import evaluate
from hiabp_tf import train
from hiabp_tf.checks import errors
from hiabp_tf.core import hardware
from hiabp_tf.data import input_pipeline
from hiabp_tf.runtime import sittings
from hiabp_tf.runtime import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Small enough for CI (0.1 to 0.3 s per step on one thread, CPU depending); lr 1e-3 so that 150 steps learn clearly.
TINY = dict(dataset="mnist_5k", num_layers=1, latent_dims=(16,), width=8, batch_size=100, seed=0,
            learning_rate=1e-3)


def _train(workdir, num_steps, **overrides):
    config = config_lib.RunConfig(**{**TINY, **overrides})
    return train.train(config, str(workdir), num_steps, log_every=50, eval_every=10**6,
                       eval_examples=200, checkpoint_every=50)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny IABP trained for 150 steps, plus its score at step 0 (before any update)."""
    workdir = tmp_path_factory.mktemp("iabp")
    _train(workdir, 0)
    before = evaluate.evaluate(str(workdir))
    _train(workdir, 150)
    return workdir, before


@pytest.mark.slow
def test_training_lowers_test_mse_and_langevin_beats_the_initializer(trained):
    """A short run lowers the test [E+L] MSE, and [E+L] (encoder + Langevin) beats [E] alone."""
    workdir, before = trained
    after = evaluate.evaluate(str(workdir))
    assert before["step"] == 0 and after["step"] == 150
    # Untrained, the MSE is ~0.15; 150 updates bring it to ~0.06 (below the 0.067 of predicting
    # the mean training image). Require a 40% drop.
    assert after["mse_EL"] < 0.6 * before["mse_EL"], (before, after)
    assert after["mse_EL"] < after["mse_E"], after


@pytest.mark.slow
def test_evaluate_scores_the_whole_test_split_and_writes_json(trained):
    """evaluate covers all 1,000 mnist_5k test images and writes the JSON it returns."""
    workdir, _ = trained
    result = evaluate.evaluate(str(workdir), batch_size=300)  # 300 does not divide 1000
    assert result["num_examples"] == 1000 and result["dataset"] == "mnist_5k"
    with open(os.path.join(workdir, "eval_mnist_5k_test.json")) as f:
        assert json.load(f) == result
    # The batch size does not change the score beyond float rounding (noise is seeded per batch,
    # so compare [E], which is deterministic).
    other = evaluate.evaluate(str(workdir), batch_size=1000)
    assert other["mse_E"] == pytest.approx(result["mse_E"], rel=1e-5)


@pytest.mark.slow
def test_evaluate_on_other_data_of_the_same_shape(trained, tmp_path):
    """--dataset=npz:... scores a model on held-out data; a different image shape is refused."""
    workdir, _ = trained
    x_train, _, x_test, _ = input_pipeline.mnist_5k_arrays()
    path = tmp_path / "held_out.npz"
    np.savez(path, x_train=x_train[:10, ..., 0], x_test=x_test[:37, ..., 0])
    result = evaluate.evaluate(str(workdir), dataset=f"npz:{path}")
    assert result["num_examples"] == 37 and result["dataset"] == f"npz:{path}"
    # Named by the file's content (tests/test_result_names.py): eval_npz-held_out-<digest>_test.json.
    assert os.path.isfile(evaluate.result_path(str(workdir), f"npz:{path}", "test"))
    assert [n for n in os.listdir(workdir) if n.startswith("eval_npz-held_out-") and n.endswith("_test.json")]
    wrong = tmp_path / "rgb.npz"
    np.savez(wrong, x_train=np.zeros((4, 32, 32, 3), np.uint8), x_test=np.zeros((4, 32, 32, 3), np.uint8))
    with pytest.raises(input_pipeline.DataError, match="trained on"):
        evaluate.evaluate(str(workdir), dataset=f"npz:{wrong}")


@pytest.mark.slow
def test_resume_continues_step_and_optimizer_state(tmp_path):
    """Train N steps, stop, rerun to 2N: the step counter, optimiser iterations and moments continue."""
    workdir = tmp_path / "run"
    first = _train(workdir, 4)
    moments = [v.numpy().copy() for v in first.generator_optimizer.variables]
    assert int(first.generator_optimizer.iterations.numpy()) == 4

    # Restore without training: the optimiser state is exactly the saved one.
    restored = _train(workdir, 4)
    for saved, loaded in zip(moments, restored.generator_optimizer.variables):
        np.testing.assert_array_equal(saved, loaded.numpy())

    resumed = _train(workdir, 8)
    assert int(resumed.generator_optimizer.iterations.numpy()) == 8
    assert int(resumed.encoder_optimizer.iterations.numpy()) == 8
    _, _, _, step = workdir_lib.restore(str(workdir))
    assert step == 8
    names = sorted(os.listdir(workdir / "checkpoints"))
    assert "ckpt-4.index" in names and "ckpt-8.index" in names
    # Two sittings advanced the run (the restore-only call did not): each says where and how long.
    recorded = sittings.read(str(workdir))
    assert [(s["from_step"], s["to_step"], s["precision"]) for s in recorded] == [(0, 4, "float32"), (4, 8, "float32")]
    assert all(s["seconds"] > 0 and s["machine"].startswith(hardware.describe()) for s in recorded)
    assert recorded[0]["started"] < recorded[1]["started"]


@pytest.mark.slow
def test_workdir_of_other_networks_is_refused(tmp_path):
    """Resuming a workdir with other networks fails with a message naming --workdir."""
    workdir = tmp_path / "run"
    _train(workdir, 1)
    with pytest.raises(errors.WorkdirError, match="--workdir"):
        _train(workdir, 2, num_layers=2, latent_dims=(8, 8))


def test_evaluate_without_checkpoint_is_a_clear_error(tmp_path):
    """evaluate on a folder that holds no training run names --workdir and what to do."""
    with pytest.raises(errors.WorkdirError, match="--workdir"):
        evaluate.evaluate(str(tmp_path))


@pytest.mark.slow
def test_command_line_train_then_evaluate(tmp_path):
    """`python -m hiabp_tf.train` with a flagfile, then `python -m hiabp_tf.evaluate`, whose last
    stdout line is one JSON object with the documented keys; a bad flag exits 2 with one line."""
    workdir = tmp_path / "cli"
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-m", "hiabp_tf.train", f"--flagfile={REPO}/flags/mnist5k_iabp.flags",
                    f"--workdir={workdir}", "--num_steps=2", "--width=4", "--batch_size=20", "--eval_every=2",
                    "--eval_examples=20"], check=True, cwd=REPO, env=env, capture_output=True)
    out = subprocess.run([sys.executable, "-m", "hiabp_tf.evaluate", f"--workdir={workdir}"],
                         check=True, cwd=REPO, env=env, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert {"mse_E", "mse_EL", "dataset", "num_examples", "step"} <= result.keys()
    assert result["step"] == 2 and result["num_examples"] == 1000

    bad = subprocess.run([sys.executable, "-m", "hiabp_tf.train", f"--workdir={tmp_path / 'bad'}",
                          "--dataset=no_such_data"], cwd=REPO, env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "error: Unknown --dataset='no_such_data'" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_bfloat16_training_learns_and_is_recorded(tmp_path):
    """--precision=bfloat16 trains (losses fall), is recorded in config.json and scored in it."""
    model = _train(tmp_path, 60, precision="bfloat16", langevin_steps=5)
    assert model.generator.output_block.compute_dtype == "bfloat16"
    with open(os.path.join(tmp_path, workdir_lib.CONFIG_FILE)) as f:
        assert json.load(f)["config"]["precision"] == "bfloat16"
    config, _, _ = workdir_lib.load_run(str(tmp_path))
    assert config.precision == "bfloat16"
    result = evaluate.evaluate(str(tmp_path))
    assert np.isfinite(result["mse_EL"]) and result["mse_EL"] < 0.12  # untrained: ~0.15


def test_unknown_precision_names_the_flag():
    with pytest.raises(errors.ConfigError, match="--precision"):
        config_lib.RunConfig(precision="float16")

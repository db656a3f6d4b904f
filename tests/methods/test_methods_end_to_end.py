"""Every method of Table 1 through the same train.py / evaluate.py / report.py path (tiny, offline)."""

import os

import numpy as np
import pytest

from hiabp_tf import config as config_lib
from hiabp_tf import evaluate
from hiabp_tf import methods
from hiabp_tf import train
from hiabp_tf.checks import errors
from hiabp_tf.experiments import plan
from hiabp_tf.experiments import report
from hiabp_tf.runtime import workdir as workdir_lib

LAYERS = {"hiabp": 2, "vae": 1, "vlae": 2, "lvae": 2, "lvae_all_layers": 2, "abp": 1, "abp_persistent": 1}
SCORES = {"hiabp": {"mse_E", "mse_EL", "mse_EL_det"}, "vae": {"mse_E"}, "vlae": {"mse_E"}, "lvae": {"mse_E"},
          "lvae_all_layers": {"mse_E"}, "abp": {"mse_L"}, "abp_persistent": {"mse_L"}}


def _config(method, **overrides):
    num_layers = LAYERS[method]
    return config_lib.RunConfig(method=method, dataset="mnist_5k", num_layers=num_layers,
                                latent_dims=(4,) * num_layers, width=4, batch_size=50, langevin_steps=3,
                                **overrides)


def _train(config, workdir, steps):
    return train.train(config, str(workdir), steps, log_every=2, eval_every=2, eval_examples=20,
                       checkpoint_every=2)


def test_every_table1_method_is_registered():
    """The --method flag offers every row of Table 1."""
    assert set(methods.METHODS) == set(LAYERS)


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    """Each method trained for 2 steps and evaluated with the same protocol."""
    out = {}
    for method in LAYERS:
        workdir = tmp_path_factory.mktemp(method)
        _train(_config(method), workdir, 2)
        out[method] = (workdir, evaluate.evaluate(str(workdir), batch_size=500))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(LAYERS))
def test_method_trains_and_evaluates_with_its_scores(workdirs, method):
    """Training writes checkpoints; evaluate scores all 1,000 test images with the method's
    reconstructions ([E], [E+L] both ways, or [L]) and leaves the others null."""
    _, result = workdirs[method]
    assert result["method"] == method and result["step"] == 2 and result["num_examples"] == 1000
    present = {k for k in ("mse_E", "mse_EL", "mse_L", "mse_EL_det") if result[k] is not None}
    assert present == SCORES[method]
    assert all(0.0 < result[k] < 1.0 for k in present)


def test_vae_with_two_layers_is_a_flag_error():
    """--method=vae with --num_layers=2 names the flag."""
    with pytest.raises(errors.ConfigError, match="--num_layers"):
        config_lib.RunConfig(method="vae", num_layers=2, latent_dims=(4, 4))


@pytest.mark.slow
def test_persistent_chains_survive_resume(tmp_path):
    """ABP persistent: the chains are in the checkpoint, restored exactly, and keep moving after resume."""
    workdir = tmp_path / "abp_p"
    config = _config("abp_persistent")
    first = _train(config, workdir, 2)
    chains = [c.numpy().copy() for c in first.chains]
    restored, _, _, step = workdir_lib.restore(str(workdir))
    assert step == 2
    for saved, loaded in zip(chains, restored.chains):
        np.testing.assert_array_equal(saved, loaded.numpy())
    resumed = _train(config, workdir, 4)
    assert not np.array_equal(chains[0], resumed.chains[0].numpy())
    assert resumed.chains[0].shape == (4000, 4)  # one chain per mnist_5k training image


@pytest.mark.slow
def test_persistent_eval_uses_its_documented_test_steps(tmp_path):
    """--eval_langevin_steps sets the test-time Langevin steps that evaluate reports and uses."""
    workdir = tmp_path / "abp_p60"
    _train(_config("abp_persistent", eval_langevin_steps=7), workdir, 1)
    assert evaluate.evaluate(str(workdir))["langevin_steps"] == 7
    assert evaluate.evaluate(str(workdir), langevin_steps=0)["langevin_steps"] == 0


@pytest.mark.slow
def test_table1_report_has_every_row(workdirs, tmp_path):
    """report.write_table1 fills each row of the paper's layout from the evaluate JSON files."""
    keyed = {("mnist_5k", "vae"): str(workdirs["vae"][0]), ("mnist_5k", "vlae"): str(workdirs["vlae"][0]),
             ("mnist_5k", "lvae"): str(workdirs["lvae"][0]), ("mnist_5k", "abp"): str(workdirs["abp"][0]),
             ("mnist_5k", "abp_persistent"): str(workdirs["abp_persistent"][0]),
             ("mnist_5k", "iabp"): str(workdirs["hiabp"][0])}
    path = report.write_table1(str(tmp_path), "table1.md", "Table 1", keyed, "pytest", num_images=4)
    text = open(path).read()
    for row, label, score in report.TABLE1_ROWS:  # the paper's rows, run or not; ours only where planned
        assert (f"| {label} |" in text) == (row not in plan.EXTRA_ROWS), label
    iabp_el = workdirs["hiabp"][1]["mse_EL"]
    assert f"| IABP [E+L] (L=1) | {iabp_el:.5f} |" in text
    assert "| HiABP [E+L] (L=4) | not run |" in text
    assert os.path.isfile(tmp_path / "reconstructions_mnist_5k_abp.png")

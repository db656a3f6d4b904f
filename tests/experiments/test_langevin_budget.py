"""Quality per unit of compute (hiabp_tf.experiments.langevin_budget): the comparison sentence on synthetic
numbers, the flagfile reader, and the whole experiment end to end on tiny runs."""

import dataclasses
import glob
import json
import os
import subprocess
import sys

import pytest

from hiabp_tf import config as config_lib
from hiabp_tf.checks import errors
from hiabp_tf.experiments import langevin_budget as lb

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = {"num_steps": 2, "width": 4, "batch_size": 50}

# Synthetic {T: test MSE}: ABP's best is 0.0528 at T = 60; IABP first gets <= 0.0528 at T = 5.
ABP_MSE = {1: 0.089, 2: 0.081, 5: 0.068, 10: 0.061, 15: 0.058, 30: 0.0548, 60: 0.0528}
IABP_MSE = {1: 0.0587, 2: 0.0578, 5: 0.0525, 10: 0.0510, 15: 0.0500, 30: 0.0490, 60: 0.0480}


def test_iabp_reaching_abp_best_with_fewer_steps():
    text = lb.steps_statement(IABP_MSE, ABP_MSE)
    assert text == ("IABP reaches ABP's best test MSE (0.05280 at T=60) with T=5 (test MSE 0.05250), "
                    "i.e. 12 x fewer Langevin steps.")


def test_equal_mse_counts_as_reached_and_abp_ties_take_the_smallest_t():
    abp = {5: 0.06, 10: 0.05, 30: 0.05}  # best 0.05, first at T = 10
    assert "(0.05000 at T=10) with T=2 " in lb.steps_statement({1: 0.07, 2: 0.05, 5: 0.04}, abp)
    assert lb.steps_statement({1: 0.07, 2: 0.05}, abp).endswith("i.e. 5 x fewer Langevin steps.")
    assert lb.steps_statement({10: 0.05}, abp).endswith("with the same number of Langevin steps.")
    assert "1.5 x fewer" in lb.steps_statement({2: 0.09, 10: 0.049}, {15: 0.05})


def test_iabp_needing_more_steps_or_never_reaching_is_said_plainly():
    more = lb.steps_statement({5: 0.08, 30: 0.049}, {10: 0.05})
    assert more.endswith("i.e. 3 x more Langevin steps (IABP needs more steps than ABP here).")
    never = lb.steps_statement({1: 0.07, 5: 0.06}, {10: 0.05, 2: 0.09})
    assert never == ("IABP never reaches ABP's best test MSE (0.05000 at T=10): at no T tried (1, 5) is its "
                     "test MSE <= 0.05000; IABP's best is 0.06000 at T=5.")
    assert lb.wall_time_statement({1: 0.07}, {10: 0.05}, {1: 3.0}, {10: 9.0}).startswith(
        "In training wall time: no comparison, since IABP never reaches")


def test_wall_time_compares_fastest_reaching_iabp_run_with_abp_best_run():
    iabp_s = {1: 10.0, 2: 14.0, 5: 31.0, 10: 25.0, 15: 80.0, 30: 150.0, 60: 300.0}  # T = 10 happened to be faster
    abp_s = {1: 9.0, 2: 12.0, 5: 28.0, 10: 55.0, 15: 80.0, 30: 160.0, 60: 310.0}
    text = lb.budget_statement(IABP_MSE, ABP_MSE, iabp_s, abp_s)
    assert text.startswith(lb.steps_statement(IABP_MSE, ABP_MSE) + " ")
    assert text.endswith("In training wall time: IABP's fastest run that reaches it (T=10) trained in 25.0 s, "
                         "ABP's best run (T=60) in 310.0 s, i.e. 12.4 x less training time.")
    slower = lb.wall_time_statement({5: 0.04}, {1: 0.05}, {5: 20.0}, {1: 8.0})
    assert slower.endswith("i.e. 2.5 x more training time.")
    unknown = lb.wall_time_statement(IABP_MSE, ABP_MSE, iabp_s, {**abp_s, 60: None})
    assert unknown == ("In training wall time: no comparison, since the training time of ABP at T=60 "
                       "was not recorded.")
    # Without training times: the steps statement and the interpolated one, no wall-time sentence.
    assert lb.budget_statement(IABP_MSE, ABP_MSE) == (
        lb.steps_statement(IABP_MSE, ABP_MSE) + " " + lb.interpolated_statement(IABP_MSE, ABP_MSE))


def test_training_time_of_partly_timed_runs_is_extrapolated_and_marked():
    record = {"calls": [{"steps": 100, "train_seconds": 20.0}, {"steps": 100, "train_seconds": 22.0}]}
    assert lb.timing_summary(record, 200) == {"train_seconds": 42.0, "timed_steps": 200, "estimated": False}
    assert lb.timing_summary(record, 300) == {"train_seconds": 63.0, "timed_steps": 200, "estimated": True}
    assert lb.timing_summary({"calls": []}, 300)["train_seconds"] is None


def test_every_flagfile_reads_into_a_config_and_train_arguments(tmp_path):
    for path in glob.glob(os.path.join(REPO, "flags", "*.flags")):
        config, kwargs = config_lib.load_flagfile(path)
        assert kwargs["num_steps"] > 0 and isinstance(config, config_lib.RunConfig)
    config, kwargs = config_lib.load_flagfile(os.path.join(REPO, "flags", "mnist5k_abp.flags"),
                                              langevin_steps=5, num_steps=7)
    assert (config.method, config.langevin_steps, config.width, kwargs["num_steps"], kwargs["eval_every"]) == (
        "abp", 5, 32, 7, 250)
    bad = tmp_path / "bad.flags"
    bad.write_text("# a comment\n--method=hiabp\n--langevin_stepz=3\n")
    with pytest.raises(errors.ConfigError, match=r"bad\.flags: Unknown command line flag 'langevin_stepz'"):
        config_lib.load_flagfile(str(bad))


def test_base_flagfiles_must_be_iabp_and_abp():
    with pytest.raises(errors.ConfigError, match="--num_layers=1"):
        lb.base_configs({lb.IABP: os.path.join(REPO, "flags", "mnist5k_hiabp_l3.flags")}, {})
    with pytest.raises(errors.ConfigError, match="--method=abp"):
        lb.base_configs({lb.ABP: os.path.join(REPO, "flags", "mnist5k_vae.flags")}, {})


@pytest.mark.slow
def test_end_to_end_then_rerun_only_reevaluates(tmp_path):
    """`python -m hiabp_tf.experiments.langevin_budget` on both methods at T = 1, 2: table, figure and rows, every
    number from the runs; a rerun (in-process) trains nothing and keeps the recorded training time;
    a workdir of another T is refused."""
    out, runs = str(tmp_path / "results"), str(tmp_path / "runs")
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", "hiabp_tf.experiments.langevin_budget", "--scale=quick",
                           f"--out={out}", f"--runs_dir={runs}", "--langevin_steps=2,1", "--num_steps=2", "--width=4",
                           "--batch_size=50"], env=env, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    text = open(os.path.join(out, "langevin_budget.md")).read()
    assert os.path.isfile(os.path.join(out, "langevin_budget.png"))
    data = json.load(open(os.path.join(out, "langevin_budget.json")))
    rows = data["rows"]
    assert [(r["method"], r["langevin_steps"]) for r in rows] == [("IABP", 1), ("IABP", 2), ("ABP", 1), ("ABP", 2)]
    for r in rows:
        assert r["grad_evals_per_iteration"] == r["grad_evals_per_test_image"] == r["langevin_steps"]
        assert r["grad_evals_training"] == 2 * r["langevin_steps"] and r["steps"] == 2
        assert r["train_seconds"] > 0 and not r["estimated"] and r["new_steps_this_call"] == 2
        name = "mnist5k_iabp" if r["method"] == "IABP" else "mnist5k_abp"
        assert r["workdir"] == os.path.join(runs, f"{name}_t{r['langevin_steps']}")
        result = json.load(open(os.path.join(r["workdir"], "eval_mnist_5k_test.json")))
        assert result["langevin_steps"] == r["langevin_steps"]
        assert r["mse"] == result["mse_EL" if r["method"] == "IABP" else "mse_L"]
        assert (f"| {r['method']} {r['score']} | {r['langevin_steps']} | {r['langevin_steps']} | "
                f"{2 * r['langevin_steps']} | {r['langevin_steps']} | {r['train_seconds']:.1f} | "
                f"{r['mse']:.5f} |") in text
    mse = {m: {r["langevin_steps"]: r["mse"] for r in rows if r["method"] == m} for m in ("IABP", "ABP")}
    secs = {m: {r["langevin_steps"]: r["train_seconds"] for r in rows if r["method"] == m} for m in ("IABP", "ABP")}
    assert data["statement"] == lb.budget_statement(mse["IABP"], mse["ABP"], secs["IABP"], secs["ABP"])
    assert f"**{data['statement']}**" in text
    for provenance in ("Command: `python -m hiabp_tf.experiments.langevin_budget --scale=quick", "--num_steps=2",
                       "Data: mnist_5k", "2 updates of batch 50", "training seed 0", "CPU cores",
                       "flags/mnist5k_iabp.flags", "flags/mnist5k_abp.flags"):
        assert provenance in text

    timing = open(os.path.join(runs, "mnist5k_abp_t2", lb.TIMING_FILE)).read()
    lb.run("quick", out, runs, [1, 2], overrides=TINY, command="pytest")
    again = json.load(open(os.path.join(out, "langevin_budget.json")))["rows"]
    assert [r["new_steps_this_call"] for r in again] == [0, 0, 0, 0]
    assert [(r["mse"], r["train_seconds"]) for r in again] == [(r["mse"], r["train_seconds"]) for r in rows]
    assert open(os.path.join(runs, "mnist5k_abp_t2", lb.TIMING_FILE)).read() == timing
    assert "Command: `pytest`" in open(os.path.join(out, "langevin_budget.md")).read()

    config, kwargs = lb.base_configs({lb.ABP: os.path.join(REPO, "flags", "mnist5k_abp.flags")}, TINY)[lb.ABP][1:]
    with pytest.raises(errors.WorkdirError, match="T = 2, not 5"):
        lb.train_timed(dataclasses.replace(config, langevin_steps=5), os.path.join(runs, "mnist5k_abp_t2"), kwargs)


def test_interpolated_steps_are_linear_in_log_t():
    curve = {1: 0.08, 4: 0.06, 16: 0.04}
    assert lb.interpolated_steps(curve, 0.07) == pytest.approx(2.0)  # halfway between 1 and 4 in log T
    assert lb.interpolated_steps(curve, 0.04) == pytest.approx(16.0)
    assert lb.interpolated_steps(curve, 0.09) == 1.0  # already there at the smallest T
    assert lb.interpolated_steps(curve, 0.03) is None  # never
    text = lb.interpolated_statement({1: 0.07, 4: 0.05, 16: 0.03}, curve)
    assert "IABP reaches ABP's best test MSE at T ~ 8, 2 x fewer steps than ABP's T=16" in text
    assert "T=1: ABP needs T ~ 2" in text and "T=4: ABP needs T ~ 8" in text
    assert "T=16: ABP needs more than 16" in text

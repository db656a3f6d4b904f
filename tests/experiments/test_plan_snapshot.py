"""The plan reproduces, run for run, the plan of plan_before_fields.json: what hiabp_tf/experiments/plan.py
planned when a run was a flag-file name plus flags (dumped before runs were described by their fields,
issue 40). Every experiment at every scale, with and without Inception weights: each run's name (its
workdir runs/SCALE/NAME and its record results/SCALE/runs/NAME), flag files, training flags in order,
evaluations and cost, and the order in which the pool trains them. A difference here is a change of
numerics, or a record that no longer resolves."""

import json
import os

import pytest

from hiabp_tf.experiments import plan

SNAPSHOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plan_before_fields.json")
WEIGHTS = "INCEPTION_WEIGHTS.h5"
CASES = [(scale, weights) for scale in plan.SCALES for weights in (None, WEIGHTS)]


def _key(scale, weights):
    return scale if weights is None else f"{scale} INCEPTION_WEIGHTS={weights}"


def _describe(scale, run):
    assert run.scale == scale
    return {"name": run.name, "flag_files": run.flag_files,
            "train_flags": list(run.train_flags), "evaluations": [list(e) for e in run.evaluations],
            "cost": run.cost}


@pytest.fixture(autouse=True)
def _no_optional_data(tmp_path, monkeypatch):
    """The snapshot's machine had no optional dataset column's data: an empty data dir."""
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "empty_data_dir"))


@pytest.fixture(scope="module")
def snapshot():
    with open(SNAPSHOT) as f:
        return json.load(f)


@pytest.mark.parametrize("scale,weights", CASES, ids=[_key(*case) for case in CASES])
def test_every_experiments_runs_are_as_before(snapshot, scale, weights):
    before = snapshot["runs"][_key(scale, weights)]
    assert set(before) <= set(plan.EXPERIMENTS)  # experiments added since have runs of their own
    for experiment in before:
        now = [_describe(scale, run) for run in plan.runs(experiment, scale, weights)]
        assert [run["name"] for run in now] == [run["name"] for run in before[experiment]], experiment
        for old, new in zip(before[experiment], now):
            assert new == old, (experiment, old["name"])


@pytest.mark.parametrize("scale,weights", CASES, ids=[_key(*case) for case in CASES])
def test_the_pool_trains_in_the_same_order(snapshot, scale, weights):
    before = snapshot["pool"][_key(scale, weights)]
    experiments = tuple(snapshot["runs"][_key(scale, weights)])
    assert [run.name for run in plan.pool(experiments, scale, weights)] == before["all"]
    for experiment in experiments:
        assert [run.name for run in plan.pool((experiment,), scale, weights)] == before[experiment], experiment


def test_the_snapshot_is_the_whole_plan(snapshot):
    """Every scale, both Inception cases, and the runs the records keep (a change of the file is seen)."""
    assert set(snapshot["runs"]) == set(snapshot["pool"]) == {_key(*case) for case in CASES}
    assert len(snapshot["pool"]["cpu"]["all"]) == 89 and "mnist_lvae_l4_diag" in snapshot["pool"]["cpu"]["all"]
    records = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(SNAPSHOT))), "results", "cpu", "runs")
    if os.path.isdir(records):  # every committed record is a run of the plan
        assert set(os.listdir(records)) <= {run.name for run in plan.pool(plan.EXPERIMENTS, "cpu")}

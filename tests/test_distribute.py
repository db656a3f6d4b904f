"""--strategy: tf.distribute training equals one-device training on the same global batch.

The two-replica runs need TensorFlow configured before it starts (two logical CPU devices for
MirroredStrategy; TF_CONFIG for MultiWorkerMirroredStrategy), so they run in subprocesses: about
35 s for tests/two_device_run.py and 15 s for the two-worker run on 2 CPU cores.

Tolerances (float summation order differs across replicas, so results are not bitwise equal; the
values measured on a 2-core CPU are in parentheses):
    weights (and persistent chains) after 3 steps   max abs difference < 1e-5     (<= 1.2e-7)
    metrics of each step                            relative difference < 1e-5   (<= 1.4e-7)
    Adamax moments m, u after 3 steps               relative difference < 1e-4   (<= 2.6e-6)
Three Adamax steps at lr 3e-4 move the weights by ~9e-4, so 1e-5 is about 1% of the update. The
Adamax moments scale with the gradient (the update itself does not), so they would differ by 50% or
more if the gradients were not all-reduced or were summed twice.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from hiabp_tf import config as config_lib
from hiabp_tf import train
from hiabp_tf.checks import errors
from hiabp_tf.core import algorithm
from hiabp_tf.core import langevin
from hiabp_tf.runtime import distribute
from hiabp_tf.runtime import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
WEIGHT_TOLERANCE = 1e-5
METRIC_TOLERANCE = 1e-5
SLOT_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
    """The report of tests/two_device_run.py: MirroredStrategy on two logical CPUs vs one device."""
    root = tmp_path_factory.mktemp("two_devices")
    result = subprocess.run([sys.executable, os.path.join(REPO, "tests", "two_device_run.py"), str(root)],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    report["root"] = str(root)
    return report


@pytest.mark.slow
@pytest.mark.parametrize("case", ["hiabp_l2", "vae", "abp_persistent"])
def test_mirrored_steps_match_one_device(two_devices, case):
    """3 steps of MirroredStrategy on 2 replicas (4 of the 8 examples each) give the weights,
    metrics and Adamax moments of 3 steps on one device, and both replicas hold the same values."""
    report = two_devices[case]
    assert report["initial_weights_max_abs_diff"] == 0.0  # built inside the scope, the same weights
    assert report["weights_moved"] > 50 * WEIGHT_TOLERANCE  # the comparison is not vacuous
    assert report["weights_max_abs_diff"] < WEIGHT_TOLERANCE, report
    assert report["metrics_max_rel_diff"] < METRIC_TOLERANCE, report
    assert report["slots_max_rel_diff"] < SLOT_TOLERANCE, report  # gradients summed once, over all rows
    assert report["replica_copies_max_abs_diff"] == 0.0
    assert report["iterations"] == 3


def test_checkpoints_move_between_mirrored_and_default(two_devices):
    """train.train end to end with --mask=pepper, evaluation and image summaries under mirrored: a
    checkpoint written under mirrored restores exactly on one device, and runs resumed across
    strategies (mirrored -> default, default -> mirrored) match 3 steps on one device."""
    report = two_devices["checkpoints"]
    assert report["restored_step"] == 2 and report["restore_max_abs_diff"] == 0.0
    assert report["mirrored_then_default_max_abs_diff"] < WEIGHT_TOLERANCE, report
    assert report["default_then_mirrored_max_abs_diff"] < WEIGHT_TOLERANCE, report
    assert report["summaries_written"]


def test_indivisible_batch_is_a_clear_error(two_devices):
    message = two_devices["indivisible_batch_error"]
    assert message is not None and "--batch_size=7" in message and "2 replicas" in message
    assert "--strategy" in message


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# The run of tests/two_device_run.py's `_train` (whose weights after 3 steps on one device it saves).
MULTI_WORKER_FLAGS = ["--width=4", "--latent_dims=4", "--batch_size=8", "--langevin_steps=3", "--seed=3",
                      "--mask=pepper", "--num_steps=3", "--checkpoint_every=2", "--eval_every=3",
                      "--eval_examples=10"]


@pytest.mark.slow
def test_multi_worker_two_workers_on_localhost_match_one_device(two_devices, tmp_path):
    """Two `hiabp_tf.train --strategy=multi_worker` processes (TF_CONFIG: two workers on localhost,
    one replica each) train 3 steps; the chief (worker 0) writes the workdir's checkpoints, worker 1
    writes only to a temporary folder it removes; the result matches 3 steps on one device."""
    workdir, worker_tmp = tmp_path / "run", tmp_path / "worker1_tmp"
    worker_tmp.mkdir()
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    procs = []
    for index in range(2):
        env = {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        if index == 1:
            env["TMPDIR"] = str(worker_tmp)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "hiabp_tf.train", "--strategy=multi_worker", f"--workdir={workdir}",
             *MULTI_WORKER_FLAGS], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True))
    try:
        errors = [proc.communicate(timeout=180)[1] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, error in zip(procs, errors):
        assert proc.returncode == 0, error[-3000:]
    assert "on 2 replicas" in errors[0]
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-3")
    assert os.listdir(worker_tmp) == []  # the non-chief's checkpoints are removed
    with open(workdir / workdir_lib.LOCK_FILE) as f:  # only the chief took the workdir's run lock
        assert json.load(f)["pid"] == procs[0].pid

    model, _, _, step = workdir_lib.restore(str(workdir))
    assert step == 3
    with np.load(os.path.join(two_devices["root"], "default_weights.npz")) as saved:
        single = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    weights = [v.numpy() for v in workdir_lib.network_weights(model)]
    assert len(weights) == len(single) > 10
    diff = max(np.max(np.abs(a - b)) for a, b in zip(weights, single))
    assert diff < WEIGHT_TOLERANCE, diff


def test_unknown_strategy_names_the_flag(tmp_path):
    with pytest.raises(errors.ConfigError, match="--strategy='gpus'.*default, mirrored, multi_worker, tpu"):
        train.train(config_lib.RunConfig(), str(tmp_path), 1, strategy="gpus")


def test_multi_worker_needs_a_usable_tf_config(monkeypatch):
    """Checked before MultiWorkerMirroredStrategy is made (which could wait for absent workers)."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(errors.ConfigError, match="--strategy=multi_worker.*TF_CONFIG.*not set"):
        distribute.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{cluster: worker}")
    with pytest.raises(errors.ConfigError, match="TF_CONFIG is not valid JSON"):
        distribute.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:1"]},
                                                "task": {"type": "worker", "index": 1}}))
    with pytest.raises(errors.ConfigError, match="not one of its cluster's workers"):
        distribute.make_strategy("multi_worker")


def test_tpu_without_a_tpu_names_the_flags():
    with pytest.raises(errors.ConfigError, match="--strategy=tpu found no TPU.*--tpu"):
        distribute.make_strategy("tpu", tpu="")


def test_replica_noise_is_its_rows_of_the_global_draw():
    """Replicas holding rows [0, 4) and [4, 8) of a global batch of 8 get the rows of the one-device
    draw; without a slice the draw is tf.random.stateless_normal's, as before tf.distribute."""
    seed = tf.constant([5, 7])
    whole = tf.random.stateless_normal([8, 3], seed)
    np.testing.assert_array_equal(langevin.per_example_normal([8, 3], seed), whole)
    halves = [langevin.per_example_normal(tf.constant([4, 3]), seed, batch_slice=(tf.constant(offset), 8))
              for offset in (0, 4)]
    np.testing.assert_array_equal(tf.concat(halves, 0), whole)


def test_replica_loss_shares_sum_to_the_global_mean():
    per_example = tf.constant([1.0, 2.0, 3.0, 10.0])
    shares = [algorithm.batch_mean(per_example[i:i + 2], (i, 4)) for i in (0, 2)]
    assert float(shares[0] + shares[1]) == pytest.approx(float(algorithm.batch_mean(per_example)))

"""sittings.json: each training call's record, and the provenance clause a table makes of them."""

import json
import logging
import os

from hiabp_tf import config as config_lib
from hiabp_tf.runtime import sittings
from hiabp_tf.runtime import workdir as workdir_lib


def _sitting(started, from_step, to_step, seconds, machine="2 CPU cores (A)", precision="float32"):
    return dict(started=started, machine=machine, precision=precision, from_step=from_step, to_step=to_step,
                seconds=seconds)


def test_a_call_updates_its_own_record_and_later_calls_add_theirs(tmp_path):
    """A call records at each checkpoint: the same `started` replaces, another call appends."""
    assert sittings.read(str(tmp_path)) == []
    sittings.record(str(tmp_path), _sitting("t1", 0, 250, 100.0))
    sittings.record(str(tmp_path), _sitting("t1", 0, 500, 210.5))  # the same call, a later checkpoint
    sittings.record(str(tmp_path), _sitting("t2", 500, 750, 90.0))
    assert [(s["from_step"], s["to_step"], s["seconds"]) for s in sittings.read(str(tmp_path))] == [
        (0, 500, 210.5), (500, 750, 90.0)]
    assert not os.path.exists(os.path.join(tmp_path, sittings.SITTINGS_FILE + ".tmp"))


def test_an_unreadable_file_counts_nothing_and_says_so(tmp_path, caplog):
    (tmp_path / sittings.SITTINGS_FILE).write_text('[{"from_step": 0, "to_st')
    with caplog.at_level(logging.WARNING):
        assert sittings.read(str(tmp_path)) == []
    assert "is unreadable" in caplog.text and sittings.SITTINGS_FILE in caplog.text


def test_summary_sums_every_sitting_and_names_machines_precisions_and_unrecorded_updates(tmp_path):
    a, b, c = (str(tmp_path / name) for name in ("run_a", "run_b", "run_c"))
    for path in (a, b, c):
        os.makedirs(path)
    assert sittings.summary([a, b, c]) == ""  # results made before sittings were recorded: no clause
    sittings.record(a, _sitting("t1", 0, 2000, 3000.4))
    sittings.record(a, _sitting("t2", 2000, 3500, 1000.0, machine="2 CPU cores (B)", precision="bfloat16"))
    sittings.record(b, _sitting("t3", 1500, 3500, 2000.0))  # resumed by code that records, from step 1500
    text = sittings.summary([a, b, c])
    assert text.startswith("training summed over 3 runs: 6000 s in 3 sittings on 2 CPU cores (A); 2 CPU cores (B), "
                           "in bfloat16 and float32")
    assert "(trained earlier without a record: run_b to step 1500, run_c (all of it))" in text


def test_resuming_in_another_precision_is_allowed_and_said(tmp_path, caplog):
    """A float32 run resumed where `auto` resolves to bfloat16 continues (float32 weights either
    way) with a warning naming both precisions; the sittings record which steps used which."""
    config = config_lib.RunConfig(dataset="mnist_5k", precision="float32")
    workdir_lib.prepare_workdir(str(tmp_path), config, (28, 28, 1), 4000)
    with caplog.at_level(logging.WARNING):
        workdir_lib.prepare_workdir(str(tmp_path), config_lib.RunConfig(dataset="mnist_5k", precision="bfloat16"),
                                    (28, 28, 1), 4000)
    assert "was trained in float32 until now and continues in bfloat16" in caplog.text
    with open(tmp_path / workdir_lib.CONFIG_FILE) as f:
        assert json.load(f)["config"]["precision"] == "bfloat16"

"""Run records (hiabp_tf.experiments.records): a finished run's scores kept under results/, which
`./run.sh` never retrains and reports read when runs/ lacks the run."""

import glob
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from hiabp_tf.checks import errors
from hiabp_tf.experiments import plan
from hiabp_tf.experiments import records
from hiabp_tf.experiments import report
from hiabp_tf.experiments import run as runner
from hiabp_tf.runtime import workdir as workdir_lib
from hiabp_tf.serving import ship

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLAGS = os.path.join(REPO, "flags")
RUN = {run.name: run for run in plan.runs("table1", "cpu")}["mnist_vae_seed1"]


def _fake_workdir(path, step):
    """A workdir as training and evaluation leave it: config.json, scores, a checkpoint index."""
    os.makedirs(os.path.join(path, "checkpoints"))
    for name, text in (("config.json", '{"config": {}}'), ("eval_mnist_test.json", '{"mse_E": 0.01}'),
                       ("evaluate.out", "# evaluate --fid=classifier\n{\"mse_E\": 0.01}\n"),
                       ("learning_curve.jsonl", '{"step": 1, "mse_E": 0.1}\n'), ("sittings.json", "[]")):
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    with open(os.path.join(path, "checkpoints", "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "ckpt-{step}"\nall_model_checkpoint_paths: "ckpt-{step}"\n')
    with open(os.path.join(path, "checkpoints", f"ckpt-{step}.index"), "w") as f:
        f.write("x")


def test_a_record_keeps_the_small_files_only_and_is_replaced_whole(tmp_path):
    workdir, record = str(tmp_path / "runs" / "cpu" / "r"), str(tmp_path / "results" / "cpu" / "runs" / "r")
    _fake_workdir(workdir, 7)
    assert records.latest_step(workdir) == 7
    records.save(workdir, record, 7, model=str(tmp_path / "models" / "r"))
    assert sorted(os.listdir(record)) == ["config.json", "eval_mnist_test.json", "evaluate.out",
                                          "learning_curve.jsonl", "record.json", "sittings.json"]
    assert records.recorded_step(record) == 7 and records.recorded_step(workdir) is None
    assert records.shipped_model(record) is None  # its model is not shipped (yet)
    os.remove(os.path.join(workdir, "sittings.json"))
    records.save(workdir, record, 8)
    assert "sittings.json" not in os.listdir(record) and records.recorded_step(record) == 8
    assert sorted(os.listdir(os.path.dirname(record))) == ["r"]  # no temporary folder left
    with pytest.raises(errors.WorkdirError, match="nothing to record"):
        records.save(str(tmp_path), str(tmp_path / "other"), 1)


def test_a_recorded_run_is_finished_read_from_its_record_and_never_retrained(tmp_path, monkeypatch):
    runs_root, results_root = str(tmp_path / "runs"), str(tmp_path / "results")
    steps = runner.num_steps("cpu", RUN, FLAGS)
    assert steps == 3500
    workdir, record = runner.run_dir("cpu", RUN.name, runs_root), records.record_dir("cpu", RUN.name, results_root)
    assert not runner.run_finished("cpu", RUN, runs_root, FLAGS, results_root)
    _fake_workdir(workdir, steps)
    assert runner.run_finished("cpu", RUN, runs_root, FLAGS, results_root)
    assert runner.record("cpu", RUN, runs_root, results_root, FLAGS) == record
    assert runner.source_dir("cpu", RUN.name, runs_root, results_root) == workdir  # runs/ first while it is there
    shutil.rmtree(workdir)  # runs/ is gone, as in a new session
    assert runner.run_finished("cpu", RUN, runs_root, FLAGS, results_root)
    assert runner.source_dir("cpu", RUN.name, runs_root, results_root) == record
    _fake_workdir(workdir, steps // 2)  # a retraining under way (or stopped early) in a new session
    assert runner.source_dir("cpu", RUN.name, runs_root, results_root) == record  # the finished record
    shutil.rmtree(workdir)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("a recorded run was trained again"))
    lines = runner.train_and_evaluate("cpu", RUN, runs_root=runs_root, flags_dir=FLAGS, results_root=results_root)
    assert lines == '{"mse_E": 0.01}'
    # A record of fewer steps (the run's --num_steps grew) does not count as finished.
    with open(os.path.join(record, records.RECORD_FILE), "w") as f:
        json.dump({"step": steps - 1}, f)
    assert not runner.run_finished("cpu", RUN, runs_root, FLAGS, results_root)
    assert runner.source_dir("cpu", RUN.name, runs_root, results_root) == record  # still read by reports
    # The quick scale's runs are retrained, never recorded.
    quick = plan.runs("table1", "quick")[0]
    _fake_workdir(runner.run_dir("quick", quick.name, runs_root), runner.num_steps("quick", quick, FLAGS))
    assert runner.record("quick", quick, runs_root, results_root, FLAGS) is None


@pytest.mark.slow
def test_a_record_restores_through_its_shipped_model(tiny_trained_workdir, tmp_path):
    model, record = str(tmp_path / "models" / "tiny"), str(tmp_path / "runs" / "tiny")
    with pytest.raises(errors.WorkdirError, match="no shipped model"):
        records.save(tiny_trained_workdir, record, 60, model=model)
        workdir_lib.restore(record)
    ship.ship(tiny_trained_workdir, model)
    restored, config, _, step = workdir_lib.restore(record)
    _, reference_config, _, reference_step = workdir_lib.restore(tiny_trained_workdir)
    assert step == reference_step == 60 and config == reference_config
    assert records.shipped_model(record) == model


def test_records_main_refuses_what_is_not_a_workdir(tmp_path, capsys):
    assert records.main([]) == 2
    assert records.main([str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err


def test_a_diverged_run_is_recorded_as_diverged_and_never_retried(tmp_path, monkeypatch):
    """Training here is deterministic, so a run whose training diverged diverges again: its record
    says so, the plan counts it as finished (the other runs and the report go on), and Table 1 names
    it below the cells instead of averaging it in."""
    runs_root, results_root = str(tmp_path / "runs"), str(tmp_path / "results")
    error = "error: training diverged at step 53: loss, kl became non-finite (NaN or inf). Nothing was saved."

    def diverging_train(args, stdout, **kwargs):
        workdir = next(a.split("=", 1)[1] for a in args if a.startswith("--workdir="))
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write('{"config": {}}')
        stdout.write("I1204 step 50/3500\n" + error + "\n")
        stdout.flush()
        return subprocess.CompletedProcess(args, 2)

    monkeypatch.setattr(subprocess, "run", diverging_train)
    os.makedirs(os.path.join(runs_root, "cpu"))
    with open(runner.run_dir("cpu", RUN.name, runs_root) + ".log", "w") as f:
        f.write(error.replace("53", "7") + "\n")  # an earlier sitting's divergence is not this one's
    assert runner.train_and_evaluate("cpu", RUN, runs_root=runs_root, flags_dir=FLAGS, results_root=results_root) == ""
    record = records.record_dir("cpu", RUN.name, results_root)
    assert records.recorded_step(record) == 53
    assert records.diverged(record) == error[len("error: "):]
    assert runner.diverged("cpu", RUN.name, results_root) == error[len("error: "):]
    assert runner.run_finished("cpu", RUN, str(tmp_path / "elsewhere"), FLAGS, results_root)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("a diverged run was trained again"))
    assert runner.train_and_evaluate("cpu", RUN, runs_root=runs_root, flags_dir=FLAGS, results_root=results_root) == ""
    # Any other failure is still a failure, and so is a divergence at the quick scale (not recorded).
    monkeypatch.setattr(subprocess, "run", lambda args, stdout, **k: (stdout.write("error: --sigma must be > 0\n"),
                                                                      subprocess.CompletedProcess(args, 2))[1])
    other = {run.name: run for run in plan.runs("table1", "cpu")}["mnist_vae_seed2"]
    with pytest.raises(runner.RunFailed, match="sigma"):
        runner.train_and_evaluate("cpu", other, runs_root=runs_root, flags_dir=FLAGS, results_root=results_root)
    assert records.recorded_step(records.record_dir("cpu", other.name, results_root)) is None
    monkeypatch.setattr(subprocess, "run", diverging_train)
    with pytest.raises(runner.RunFailed, match="diverged at step 53"):
        runner.train_and_evaluate("quick", plan.runs("table1", "quick")[0], runs_root=runs_root, flags_dir=FLAGS,
                                  results_root=results_root)




def test_a_run_whose_model_is_shipped_is_shipped_as_soon_as_it_is_trained(tmp_path, monkeypatch):
    """The first seed of a Table 1 row (and Table 2's mask runs) ship at the end of training, before
    the record is written: a session that ends before the report loses runs/ but not the model."""
    runs_root, results_root = str(tmp_path / "runs"), str(tmp_path / "results")
    calls = []

    def fake(args, **kwargs):
        module = args[2]
        calls.append(module)
        workdir = next(a.split("=", 1)[1] for a in args if a.startswith("--workdir="))
        if module == "hiabp_tf.train":
            _fake_workdir(workdir, 3500)
        if module == "hiabp_tf.serving.ship":
            out = next(a.split("=", 1)[1] for a in args if a.startswith("--out="))
            assert "--command=./run.sh table1 cpu" in args and not os.path.isdir(
                records.record_dir("cpu", os.path.basename(workdir), results_root))
            calls.append(out)
        return subprocess.CompletedProcess(args, 0, stdout='{"mse_E": 0.01}\n')

    monkeypatch.setattr(subprocess, "run", fake)
    runs = {run.name: run for run in plan.runs("table1", "cpu")}
    assert "mnist_vae" in plan.shipped_names("cpu") and "mnist_vae_seed1" not in plan.shipped_names("cpu")
    assert {f"celeba_hiabp_l4_{mask}" for mask in plan.MASKS} <= plan.shipped_names("cpu")
    assert plan.shipped_names("quick") == plan.shipped_names("paper") == set()
    runner.train_and_evaluate("cpu", runs["mnist_vae"], runs_root=runs_root, flags_dir=FLAGS, results_root=results_root)
    assert calls == ["hiabp_tf.train", "hiabp_tf.evaluate", "hiabp_tf.serving.ship",
                     records.model_dir("cpu", "mnist_vae", results_root)]
    assert records.recorded_step(records.record_dir("cpu", "mnist_vae", results_root)) == 3500
    calls.clear()
    runner.train_and_evaluate("cpu", runs["mnist_vae_seed1"], runs_root=runs_root, flags_dir=FLAGS,
                              results_root=results_root)
    assert calls == ["hiabp_tf.train", "hiabp_tf.evaluate"]  # a later seed is not shipped

def test_table2_is_reported_from_records_and_ships_the_mask_models_it_trained(tmp_path, monkeypatch):
    """Table 2 reads its runs where the reports read every run (runs/ first, else the record with
    its shipped model), scores the complete-image model on each mask once (its evaluate.N.out), and
    ships the mask models that are in runs/, so that the table can be rebuilt after runs/ is lost."""
    monkeypatch.chdir(tmp_path)
    os.symlink(FLAGS, "flags")
    base = plan.table2_base("cpu").name
    assert [run.name for run in plan.runs("table2", "cpu")] == [base] + [f"{base}_{mask}" for mask in plan.MASKS]
    for name in [base] + [f"{base}_{mask}" for mask in plan.MASKS]:
        _fake_workdir(f"runs/cpu/{name}", 3500)
        records.save(f"runs/cpu/{name}", records.record_dir("cpu", name), 3500, records.model_dir("cpu", name))
    shutil.rmtree(f"runs/cpu/{base}_pepper")  # lost with runs/: read from its record
    evaluated, shipped, written = [], [], {}
    monkeypatch.setattr(runner, "_evaluate", lambda workdir, log, flags, env, number: evaluated.append(
        (workdir, flags, number)))
    monkeypatch.setattr(runner, "_ship_trained", lambda scale, workdirs, command: shipped.extend(workdirs))
    monkeypatch.setattr(report, "write_table2", lambda out, table, title, occluded, complete, command: written.update(
        occluded=occluded, complete=complete))
    runner.report("table2", "cpu", runner.Provenance("cpu"))
    assert written["complete"] == f"runs/cpu/{base}"
    assert written["occluded"] == {"pepper": records.record_dir("cpu", f"{base}_pepper"),
                                   "region10": f"runs/cpu/{base}_region10", "region20": f"runs/cpu/{base}_region20"}
    assert evaluated == [(f"runs/cpu/{base}", (f"--mask={mask}",), runner.TABLE2_EVALUATIONS + i)
                         for i, mask in enumerate(plan.MASKS)]
    assert shipped == list(written["occluded"].values())  # _ship_trained skips the records itself
    # the complete-image model's record was made again, with its new evaluations
    assert os.path.isfile(os.path.join(records.record_dir("cpu", base), records.RECORD_FILE))
    shutil.rmtree("runs")
    written.clear()
    runner.report("table2", "cpu", runner.Provenance("cpu"))
    assert written["complete"] == records.record_dir("cpu", base)
    assert set(written["occluded"].values()) == {records.record_dir("cpu", f"{base}_{m}") for m in plan.MASKS}

RECORDS = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(REPO, "results", "*", "runs", "*",
                                                                     records.RECORD_FILE)))
DIVERGED = [record for record in RECORDS if records.diverged(record)]
RECORDS = [record for record in RECORDS if record not in DIVERGED]


@pytest.mark.parametrize("record", DIVERGED, ids=[os.path.relpath(r, REPO) for r in DIVERGED])
def test_every_committed_diverged_record_says_where_and_is_named_by_table1(record):
    workdir_lib.load_config(record)  # the record keeps the run's settings
    run = {run.name: run for run in plan.runs("table1", "cpu")}[os.path.basename(record)]
    step = records.recorded_step(record)
    assert 0 < step < runner.num_steps("cpu", run, FLAGS) and f"diverged at step {step}:" in records.diverged(record)
    assert not glob.glob(os.path.join(record, "eval_*.json"))  # no scores: nothing to average in
    table = os.path.join(os.path.dirname(os.path.dirname(record)), "table1.json")
    assert os.path.basename(record) in json.load(open(table))["diverged"]


@pytest.mark.parametrize("record", RECORDS, ids=[os.path.relpath(r, REPO) for r in RECORDS])
def test_every_committed_record_holds_its_final_scores(record):
    step = records.recorded_step(record)
    config, _ = workdir_lib.load_config(record)
    with open(os.path.join(record, "evaluate.out")) as f:
        marker, *lines = f.read().strip().split("\n")
    assert marker.startswith("# evaluate") and json.loads(lines[-1])["step"] == step
    # the file the reports read, of the final step, on the test split (under the mask it was trained with)
    result = report.load_eval(record, mask=config.mask)
    assert result["step"] == step and result["train_seed"] == config.seed and result["split"] == "test"
    curve = workdir_lib.read_learning_curve(record)
    assert curve and curve[-1]["step"] <= step


def test_the_committed_table1_is_what_its_records_say(monkeypatch):
    path = os.path.join(REPO, "results", "cpu", "table1.json")
    rows = [row for row in json.load(open(path))["rows"]
            if all(w.startswith("results/") for w in row["workdirs"])] if os.path.isfile(path) else []
    if not rows:
        pytest.skip("results/cpu/table1.json has no row read from records")
    monkeypatch.chdir(REPO)
    for row in rows:
        results = [report.load_eval(w) for w in row["workdirs"]]
        assert [r["train_seed"] for r in results] == row["seeds"]
        assert row["mse"]["mean"] == pytest.approx(float(np.mean([r[row["score"]] for r in results])), rel=1e-12)


def test_a_table_names_the_record_of_a_run_that_runs_will_lose(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("results/cpu/runs/mnist_vae_seed1")
    assert report._record_note("runs/cpu/mnist_vae_seed1") == ""  # no record.json: not a record
    with open("results/cpu/runs/mnist_vae_seed1/record.json", "w") as f:
        json.dump({"step": 3500}, f)
    assert report._record_note("runs/cpu/mnist_vae_seed1") == " (its record: `results/cpu/runs/mnist_vae_seed1`)"
    assert report._record_note("results/cpu/runs/mnist_vae_seed1") == ""  # already the record

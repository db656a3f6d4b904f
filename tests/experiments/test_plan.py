"""The experiment plan (which runs make each table at each scale) and its runner, `./run.sh`'s engine."""

import dataclasses
import json
import os
import subprocess

import pytest

from hiabp_tf.experiments import plan
from hiabp_tf.experiments import report
from hiabp_tf.experiments import run as runner
from hiabp_tf.runtime import sittings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("scale", plan.SCALES)
def test_every_planned_run_has_a_flag_file(scale):
    for experiment in plan.EXPERIMENTS:
        for run in plan.runs(experiment, scale):
            for path in run.flag_files:
                assert os.path.isfile(os.path.join(REPO, "flags", path)), (experiment, scale, run.name)


def test_table1_has_every_row_of_the_paper_once_per_dataset_and_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))  # no svhn_cropped: the cpu scale's SVHN column is left out
    assert report.TABLE1_ROWS is plan.TABLE1  # one list, read by the runner and the report
    labels = [label for _, label, _ in plan.TABLE1]
    assert len(labels) == 13 and "IABP [E] (L=1)" in labels and "HiABP [E+L] (L=4)" in labels
    assert len(plan.PAPER_ROWS) == 9 and "lvae_all_layers" not in plan.PAPER_ROWS  # the paper's ten rows
    assert "lvae_equal" not in plan.PAPER_ROWS and "lvae_equal" in plan.EXTRA_ROWS
    # cpu: MNIST, 12 runs x 3 seeds + 3 long; CelebA, the paper's 9 runs x 3 seeds + 3 long.
    for scale, expected in (("quick", 12), ("cpu", 12 * 3 + 3 + 9 * 3 + 3), ("paper", 3 * 12)):
        names = [run.name for run in plan.runs("table1", scale)]
        assert len(names) == len(set(names)) == expected  # IABP's two scores: one run
    cpu = {run.name: run for run in plan.runs("table1", "cpu")}
    assert {"celeba_hiabp_l4_seed2", "celeba_vlae_l4_seed1", "celeba_hiabp_l2_seed2", "celeba_vae_long",
            "celeba_hiabp_l4_long"} <= set(cpu) and "celeba_lvae_equal_l4" not in cpu
    assert runner.flag_args(cpu["celeba_vae"]) == ["--flagfile=flags/celeba_vae.flags", "--flagfile=flags/cpu.flags",
                                                   "--flagfile=flags/cpu_celeba.flags"]
    assert plan.runs("table2", "cpu")[1].evaluations == (("--mask=pepper",), ("--mask=pepper", "--split=train"))
    assert "mnist_hiabp_l1_seed2" in [run.name for run in plan.runs("table1", "cpu")]


def test_seeds_and_long_runs_train_the_same_flag_file_with_one_flag_more():
    by_name = {run.name: run for run in plan.runs("table1", "cpu")}
    seed2, long = by_name["mnist_hiabp_l4_seed2"], by_name["mnist_hiabp_l4_long"]
    assert seed2.flagfile == long.flagfile == "mnist_hiabp_l4"
    assert seed2.train_flags == ("--seed=2",) and long.train_flags == (f"--num_steps={plan.LONG_STEPS}",)
    assert seed2.evaluate_flags == by_name["mnist_hiabp_l4"].evaluate_flags
    assert runner.train_args("cpu", seed2) == [
        "--flagfile=flags/mnist_hiabp_l4.flags", "--flagfile=flags/cpu.flags", "--seed=2",
        "--workdir=runs/cpu/mnist_hiabp_l4_seed2"]
    assert [run.name for run in plan.seed_runs(plan.Run("cpu", "mnist", "vae"))] == [
        "mnist_vae", "mnist_vae_seed1", "mnist_vae_seed2"]
    assert long.cost == 4 * by_name["mnist_hiabp_l4"].cost
    # The published LVAE warms its KL up over 10% of the cpu budget, every seed of it.
    assert by_name["mnist_lvae_l4_seed1"].train_flags == ("--kl_warmup_steps=350", "--seed=1")
    assert by_name["mnist_lvae_equal_l4_seed1"].train_flags == ("--kl_warmup_steps=350", "--seed=1")
    assert by_name["mnist_lvae_all_layers_l4"].train_flags == by_name["mnist_lvae_no_warmup_l4"].train_flags == ()


def test_the_pool_holds_each_run_once_longest_first():
    pool = plan.pool(plan.EXPERIMENTS, "quick")
    names = [run.name for run in pool]
    assert len(names) == len(set(names)) == 22  # 18, and Figure 1's IABP and ABP trained with T = 1 and 5
    assert names[0] == "mnist5k_hiabp_l3_t30" and names[-1] == "mnist5k_abp_t1"
    assert [run.cost for run in pool] == sorted((run.cost for run in pool), reverse=True)
    # Table 1's FID flags survive the dedup (table1 is planned before the experiments that share its runs).
    by_name = {run.name: run for run in pool}
    assert "--fid=classifier" in by_name["mnist5k_vae"].evaluate_flags


def test_scales_and_masks():
    assert [run.evaluate_flags for run in plan.runs("table2", "cpu")][1:] == [
        ("--mask=pepper",), ("--mask=region10",), ("--mask=region20",)]
    assert [run.name for run in plan.runs("table3", "paper")] == [
        "svhn_hiabp_l4_t30", "svhn_hiabp_l4", "svhn_hiabp_l4_t10", "svhn_hiabp_l4_t5"]
    assert [run.name for run in plan.runs("table3", "cpu")] == [
        "mnist_hiabp_l3_t30", "mnist_hiabp_l3", "mnist_hiabp_l3_seed1", "mnist_hiabp_l3_seed2", "mnist_hiabp_l3_t10",
        "mnist_hiabp_l3_t5"]
    assert runner.flag_args(plan.Run("cpu", "mnist", "vae")) == [
        "--flagfile=flags/mnist_vae.flags", "--flagfile=flags/cpu.flags"]
    assert runner.flag_args(plan.Run("quick", "mnist5k", "vae")) == ["--flagfile=flags/mnist5k_vae.flags"]
    with pytest.raises(ValueError, match="scale 'huge' is unknown"):
        plan.runs("table1", "huge")
    with pytest.raises(ValueError, match="experiment 'table9' is unknown"):
        plan.runs("table9", "quick")


@pytest.mark.parametrize("argv", [[], ["table9"], ["table1", "huge"], ["table1", "cpu", "extra"]])
def test_the_runner_refuses_unknown_commands_with_its_usage(argv, capsys):
    assert runner.main(argv) == 2
    assert "usage: ./run.sh {core|table1|" in capsys.readouterr().err


@pytest.mark.slow
def test_train_and_evaluate_resumes_and_evaluates_once_per_checkpoint_and_flags(tmp_path):
    """A run is trained, then evaluated; rerun, neither is repeated; other evaluation flags are."""
    flags_dir = tmp_path / "flags"
    flags_dir.mkdir()
    tiny = plan.Run("quick", "mnist5k", "iabp")  # its flag file in flags_dir: a tiny HiABP
    flags = ("--method=hiabp\n--num_layers=2\n--latent_dims=2,2\n--width=4\n--batch_size=20\n--langevin_steps=2\n"
             "--num_steps=2\n--eval_every=2\n--checkpoint_every=2\n--eval_examples=20\n")
    (flags_dir / f"{tiny.flagfile}.flags").write_text(flags)
    runs_root = str(tmp_path / "runs")
    first = runner.train_and_evaluate("quick", tiny, 1, runs_root, str(flags_dir))
    assert json.loads(first)["step"] == 2
    out = os.path.join(runs_root, "quick", tiny.name, "evaluate.out")
    stamp = os.path.getmtime(out)
    assert runner.train_and_evaluate("quick", tiny, 1, runs_root, str(flags_dir)) == first
    assert os.path.getmtime(out) == stamp  # the same checkpoint, the same flags: not evaluated again
    masked = runner.train_and_evaluate("quick", dataclasses.replace(tiny, evaluations=(("--mask=pepper",),)), 1,
                                       runs_root, str(flags_dir))
    assert json.loads(masked)["mask"] == "pepper" and open(out).readline() == "# evaluate --mask=pepper\n"
    log = open(os.path.join(runs_root, "quick", f"{tiny.name}.log")).read()
    assert "Traceback" not in log
    # Trained to its --num_steps: finished; not once its flag file asks for more; a budget is its --num_steps.
    assert runner.run_finished("quick", tiny, runs_root, str(flags_dir))
    (flags_dir / f"{tiny.flagfile}.flags").write_text(flags.replace("--num_steps=2", "--num_steps=4"))
    assert not runner.run_finished("quick", tiny, runs_root, str(flags_dir))
    (flags_dir / f"{tiny.flagfile}.flags").write_text(flags)
    assert runner.num_steps("quick", dataclasses.replace(tiny, budget=4), str(flags_dir)) == 4
    assert not runner.run_finished("quick", plan.Run("quick", "mnist5k", "abp"), runs_root, str(flags_dir))
    # A second evaluation (a run's evaluations after the first) has its own record.
    both = runner.train_and_evaluate("quick", dataclasses.replace(tiny, evaluations=((), ("--langevin_steps=3",))), 1,
                                     runs_root, str(flags_dir))
    assert [json.loads(line)["langevin_steps"] for line in both.splitlines()] == [2, 3]
    assert open(os.path.join(runs_root, "quick", tiny.name, "evaluate.1.out")).readline() == \
        "# evaluate --langevin_steps=3\n"


def test_run_sh_dispatches_to_the_runner():
    """run.sh keeps only set-up, test and dispatch: no table's runs are named in it."""
    text = open(os.path.join(REPO, "run.sh")).read()
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "hiabp_tf.experiments.run" in body
    for name in ("mnist5k_hiabp_l3", "celeba_hiabp_l4", "TABLE1_ROWS", "train_all"):
        assert name not in body, name
    done = subprocess.run(["bash", os.path.join(REPO, "run.sh"), "table1", "huge"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr


def test_every_table_says_which_machine_made_it(monkeypatch):
    """Wall times differ between 2-core machines (bfloat16 in hardware or not): the provenance names it."""
    monkeypatch.setattr(runner.hardware, "describe", lambda: "2 CPU cores (AMD EPYC, without bfloat16 instructions)")
    monkeypatch.setenv("HIABP_JOBS", "2")
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    text = str(runner.Provenance("cpu"))
    assert "s wall time on 2 CPU cores (AMD EPYC, without bfloat16 instructions), 2 trainings at a time" in text
    assert "on 2 CPU cores (AMD EPYC" in str(runner.Provenance("cpu", pool_seconds=5))


def test_each_samples_page_says_what_its_own_runs_cost(tmp_path, monkeypatch):
    """One `./run.sh samples cpu` writes the MNIST and the faces page: each page's provenance sums the
    sittings of its own runs (samples_celeba.md carried the MNIST runs' line: the command's six runs)."""
    monkeypatch.chdir(tmp_path)
    pages = plan.samples_pages("cpu")
    seconds = {}
    for number, name in enumerate(run.name for runs in pages.values() for run in runs.values()):
        seconds[name] = 1000 * (number + 1)
        os.makedirs(runner.run_dir("cpu", name))
        sittings.record(runner.run_dir("cpu", name), dict(started="t", machine="2 CPU cores (X)", precision="bfloat16",
                                                         from_step=0, to_step=3500, seconds=seconds[name]))
    written = {}
    monkeypatch.setattr(report, "write_samples", lambda out, runs, command, name: written.update({name: command}))
    every_run = [runner.run_dir("cpu", name) for name in seconds]
    runner.report("samples", "cpu", runner.Provenance("cpu", workdirs=every_run, report_only=True))
    assert set(written) == set(pages) == {"samples", "samples_celeba"}
    for page, runs in pages.items():
        total = sum(seconds[run.name] for run in runs.values())
        assert f"training summed over 3 runs: {total} s in 3 sittings" in written[page], written[page]
        assert written[page].startswith("./run.sh samples cpu  (--report_only: a report of runs trained earlier")


def test_a_table_trained_over_several_sittings_says_what_they_cost(tmp_path):
    """The provenance adds the runs' recorded sittings (a table resumed over sessions); none: as before."""
    workdir = str(tmp_path / "mnist5k_hiabp_l3")
    os.makedirs(workdir)
    assert "summed over" not in str(runner.Provenance("cpu", workdirs=[workdir]))
    sittings.record(workdir, dict(started="t1", machine="2 CPU cores (X)", precision="float32", from_step=0,
                                  to_step=2000, seconds=4000.0))
    sittings.record(workdir, dict(started="t2", machine="2 CPU cores (X)", precision="float32", from_step=2000,
                                  to_step=3500, seconds=3000.0))
    text = str(runner.Provenance("cpu", workdirs=[workdir]))
    assert text.endswith("are only re-evaluated; training summed over 1 run: 7000 s in 2 sittings on "
                         "2 CPU cores (X), in float32"), text
    assert "7000 s in 2 sittings" in str(runner.Provenance("cpu", pool_seconds=5, workdirs=[workdir]))
    # A --report_only report trained nothing: no wall time of its own (it would be the report's seconds).
    report_only = str(runner.Provenance("cpu", workdirs=[workdir], report_only=True))
    assert "wall time" not in report_only and "this command trained nothing" in report_only
    assert report_only.endswith("training summed over 1 run: 7000 s in 2 sittings on 2 CPU cores (X), in float32")

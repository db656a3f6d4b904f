"""Figure 1's runs in the plan (IABP and ABP at every training T, Table 1's T = 15 first) and the
runner's wiring of its report (only the trained runs, the others named)."""

from hiabp_tf.experiments import informative_init as init
from hiabp_tf.experiments import plan
from hiabp_tf.experiments import report
from hiabp_tf.experiments import run as runner

IABP, ABP = init.IABP, init.ABP


def test_the_plan_trains_both_methods_at_every_t_table1s_t15_first():
    cpu = [run.name for run in plan.runs("figure1", "cpu")]
    assert cpu[:2] == ["mnist_hiabp_l1", "mnist_abp"]  # langevin_budget's base runs
    table1 = {"mnist_hiabp_l1", "mnist_abp", "mnist_hiabp_l1_seed1", "mnist_abp_seed1", "mnist_hiabp_l1_seed2",
              "mnist_abp_seed2"}
    assert set(cpu) == table1 | {f"{name}_t{t}" for name in ("mnist_hiabp_l1", "mnist_abp") for t in (1, 2, 5)}
    assert plan.FIGURE1_TRAIN_STEPS["cpu"][:3] == (1, 2, 5) and 15 in plan.FIGURE1_TRAIN_STEPS["cpu"]
    quick = [run.name for run in plan.runs("figure1", "quick")]
    assert quick == ["mnist5k_iabp", "mnist5k_abp", "mnist5k_iabp_t1", "mnist5k_abp_t1", "mnist5k_iabp_t5",
                     "mnist5k_abp_t5"]
    by_name = {run.name: run for run in plan.runs("figure1", "cpu")}
    assert runner.train_args("cpu", by_name["mnist_abp_t2"]) == [
        "--flagfile=flags/mnist_abp_t2.flags", "--flagfile=flags/cpu.flags", "--workdir=runs/cpu/mnist_abp_t2"]
    assert by_name["mnist_abp_t1"].cost < by_name["mnist_abp_t5"].cost < by_name["mnist_abp"].cost


def test_the_runner_passes_only_the_trained_runs_and_names_the_others(monkeypatch):
    seen = {}
    monkeypatch.setattr(runner, "source_dir", lambda scale, name: f"runs/{scale}/{name}")
    monkeypatch.setattr(runner, "diverged", lambda scale, name: None)
    monkeypatch.setattr(report, "write_figure1", lambda *args: seen.setdefault("args", args))
    trained = ["runs/cpu/mnist_hiabp_l1", "runs/cpu/mnist_abp", "runs/cpu/mnist_hiabp_l1_t1"]
    runner.report("figure1", "cpu", runner.Provenance("cpu", report_only=True), only=trained)
    _, training, same, steps, _, pending, planned = seen["args"]
    assert training == {IABP: {15: ["runs/cpu/mnist_hiabp_l1"], 1: ["runs/cpu/mnist_hiabp_l1_t1"]},
                        ABP: {15: ["runs/cpu/mnist_abp"]}}
    assert same == "runs/cpu/mnist_hiabp_l1" and list(steps) == list(plan.FIGURE1_STEPS)
    assert "mnist_abp_t1" in pending and "mnist_hiabp_l1_seed2" in pending and "mnist_hiabp_l1_t1" not in pending
    assert tuple(planned) == plan.FIGURE1_TRAIN_STEPS["cpu"]

"""A run of the plan described by its fields (issue 40): its name, flag files, training flags and cost
derive from them, and a dataset column is data (the cpu scale's SVHN column is planned where
tensorflow-datasets' svhn_cropped is prepared in the data dir, and left out with one line saying why
where it is not). That the plan is the plan it was, run for run: test_plan_snapshot.py."""

import dataclasses
import glob
import os

import pytest
import tensorflow_datasets as tfds

from hiabp_tf.data import input_pipeline
from hiabp_tf.experiments import plan
from hiabp_tf.experiments import run as runner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
R = plan.Run

# (run, name, flag file, training flags)
DERIVED = [
    (R("quick", "mnist5k", "iabp"), "mnist5k_iabp", "mnist5k_iabp", ()),
    (R("cpu", "mnist", "iabp"), "mnist_hiabp_l1", "mnist_hiabp_l1", ()),  # IABP is HiABP with L = 1
    (R("cpu", "celeba", "lvae_equal"), "celeba_lvae_equal_l4", "celeba_lvae_equal_l4", ("--kl_warmup_steps=350",)),
    (R("quick", "mnist5k", "lvae"), "mnist5k_lvae_l4", "mnist5k_lvae_l4", ()),  # the warm-up is the cpu scale's
    (R("cpu", "mnist", "lvae", seed=2), "mnist_lvae_l4_seed2", "mnist_lvae_l4", ("--kl_warmup_steps=350", "--seed=2")),
    (R("cpu", "mnist", "hiabp_l4", budget=plan.LONG_STEPS), "mnist_hiabp_l4_long", "mnist_hiabp_l4",
     ("--num_steps=14000",)),
    (R("cpu", "mnist", "vae", budget=7000), "mnist_vae_steps7000", "mnist_vae", ("--num_steps=7000",)),
    (R("cpu", "mnist", "abp", langevin_steps=2), "mnist_abp_t2", "mnist_abp_t2", ()),
    (R("cpu", "mnist", "abp", langevin_steps=15), "mnist_abp", "mnist_abp", ()),  # the flag file's own T
    (R("paper", "svhn", "hiabp_l4", langevin_steps=30), "svhn_hiabp_l4_t30", "svhn_hiabp_l4_t30", ()),
    (R("cpu", "celeba", "hiabp_l4", mask="region10"), "celeba_hiabp_l4_region10", "celeba_hiabp_l4_region10", ()),
    (R("cpu", "mnist", "vae", latent_size=12, keep_checkpoints=20), "mnist_vae_z12", "mnist_vae",
     ("--latent_dims=12", "--keep_checkpoints=20")),
    (R("cpu", "mnist", "lvae", keep_checkpoints=20, trains_from="mnist_lvae_equal_l4"), "mnist_lvae_l4_diag",
     "mnist_lvae_equal_l4", ("--kl_warmup_steps=350", "--keep_checkpoints=20")),
    (R("cpu", "celeba", "vlae", keep_checkpoints=20), "celeba_vlae_l4_diag", "celeba_vlae_l4",
     ("--keep_checkpoints=20",)),
    (R("cpu", "mnist", "lvae", precision="float32", keep_checkpoints=20), "mnist_lvae_l4_float32", "mnist_lvae_l4",
     ("--kl_warmup_steps=350", "--precision=float32", "--keep_checkpoints=20")),
]


@pytest.mark.parametrize("run,name,flagfile,train_flags", DERIVED, ids=[case[1] for case in DERIVED])
def test_a_runs_name_flag_file_and_flags_derive_from_its_fields(run, name, flagfile, train_flags):
    assert run.name == name and run.flagfile == flagfile and run.train_flags == train_flags
    overlays = {"cpu": ["cpu.flags"] + (["cpu_celeba.flags"] if run.column == "celeba" else [])}.get(run.scale, [])
    assert run.flag_files == [f"{flagfile}.flags"] + overlays
    assert os.path.isfile(os.path.join(REPO, "flags", f"{flagfile}.flags"))


def test_the_training_t_of_the_flag_files_is_the_run_itself():
    assert R("cpu", "mnist", "abp", langevin_steps=plan.TRAIN_T) == R("cpu", "mnist", "abp")


@pytest.mark.parametrize("fields,match", [(dict(row="hiabp_l5"), "row 'hiabp_l5'"),
                                          (dict(column="cifar"), "column 'cifar'"),
                                          (dict(mask="stripes"), "mask 'stripes'"),
                                          (dict(scale="huge"), "scale 'huge'")])
def test_a_field_the_plan_does_not_know_is_refused(fields, match):
    with pytest.raises(ValueError, match=match):
        R(**{**dict(scale="cpu", column="mnist", row="vae"), **fields})


def test_the_cost_derives_from_the_fields_not_the_name():
    """Langevin steps (1 for a variational row) x (L + 1), x 4 for a long run."""
    assert R("cpu", "mnist", "vae").cost == 1 * 2
    assert R("cpu", "mnist", "lvae").cost == R("cpu", "mnist", "vlae").cost == 1 * 5
    assert R("cpu", "mnist", "iabp").cost == R("cpu", "mnist", "abp_persistent").cost == 15 * 2
    assert R("quick", "mnist5k", "hiabp_l3", langevin_steps=30).cost == 30 * 4
    assert R("cpu", "celeba", "hiabp_l4", mask="pepper").cost == 15 * 5
    assert R("cpu", "mnist", "hiabp_l4", budget=plan.LONG_STEPS).cost == 4 * 15 * 5
    assert R("cpu", "mnist", "vae", budget=plan.LONG_STEPS, seed=1).cost == 4 * 2
    # The diagnostic LVAE trains from the equal-split file: the cost is the LVAE's, whatever the name says.
    diag = {run.name: run for run in plan.runs("diagnostics", "cpu")}
    assert diag["mnist_lvae_l4_diag"].cost == diag["mnist_vae_z12"].cost * 5 // 2 == 5


def test_seeds_long_runs_and_the_precision_pairs_are_fields():
    model = R("cpu", "celeba", "hiabp_l4")
    assert [run.seed for run in plan.seed_runs(model)] == list(plan.SEEDS["cpu"])
    assert plan.long_run(model).long and not model.long and plan.long_run(model).budget == plan.LONG_STEPS
    assert runner.num_steps("cpu", plan.long_run(model), os.path.join(REPO, "flags")) == plan.LONG_STEPS
    assert runner.num_steps("cpu", model, os.path.join(REPO, "flags")) == 3500  # flags/cpu.flags
    assert plan.PRECISION_PAIRS == tuple((f"{name}_float32", name) for name in (
        "mnist_vae", "mnist_lvae_l4", "mnist_vlae_l4", "mnist_hiabp_l1", "mnist_hiabp_l4"))


# --------------------------------------------------------------------------- the SVHN column


def _prepare_mock_svhn(data_dir):
    """svhn_cropped as `tfds build` leaves it in `data_dir` (its metadata), under tensorflow-datasets'
    mock_data: nothing is downloaded, and what a training would read from it is random images."""
    with tfds.testing.mock_data(num_examples=5, data_dir=str(data_dir)):
        builder = tfds.builder("svhn_cropped", data_dir=str(data_dir))
        builder.download_and_prepare()  # (mocked: downloads nothing)
        os.makedirs(builder.data_path, exist_ok=True)
        builder.info.write_to_directory(builder.data_path)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("TFDS_DATA_DIR", str(folder))
    return folder


def test_without_svhn_prepared_the_cpu_scale_plans_no_svhn_column_and_says_why(data_dir):
    assert plan.columns("cpu") == ("mnist", "celeba")
    assert not [run for experiment in plan.EXPERIMENTS for run in plan.runs(experiment, "cpu") if run.column == "svhn"]
    (line,) = plan.columns_left_out("cpu")
    assert "\n" not in line and line.startswith("svhn: ")
    assert f"svhn_cropped is not prepared in the data dir {data_dir} " in line
    assert f"tfds build svhn_cropped --data_dir={data_dir}" in line
    # A folder of that name that is not a prepared dataset (a download stopped half-way) is not the data.
    os.makedirs(data_dir / "svhn_cropped" / "3.1.0")
    assert plan.columns("cpu") == ("mnist", "celeba") and len(plan.columns_left_out("cpu")) == 1


def test_with_svhn_prepared_the_cpu_scale_plans_its_column_with_the_other_columns_seeds(data_dir, tmp_path,
                                                                                         monkeypatch):
    _prepare_mock_svhn(data_dir)
    assert plan.columns("cpu") == ("mnist", "svhn", "celeba") and plan.columns_left_out("cpu") == []
    table1 = plan.runs("table1", "cpu")
    svhn = [run for run in table1 if run.column == "svhn"]
    assert {(run.row, run.seed) for run in svhn} == {(row, seed) for row in plan.PAPER_ROWS
                                                     for seed in plan.SEEDS["cpu"]}
    assert {run.seed for run in table1 if run.column == "mnist"} == {run.seed for run in svhn} == {0, 1, 2}
    assert not [run for run in svhn if run.long]  # the long runs are MNIST's and CelebA's
    by_name = {run.name: run for run in table1}
    assert by_name["svhn_hiabp_l1_seed2"].flag_files == ["svhn_hiabp_l1.flags", "cpu.flags"]  # no overlay of its own
    assert by_name["svhn_lvae_l4"].train_flags == ("--kl_warmup_steps=350",)
    assert by_name["svhn_hiabp_l4"].evaluations == ((), ("--langevin_steps=60",))  # no FID without Inception weights
    assert "svhn_vae" in plan.shipped_names("cpu")
    # The runs of the other columns are the same runs as without SVHN, in the same order.
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "elsewhere"))
    without = plan.runs("table1", "cpu")
    assert [run for run in table1 if run.column != "svhn"] == without and len(table1) == len(without) + 9 * 3
    # The quick and paper scales do not depend on the data dir.
    for scale in ("quick", "paper"):
        assert plan.columns(scale) == {"quick": ("mnist5k",), "paper": ("mnist", "svhn", "celeba")}[scale]


def test_the_runner_says_on_one_line_why_the_svhn_column_is_left_out(data_dir, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # (run() moves there; the test's folder is restored after it)
    reported = []
    monkeypatch.setattr(runner, "report_trained", lambda experiments, scale: reported.append((experiments, scale)))
    runner.run("table1", "cpu", report_only=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if "svhn" in line]
    assert lines == [f"[run.sh] {plan.columns_left_out('cpu')[0]}"] and str(data_dir) in lines[0]
    assert reported == [(("table1",), "cpu")]
    runner.run("table3", "cpu", report_only=True)  # a table without dataset columns says nothing of them
    _prepare_mock_svhn(data_dir)
    runner.run("table1", "cpu", report_only=True)
    assert "svhn" not in capsys.readouterr().err


def test_the_plans_data_dir_is_the_trainings(tmp_path, monkeypatch):
    """plan.data_dir is where a training of the plan reads tensorflow-datasets (no flag file sets --data_dir)."""
    flag_files = glob.glob(os.path.join(REPO, "flags", "*.flags")) + glob.glob(os.path.join(REPO, "flags", "*",
                                                                                          "*.flags"))
    assert len(flag_files) > 70
    for path in flag_files:
        assert "--data_dir" not in open(path).read(), path
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    assert plan.data_dir() == input_pipeline.resolve_data_dir() == str(tmp_path)
    monkeypatch.delenv("TFDS_DATA_DIR")
    assert input_pipeline.resolve_data_dir() is None  # tensorflow-datasets' default
    assert plan.data_dir() == os.path.expanduser("~/tensorflow_datasets")


def test_a_run_is_a_value():
    """Two runs with the same fields are the same run; replacing a field makes another."""
    run = R("cpu", "mnist", "hiabp_l3")
    assert dataclasses.replace(run, seed=1) != run and dataclasses.replace(run, seed=1).name == "mnist_hiabp_l3_seed1"
    assert len({run, R("cpu", "mnist", "hiabp_l3")}) == 1

"""A run of the plan described by its fields (issue 40): its name, flag files, training flags and cost
derive from them. That the plan is the plan it was, run for run: test_plan_snapshot.py."""

import dataclasses
import os

import pytest

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
    (R("cpu", "mnist", "vae", latent_dims=12, keep_checkpoints=20), "mnist_vae_z12", "mnist_vae",
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


def test_a_run_is_a_value():
    """Two runs with the same fields are the same run; replacing a field makes another."""
    run = R("cpu", "mnist", "hiabp_l3")
    assert dataclasses.replace(run, seed=1) != run and dataclasses.replace(run, seed=1).name == "mnist_hiabp_l3_seed1"
    assert len({run, R("cpu", "mnist", "hiabp_l3")}) == 1

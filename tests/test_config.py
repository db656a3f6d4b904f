"""config.py: the training flags are generated from RunConfig's fields, and flag files are read by
absl (base includes and all) to the same RunConfig, wherever the process runs."""

import dataclasses
import glob
import os
import subprocess
import sys

from absl import flags
import pytest

from hiabp_tf import config as config_lib
from hiabp_tf.checks import errors

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS_DIR = os.path.join(REPO, "flags")


def _parsed(*args):
    flag_values = flags.FlagValues()
    config_lib.define_run_flags(flag_values)
    flag_values(["prog", *args])
    return flag_values


def test_every_field_is_a_flag_with_its_default_and_help():
    flag_values = _parsed()
    for field in dataclasses.fields(config_lib.RunConfig):
        assert field.name in flag_values and flag_values[field.name].help.endswith(field.metadata["help"])
    assert config_lib.config_from_flags(flag_values) == config_lib.RunConfig()
    assert set(config_lib.train_kwargs_from_flags(flag_values)) == set(config_lib.TRAIN_FLAGS)


def test_flags_become_the_run_config():
    flag_values = _parsed("--method=lvae", "--num_layers=2", "--latent_dims=4,6", "--langevin_clip=0.5",
                          "--precision=bfloat16", "--num_steps=7", "--deterministic")
    config = config_lib.config_from_flags(flag_values)
    assert (config.method, config.latent_dims, config.langevin_clip, config.precision) == (
        "lvae", (4, 6), 0.5, "bfloat16")
    assert config_lib.train_kwargs_from_flags(flag_values)["num_steps"] == 7
    assert config_lib.train_kwargs_from_flags(flag_values)["deterministic"] is True
    with pytest.raises(flags.IllegalFlagValueError):
        _parsed("--method=gan")  # an enum generated from the method registry
    with pytest.raises(errors.ConfigError, match="--latent_dims=4,x must be a comma-separated list"):
        config_lib.config_from_flags(_parsed("--latent_dims=4,x"))


def test_auto_precision_is_settled_when_the_run_is_built_and_recorded(monkeypatch):
    """--precision=auto becomes the arithmetic this machine computes fast, and config.json says which."""
    from hiabp_tf.core import hardware  # pylint: disable=import-outside-toplevel
    for cpu, expected in ((frozenset({"avx2"}), "float32"), (frozenset({"avx2", "avx512_bf16"}), "bfloat16")):
        monkeypatch.setattr(hardware, "cpu_flags", lambda cpu=cpu: cpu)
        config = config_lib.config_from_flags(_parsed("--precision=auto"))
        assert config.precision == expected
        assert config_lib.RunConfig.from_json(config.to_json()).to_json()["precision"] == expected
    with pytest.raises(flags.IllegalFlagValueError):
        _parsed("--precision=float16")


def test_bfloat16_without_hardware_for_it_is_flagged():
    from hiabp_tf.training import loop as train  # pylint: disable=import-outside-toplevel
    assert train.emulated_bfloat16("bfloat16", frozenset({"avx2"}))
    assert not train.emulated_bfloat16("bfloat16", frozenset({"avx2", "amx_bf16"}))
    assert not train.emulated_bfloat16("float32", frozenset({"avx2"}))


def _experiment_files():
    # The scale overlays (cpu.flags, cpu_celeba.flags) are read after an experiment's file, not on their own.
    return sorted(p for p in glob.glob(os.path.join(FLAGS_DIR, "*.flags"))
                  if not os.path.basename(p).startswith("cpu"))


@pytest.mark.parametrize("path", _experiment_files(), ids=os.path.basename)
def test_an_experiment_file_includes_its_base_and_says_only_what_differs(path):
    name = os.path.basename(path)
    flag_lines = [line for line in open(path).read().splitlines() if line.startswith("--")]
    base = f"flags/base/{name.split('_')[0]}.flags"
    assert flag_lines[0] == f"--flagfile={base}", "the first flag line includes the dataset and scale's base"
    base_values = config_lib.flagfile_values(os.path.join(REPO, base))
    for line in flag_lines[1:]:
        key, _, value = line[2:].partition("=")
        assert base_values.get(key) != value, f"{name}: {line} repeats its base"
    config_lib.load_flagfile(path)  # and it reads as a valid run


def test_includes_are_relative_to_the_repository_root_from_any_directory(tmp_path, monkeypatch):
    in_repo = config_lib.load_flagfile(os.path.join(FLAGS_DIR, "mnist5k_hiabp_l3_t5.flags"))
    monkeypatch.chdir(tmp_path)
    assert config_lib.load_flagfile(os.path.join(FLAGS_DIR, "mnist5k_hiabp_l3_t5.flags")) == in_repo
    config, kwargs = in_repo
    assert (config.num_layers, config.langevin_steps, config.dataset, kwargs["num_steps"]) == (3, 5, "mnist_5k", 650)


def test_bad_flag_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.flags"
    bad.write_text("--method=hiabp\n--widht=3\n")
    with pytest.raises(errors.ConfigError, match="bad.flags"):
        config_lib.load_flagfile(str(bad))
    with pytest.raises(errors.ConfigError, match="not found"):
        config_lib.load_flagfile(str(tmp_path / "missing.flags"))
    with pytest.raises(errors.ConfigError, match="--workdir is not a flag of hiabp_tf.train that can be overridden"):
        config_lib.load_flagfile(os.path.join(FLAGS_DIR, "mnist5k_vae.flags"), workdir="x")


def test_the_tree_is_clean_under_the_linter():
    """pyproject.toml's [tool.ruff] configuration, on the package and the tests."""
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "hiabp_tf", "tests"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def test_lvae_workdirs_of_before_the_pooled_prior_heads_load_as_flattened():
    today = config_lib.RunConfig(method="lvae", num_layers=2, latent_dims=(3, 3), kl_warmup_steps=10)
    assert today.lvae_top_down == "pooled"
    assert config_lib.RunConfig.from_json(today.to_json()).lvae_top_down == "pooled"
    written_then = {k: v for k, v in today.to_json().items() if k != "lvae_top_down"}
    then = config_lib.RunConfig.from_json(written_then)
    assert then.method == "lvae" and then.lvae_top_down == "flattened"
    assert then.architecture((28, 28, 1)).lvae_top_down == "flattened"
    assert config_lib.RunConfig.from_json({k: v for k, v in config_lib.RunConfig().to_json().items()
                                           if k != "lvae_top_down"}).lvae_top_down == "pooled"  # not an LVAE
    with pytest.raises(config_lib.ConfigError, match="--lvae_top_down=flattened is for --method=lvae"):
        config_lib.RunConfig(method="vlae", num_layers=2, latent_dims=(3, 3), lvae_top_down="flattened")

"""The scales of run.sh: quick (the flag files as they are), cpu (flags/cpu.flags after each) and
paper; every mnist_5k experiment on equal terms; the README's results block made from results/cpu."""

import os
import re
import subprocess
import sys

import pytest

from hiabp_tf import config as config_lib
from hiabp_tf.experiments import claims

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLAGS = os.path.join(REPO, "flags")
MNIST5K = sorted(n for n in os.listdir(FLAGS) if n.startswith("mnist5k_"))
BOOKKEEPING = {"num_steps", "eval_every", "checkpoint_every", "log_every", "eval_examples"}


MNIST = sorted(n for n in os.listdir(FLAGS) if n.startswith("mnist_"))


def test_cpu_scale_changes_only_the_networks_precision_budget_and_bookkeeping():
    """cpu.flags turns the paper's MNIST experiments into the cpu scale: the quick scale's width and
    precision and a CPU's budget; data, methods, latent sizes and Algorithm 1's settings stay."""
    overlay = config_lib.flagfile_values(os.path.join(FLAGS, "cpu.flags"))
    assert set(overlay) <= BOOKKEEPING | {"width", "precision"} and int(overlay["num_steps"]) >= 3000
    quick, _ = config_lib.load_flagfile(os.path.join(FLAGS, "mnist5k_iabp.flags"))
    assert int(overlay["width"]) == quick.width and overlay["precision"] == "auto"


@pytest.mark.parametrize("name", MNIST)
def test_every_mnist_experiment_at_cpu_scale_is_on_equal_terms(name):
    """What ./run.sh table1 cpu trains: the standard MNIST split, the same width, total latent size,
    optimiser, precision and budget for every method (cpu.flags read after the experiment's file)."""
    def at_cpu_scale(flagfile):
        values = config_lib.flagfile_values(os.path.join(FLAGS, flagfile))
        values.update(config_lib.flagfile_values(os.path.join(FLAGS, "cpu.flags")))
        return values
    values, reference = at_cpu_scale(name), at_cpu_scale("mnist_hiabp_l1.flags")
    assert values["dataset"] == "mnist" and values["width"] == "32" and values["precision"] == "auto"
    assert sum(int(d) for d in values["latent_dims"].split(",")) == 48
    for key in ("learning_rate", "batch_size", "sigma", "step_size", "num_steps", "seed"):
        assert values[key] == reference[key], key
    # Table 3 and Figure 1 vary T (flags/NAME_t<T>.flags); every other experiment has the paper's.
    if not re.search(r"_t\d+\.flags$", name):
        assert values["langevin_steps"] == reference["langevin_steps"] == "15"


@pytest.mark.parametrize("name", MNIST5K)
def test_every_mnist5k_experiment_is_on_equal_terms(name):
    """Same data, width, total latent size, optimiser, precision and budget for every method."""
    config, train_kwargs = config_lib.load_flagfile(os.path.join(FLAGS, name))
    reference, reference_kwargs = config_lib.load_flagfile(os.path.join(FLAGS, "mnist5k_iabp.flags"))
    assert config.dataset == "mnist_5k" and config.width == reference.width
    assert sum(config.latent_dims) == sum(reference.latent_dims) == 48
    assert (config.learning_rate, config.batch_size, config.sigma, config.step_size) == (
        reference.learning_rate, reference.batch_size, reference.sigma, reference.step_size)
    assert config.precision == reference.precision  # `auto`: settled the same way for every method
    assert config_lib.flagfile_values(os.path.join(FLAGS, name)).get("precision", "auto") == "auto"
    assert train_kwargs["num_steps"] == reference_kwargs["num_steps"]


@pytest.mark.slow
def test_absl_reads_the_cpu_overlay_after_the_experiment():
    """What run.sh passes to hiabp_tf.train at cpu scale: the second flagfile's values win, the
    first one's networks stay."""
    script = ("import sys; from absl import flags; from hiabp_tf import train; train.define_flags(); "
              "flags.FLAGS(sys.argv); print(flags.FLAGS.num_steps, flags.FLAGS.eval_every, flags.FLAGS.width, "
              "flags.FLAGS.precision)")
    done = subprocess.run([sys.executable, "-c", script, "--flagfile=flags/mnist5k_hiabp_l3.flags",
                           "--flagfile=flags/cpu.flags"], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr[-2000:]
    overlay = config_lib.flagfile_values(os.path.join(FLAGS, "cpu.flags"))
    config, _ = config_lib.load_flagfile(os.path.join(FLAGS, "mnist5k_hiabp_l3.flags"))
    assert done.stdout.split() == [overlay["num_steps"], overlay["eval_every"], str(config.width), "auto"]


@pytest.mark.parametrize("args", [["table1", "huge"], ["budget", "cpu"], ["nonsense"]])
def test_run_sh_refuses_unknown_commands_and_scales(args):
    done = subprocess.run(["bash", os.path.join(REPO, "run.sh"), *args], capture_output=True, text=True,
                          env=dict(os.environ, HIABP_VENV="/nonexistent"), timeout=60)
    assert done.returncode == 2 and ("usage" in done.stderr or "quick or paper" in done.stderr)
    assert not os.path.exists("/nonexistent")  # refused before any set-up


def test_readme_results_block_is_the_one_made_from_results_cpu():
    """The README's first-screen results are generated (`./run.sh claims cpu`), never typed."""
    out = os.path.join(REPO, "results", "cpu")
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    start, end = readme.index(claims.README_START), readme.index(claims.README_END) + len(claims.README_END)
    assert readme[start:end] == claims.readme_block(out, REPO)

"""The README's "Using a trained model" example runs as written: its Python block, then its shell block
(export, plain-TensorFlow loading, inpainting of the PNGs the Python block wrote), on a tiny model
standing in for the quick checkpoint runs/quick/mnist5k_hiabp_l3."""

import json
import os
import re
import subprocess
import sys

import pytest

from hiabp_tf import config as config_lib
from hiabp_tf import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = "runs/quick/mnist5k_hiabp_l3"


def readme_blocks() -> tuple[str, str]:
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    section = text.split("\n### Using a trained model\n", 1)[1].split("\n## ", 1)[0]
    python = re.findall(r"```python\n(.*?)```", section, re.S)
    bash = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(python) == 1 and len(bash) == 1, "the section has one python and one bash block"
    return python[0], bash[0]


@pytest.mark.slow
def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    python, bash = readme_blocks()
    assert QUICK in python and QUICK in bash and ".venv/bin/python" in bash
    config = config_lib.RunConfig(dataset="mnist_5k", num_layers=2, latent_dims=(4, 4), width=4, batch_size=20,
                                  langevin_steps=3)
    train.train(config, str(tmp_path / QUICK), 2, log_every=1000, eval_every=10**6, eval_examples=20)

    monkeypatch.chdir(tmp_path)
    exec(compile(python, "README.md (python)", "exec"), {"__name__": "__readme__"})  # pylint: disable=exec-used
    assert "MSE [E]:" in capsys.readouterr().out
    assert len(os.listdir(tmp_path / "digits")) == 10

    script = bash.replace(".venv/bin/python", sys.executable)
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("{'z1': TensorShape([1, 4])") and "['E', 'E+L']" in line for line in lines), lines
    summary = json.loads(lines[-1])
    assert summary["num_images"] == 10 and summary["mask"] == "region20"
    assert os.path.isfile(tmp_path / "exported/mnist5k_hiabp_l3/saved_model.pb")
    assert os.path.isfile(tmp_path / "inpainted/before_after.png")
    assert len([n for n in os.listdir(tmp_path / "inpainted") if n.endswith("_recovered.png")]) == 10


def test_the_first_screen_shows_the_two_commands_and_the_headline_results():
    """What HiABP is, the two commands and the generated results table, all in the README's first 60 lines."""
    with open(os.path.join(REPO, "README.md")) as f:
        first = f.read().splitlines()[:60]
    commands = [line.split("#")[0].strip() for line in first if line.startswith("./run.sh")]
    assert commands == ["./run.sh", "./run.sh test"]
    assert "<!-- results:start -->" in first and "<!-- results:end -->" in first
    assert any(line.startswith("| HiABP [E+L] (L=3) |") for line in first)
    assert any(line.startswith("![learning curves](results/cpu/learning_curves.png)") for line in first)

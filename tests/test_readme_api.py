"""The code of the README and the docs/ pages runs as written (issue 23).

On a tiny model standing in for the quick checkpoint runs/quick/mnist5k_hiabp_l3, and the same model
shipped as a stand-in for results/cpu/models/mnist_hiabp_l4, every page's python blocks and its bash
blocks marked `<!-- doc-test: run -->` run in order in one folder per page, as a reader would run them
from the repository root (see tests/doc_pages.py for the markers). A python block marked
`<!-- doc-test: skip (REASON) -->` is reported as skipped with its reason. Every flag that a bash block
passes to `python -m hiabp_tf.<command>` must be a flag of that command. The cheap checks (links,
length, `bash -n`) are tests/test_docs.py's."""

import json
import os
import shlex
import shutil
import subprocess
import sys

import doc_pages
from doc_pages import REPO
import pytest

from hiabp_tf import config as config_lib
from hiabp_tf import train

QUICK = "runs/quick/mnist5k_hiabp_l3"
SHIPPED = "results/cpu/models/mnist_hiabp_l4"
PAGES = doc_pages.pages()
BLOCKS = [b for page in PAGES for b in doc_pages.blocks(page)]
RUNNABLE = [b for b in BLOCKS if (b.lang == "python" and not b.skip_reason) or (b.lang == "bash" and b.marker == "run")]
SKIPPED = [b for b in BLOCKS if b.lang == "python" and b.skip_reason]
PAGES_TO_RUN = list(dict.fromkeys(b.page for b in RUNNABLE))


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """A folder holding the tiny trained workdir at QUICK and its shipped copy at SHIPPED."""
    from hiabp_tf.serving import ship  # pylint: disable=import-outside-toplevel
    root = tmp_path_factory.mktemp("doc_stand_ins")
    config = config_lib.RunConfig(dataset="mnist_5k", num_layers=2, latent_dims=(4, 4), width=4, batch_size=20,
                                  langevin_steps=3)
    train.train(config, str(root / QUICK), 2, log_every=1000, eval_every=10**6, eval_examples=20)
    ship.ship(str(root / QUICK), str(root / SHIPPED))
    return root


def _run_bash(block, cwd):
    script = block.code.replace(".venv/bin/python", sys.executable)
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, f"{block.name}:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES_TO_RUN)
def test_the_code_of_a_page_runs_as_written(page, stand_ins, tmp_path, monkeypatch, capsys):
    for folder in ("runs", "results"):
        shutil.copytree(stand_ins / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    outputs = []
    for block in (b for b in RUNNABLE if b.page == page):
        if block.lang == "python":
            exec(compile(block.code, block.name, "exec"), {"__name__": "__doc_block__"})  # pylint: disable=exec-used
            outputs.append(capsys.readouterr().out)
        else:
            outputs.append(_run_bash(block, tmp_path))
    CHECKS.get(page, lambda *_: None)(tmp_path, outputs)


def _check_using(folder, outputs):
    """docs/using.md: the Python API on the quick stand-in, then the SavedModel and the inpainting of the
    digits it wrote, then the shipped stand-in."""
    api, saved_model, shipped = outputs
    assert "MSE [E]:" in api and len(os.listdir(folder / "digits")) == 10
    lines = saved_model.strip().splitlines()
    assert any(line.startswith("{'z1': TensorShape([1, 4])") and "['E', 'E+L']" in line for line in lines), lines
    summary = json.loads(lines[-1])
    assert summary["num_images"] == 10 and summary["mask"] == "region20"
    assert os.path.isfile(folder / "exported/mnist5k_hiabp_l3/saved_model.pb")
    assert os.path.isfile(folder / "inpainted/before_after.png")
    assert len([n for n in os.listdir(folder / "inpainted") if n.endswith("_recovered.png")]) == 10
    assert "(16, 28, 28, 1)" in shipped


def _check_data(folder, outputs):
    assert outputs == ["3000 (28, 28, 1)\n"] and os.path.isfile(folder / "my_digits.npz")


CHECKS = {"docs/using.md": _check_using, "docs/data.md": _check_data}


def test_the_pages_that_must_run_do():
    """The examples a reader copies first are among the blocks run, not skipped."""
    assert {"docs/using.md", "docs/data.md"} <= set(PAGES_TO_RUN)
    assert sum(b.lang == "bash" for b in RUNNABLE if b.page == "docs/using.md") == 1


@pytest.mark.parametrize("block", SKIPPED, ids=lambda b: b.name)
def test_a_block_marked_skip_says_why(block):
    pytest.skip(f"{block.name}: {block.skip_reason}")


def _commands():
    """{module: {flag names}} of every `python -m hiabp_tf.<module>` line of the bash blocks."""
    used = {}
    for block in (b for b in BLOCKS if b.lang == "bash"):
        for line in block.code.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True) if "-m hiabp_tf." in line else []
            if "-m" not in tokens:
                continue
            module = tokens[tokens.index("-m") + 1]
            names = {t[2:].split("=")[0] for t in tokens[tokens.index("-m") + 2:] if t.startswith("--")}
            used.setdefault(module, {}).update({name: block.name for name in names})
    return used


# Imports each command's module in one process, defines its flags and lists them (then deletes them, since
# two commands define flags of one name).
_LIST_FLAGS = """
import importlib, json, sys
from absl import flags
builtin = set(flags.FLAGS) | {"flagfile", "undefok"}  # the last two: absl's parser's own
out = {}
for module in sys.argv[1:]:
    define = getattr(importlib.import_module(module), "define_flags", None)
    if define is None:
        out[module] = None
        continue
    before = set(flags.FLAGS)
    define()
    names = set(flags.FLAGS) - before
    for name in names:
        delattr(flags.FLAGS, name)
    out[module] = sorted(names | builtin)
print(json.dumps(out))
"""


@pytest.mark.slow
def test_every_flag_in_the_docs_is_a_flag_of_its_command():
    used = _commands()
    done = subprocess.run([sys.executable, "-c", _LIST_FLAGS, *sorted(used)], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    defined = json.loads(done.stdout.strip().splitlines()[-1])
    unknown = []
    for module, names in used.items():
        assert defined[module] is not None, f"python -m {module} defines no flags ({sorted(names.values())})"
        for name, where in names.items():
            if name not in defined[module] and not (name.startswith("no") and name[2:] in defined[module]):
                unknown.append(f"{where}: python -m {module} has no flag --{name}")
    assert not unknown, "\n".join(unknown)

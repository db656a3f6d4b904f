"""The README is a landing page and the docs/ pages are checked, not trusted (issue 23): length and first
screen, links, code blocks that parse and name files that exist, one home for machine-dependent figures
and for the paper's numbers. Text parsing only: fast, no TensorFlow, no training (the code blocks are
run by tests/test_readme_api.py)."""

import ast
import os
import re
import shlex
import subprocess

import doc_pages
from doc_pages import REPO
import pytest

PAGES = doc_pages.pages()
DOCS = [p for p in PAGES if p.startswith("docs/")]
GENERATED = doc_pages.results_pages()  # written by the code: a broken name there is fixed in its generator
BLOCKS = [b for page in PAGES for b in doc_pages.blocks(page)]
BASH = [b for b in BLOCKS if b.lang == "bash"]
PYTHON = [b for b in BLOCKS if b.lang == "python"]

# The README's hand-written text (the generated results block aside, whose length is claims.readme_block's)
# and the README as a whole: "at most about 12,000 characters".
HANDWRITTEN_MAX = 6_500
README_MAX = 12_500
# Where figures of minutes or seconds may be written: the one page of measurements no results file holds.
MACHINES_PAGE = "docs/machines.md"
PAPER_PAGE = "docs/paper.md"
DURATION = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*\s(?:ms|s|secs?|seconds?|min|mins|minutes?|h|hrs?|hours?)\b")


def _readme() -> str:
    return doc_pages.read("README.md")


def test_the_readme_is_a_landing_page():
    text = _readme()
    handwritten = doc_pages.without_results_block(text)
    assert len(handwritten) <= HANDWRITTEN_MAX, (
        f"README.md's own text is {len(handwritten):,} characters (at most {HANDWRITTEN_MAX:,}): move the "
        "detail into docs/ and link to it")
    assert len(text) <= README_MAX, f"README.md is {len(text):,} characters (at most about 12,000)"


def test_the_first_screen_shows_the_two_commands_and_the_headline_results():
    """What HiABP is, the two commands and the generated results table, all in the README's first 60 lines."""
    text = _readme()
    assert text.count(doc_pages.RESULTS_START) == 1 and text.count(doc_pages.RESULTS_END) == 1
    first = text.splitlines()[:60]
    commands = [line.split("#")[0].strip() for line in first if line.startswith("./run.sh")]
    assert commands == ["./run.sh", "./run.sh test"]  # CI runs exactly `./run.sh test` (.ci/run)
    assert doc_pages.RESULTS_START in first
    assert any(line.startswith("| HiABP [E+L] (L=3) |") for line in first)
    assert any(line.startswith("![learning curves](results/cpu/learning_curves.png)") for line in first)


def test_the_readme_links_every_docs_page():
    linked = {os.path.normpath(target.split("#")[0]) for _, target in doc_pages.links("README.md")}
    assert set(DOCS) <= linked, f"not linked from README.md: {sorted(set(DOCS) - linked)}"


@pytest.mark.parametrize("page", DOCS)
def test_every_docs_page_says_first_who_it_is_for(page):
    lines = [line for line in doc_pages.read(page).splitlines() if line.strip()]
    assert lines[0].startswith("# "), f"{page} opens with its title"
    assert lines[1].startswith("*For "), f"{page}: the line after the title says who the page is for (*For ...*)"


@pytest.mark.parametrize("page", PAGES + GENERATED)
def test_every_relative_link_resolves(page):
    """Links and images, on the README, docs/ and every generated page under results/."""
    here = os.path.dirname(os.path.join(REPO, page))
    broken = []
    for line, target in doc_pages.links(page):
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(here, path)) if path else os.path.join(REPO, page)
        if not os.path.exists(full):
            broken.append(f"{page}:{line}: {target} (no such file)")
        elif anchor and full.endswith(".md") and anchor not in doc_pages.anchors(os.path.relpath(full, REPO)):
            broken.append(f"{page}:{line}: {target} (no heading with that anchor)")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("page", PAGES + GENERATED)
def test_every_path_a_page_names_exists(page):
    """A path from the repository root in inline code (`results/cpu/table1.md`, `flags/cpu.flags`, a record's
    `results/cpu/runs/NAME`) names a file or folder that exists. Bare file names (`table1.md` in a column headed
    results/SCALE/) do not say where they are and are not checked; a file that a command would write but that
    is not committed is named without a path, with a word on why it is absent."""
    missing = [f"{page}:{line}: `{path}`" for line, path in doc_pages.named_paths(page)
               if not os.path.exists(os.path.join(REPO, path))]
    assert not missing, "no such file or folder:\n" + "\n".join(missing)


def test_the_path_check_tells_names_from_placeholders():
    line = ("written to `results/cpu/hiabp_mnist.md`, beside `results/SCALE/`, `results/<scale>/runs/<name>/`, "
            "`flags/*_lvae_l4.flags`, `flags/{mnist,svhn}_vae.flags`, `results/cpu/models/NAME`, `table1.md`, "
            "`./run.sh table1 cpu` and `hiabp_tf/tools/torch_peer.py`; see `results/README.md`")
    assert doc_pages.paths_in(line) == ["results/cpu/hiabp_mnist.md", "hiabp_tf/tools/torch_peer.py",
                                        "results/README.md"]


@pytest.mark.parametrize("block", BASH, ids=lambda b: b.name)
def test_every_bash_block_parses_and_names_files_that_exist(block):
    done = subprocess.run(["bash", "-n"], input=block.code, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{block.name}: {done.stderr}"
    for flagfile in re.findall(r"\bflags/[\w./-]+\.flags\b", block.code):
        assert os.path.isfile(os.path.join(REPO, flagfile)), f"{block.name}: {flagfile} does not exist"
    for module in re.findall(r"-m (hiabp_tf(?:\.\w+)+)", block.code):
        path = os.path.join(REPO, *module.split("."))
        assert os.path.isfile(path + ".py") or os.path.isfile(os.path.join(path, "__init__.py")), (
            f"{block.name}: python -m {module}: no such module")
    for line in block.code.splitlines():
        tokens = shlex.split(line, comments=True) if "./run.sh" in line else []
        if "./run.sh" in tokens:
            words = tokens[tokens.index("./run.sh") + 1:]
            assert not words or words[0].startswith("-") or words[0] in _run_sh_commands(), (
                f"{block.name}: ./run.sh has no command {words[0]!r}")


def _run_sh_commands() -> set[str]:
    """The commands and scales of run.sh's usage line."""
    with open(os.path.join(REPO, "run.sh")) as f:
        usage = next(line for line in f if line.startswith("usage="))
    return set(re.findall(r"[a-z][a-z0-9]*", usage.split("usage:", 1)[1])) - {"or", "run", "sh", "scales"}


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.name)
def test_every_python_block_compiles(block):
    compile(block.code, block.name, "exec")


@pytest.mark.parametrize("page", PAGES)
def test_doc_test_markers_are_known_and_precede_a_block(page):
    blocks = {b.line - 1: b for b in doc_pages.blocks(page)}
    for line, text in doc_pages.markers(page):
        block = blocks.get(line)
        assert block is not None, f"{page}:{line}: a doc-test marker must be the line just before a code fence"
        if block.lang == "bash":
            assert text == "run", f"{page}:{line}: a bash block's marker is <!-- doc-test: run -->"
        else:
            assert block.skip_reason, f"{page}:{line}: a python block's marker is <!-- doc-test: skip (REASON) -->"


def _prose(page: str) -> list[tuple[int, str]]:
    lines = list(doc_pages.prose_lines(page))
    # The generated blocks (README's results, docs/protocol.md's diagnosis) are their generators' business.
    kept = set(doc_pages.without_generated_blocks(doc_pages.read(page)).splitlines())
    return [(n, line) for n, line in lines if line in kept]


@pytest.mark.parametrize("page", [p for p in PAGES if p != MACHINES_PAGE])
def test_figures_of_minutes_and_seconds_live_on_one_page(page):
    """A figure that depends on the machine is stated once: in the results file that measured it, or on
    docs/machines.md. Prose elsewhere links to them."""
    found = [f"{page}:{n}: {m.group(0)!r}" for n, line in _prose(page) + _code_comments(page)
             for m in DURATION.finditer(line)]
    assert not found, "machine-dependent figures belong on docs/machines.md or in results/:\n" + "\n".join(found)


def _code_comments(page: str) -> list[tuple[int, str]]:
    out = []
    for block in doc_pages.blocks(page):
        for offset, line in enumerate(block.code.splitlines(), 1):
            if "#" in line and block.lang in ("bash", "python"):
                out.append((block.line + offset, line[line.index("#"):]))
    return out


def _paper_constants() -> dict:
    """claims.py's PAPER_TABLE1/2/3 and plan.py's TABLE1, read with ast (nothing imported)."""
    values = {}
    for module in ("claims", "plan"):
        with open(os.path.join(REPO, "hiabp_tf", "experiments", f"{module}.py")) as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                if name in ("PAPER_TABLE1", "PAPER_TABLE2", "PAPER_TABLE3", "TABLE1"):
                    values[name] = ast.literal_eval(node.value)
    return values


def _table(text: str, header_start: str) -> list[list[str]]:
    """The rows (cells) of the Markdown table whose header line starts with `header_start`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return [rows[0]] + rows[2:]  # the header, then the body (the separator row left out)


def test_the_papers_numbers_are_the_ones_the_claims_use():
    constants, text = _paper_constants(), doc_pages.read(PAPER_PAGE)
    labels = {label: (row, score) for row, label, score in constants["TABLE1"]}
    header, *rows = _table(text, "| method | MNIST MSE |")
    columns = {"MNIST": header.index("MNIST MSE"), "SVHN": header.index("SVHN MSE"),
               "CelebA": header.index("CelebA MSE")}
    assert {row[0] for row in rows} == {label for label, key in labels.items()
                                        if key in constants["PAPER_TABLE1"]["MNIST"]}
    for row in rows:
        for dataset, column in columns.items():
            assert float(row[column]) == constants["PAPER_TABLE1"][dataset][labels[row[0]]], (row[0], dataset)
    (_, *masks), (_, *errors) = _table(text, "| mask |")
    assert [float(e) for e in errors] == [constants["PAPER_TABLE2"][m] for m in ("pepper", "region10", "region20")]
    assert len(masks) == 3
    (_, *steps), (_, *mse) = _table(text, "| T (training and test) |")
    assert {int(t): float(v) for t, v in zip(steps, mse)} == constants["PAPER_TABLE3"]


@pytest.mark.parametrize("page", [p for p in PAGES if p not in (PAPER_PAGE, MACHINES_PAGE)])
def test_the_papers_numbers_are_written_on_one_page(page):
    """Pages that compare with the paper link to docs/paper.md instead of repeating its numbers."""
    constants = _paper_constants()
    numbers = {f"{v:.4f}" for table in constants["PAPER_TABLE1"].values() for v in table.values()}
    numbers |= {f"{v:.4f}" for v in constants["PAPER_TABLE2"].values()}
    numbers |= {f"{v:.4f}" for v in constants["PAPER_TABLE3"].values()}
    found = [f"{page}:{n}: {number}" for n, line in _prose(page) for number in re.findall(r"\d\.\d{4}\b", line)
             if number in numbers]
    assert not found, f"the paper's numbers belong on {PAPER_PAGE}:\n" + "\n".join(found)


def _expand(token: str) -> list[str]:
    """`mnist_{vae, abp}_long` -> mnist_vae_long, mnist_abp_long (the docs' shorthand for several runs)."""
    match = re.search(r"\{([^}]*)\}", token)
    if not match:
        return [token]
    return [name for part in match.group(1).split(",")
            for name in _expand(token[:match.start()] + part.strip() + token[match.end():])]


def test_the_plan_on_the_reproducing_page_is_the_plan(tmp_path, monkeypatch):
    """docs/reproducing.md's table of the cpu scale's runs names every run of hiabp_tf/experiments/plan.py
    (seeds aside), and no other (the SVHN column, planned where its data is prepared, is named below the table)."""
    from hiabp_tf.experiments import plan  # plain Python: no TensorFlow
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))  # a data dir without svhn_cropped
    text = doc_pages.read("docs/reproducing.md")
    table = text[text.index("| command | runs (`runs/cpu/NAME`) |"):].split("\n\n", 1)[0]
    documented = {name for token in re.findall(r"`([^`]+)`", table) for name in _expand(token)
                  if re.fullmatch(r"(mnist|celeba)_\w+", name)}
    planned = {re.sub(r"_seed\d+$", "", run.name) for run in plan.pool(plan.EXPERIMENTS, "cpu")}
    assert documented == planned, (f"in the plan, not on the page: {sorted(planned - documented)}; "
                                   f"on the page, not in the plan: {sorted(documented - planned)}")

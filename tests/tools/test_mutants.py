"""The mutation check's list and machinery (the check itself runs as `python -m hiabp_tf.tools.mutants`):
every mutant still applies to the code as it is, names tests that exist, and is reported as it should be."""

import ast
import os

import pytest

from hiabp_tf.tools import mutants

REPO = mutants.REPO


def _test_names(path):
    return {node.name for node in ast.walk(ast.parse(open(path).read())) if isinstance(node, ast.FunctionDef)}


def test_the_list_holds_the_issues_classes_and_every_mutant_applies_to_the_code_as_it_is():
    """At least 30 mutants; each one's old text occurs exactly once in its file (else a change to the code
    stranded it: update the mutant), it changes the text, and its tests exist."""
    assert len(mutants.MUTANTS) >= 30
    descriptions = " / ".join(m.description for m in mutants.MUTANTS)
    for words in ("encoder (eq. 5) on z_0", "generator (eq. 4) on z_0", "restarts its chains from N(0, I)",
                  "another row order", "sums the colour channels", "compared with the occluded input",
                  "energy ignores the prior's dependence", "KL ignore the prior's dependence", "log sigma term",
                  "left edge never reaches", "never retries a singular"):
        assert words in descriptions
    for mutant in mutants.MUTANTS:
        with open(os.path.join(REPO, mutant.file)) as f:
            assert mutants.mutate(f.read(), mutant) is not None, mutant
        assert mutant.old != mutant.new and mutant.tests and mutant.description
        assert mutant.equivalent is None or len(mutant.equivalent) > 20  # a reason, not a flag
        for test in mutant.tests:
            path, _, name = test.partition("::")
            assert os.path.isfile(os.path.join(REPO, path)), test
            assert not name or name in _test_names(os.path.join(REPO, path)), test
    assert len({(m.file, m.old, m.new) for m in mutants.MUTANTS}) == len(mutants.MUTANTS)


def test_mutate_refuses_an_old_text_found_other_than_once():
    mutant = mutants.Mutant("f.py", "a + b", "a - b", ("tests/x.py",), "subtracts")
    assert mutants.mutate("x = a + b\n", mutant) == "x = a - b\n"
    for text in ("x = a * b\n", "x = a + b\ny = a + b\n"):
        with pytest.raises(mutants.StaleMutant, match="occurs [02] times"):
            mutants.mutate(text, mutant)


def test_outcomes_and_pytest_exit_codes():
    plain = mutants.Mutant("f.py", "a", "b", ("t.py",), "d")
    equivalent = mutants.Mutant("f.py", "a", "b", ("t.py",), "d", equivalent="nothing a test could see changes")
    assert [mutants.pytest_status(code) for code in (0, 1, 2, 4, 5)] == ["passed", "failed", "error", "error",
                                                                          "error"]
    caught = mutants.Run("failed", "tests/t.py::test_x")
    assert mutants.outcome(plain, caught) == ("caught by `test_x` in `tests/t.py`", True)
    assert mutants.outcome(plain, mutants.Run("passed")) == ("**not caught**", False)
    assert mutants.outcome(equivalent, mutants.Run("passed"))[1]
    assert not mutants.outcome(equivalent, caught)[1]  # the list calls it equivalent: it is wrong
    assert not mutants.outcome(plain, mutants.Run("error"))[1]
    assert not mutants.outcome(plain, mutants.Run("timeout"))[1]
    assert not mutants.outcome(plain, None, stale="gone")[1]
    summary = "..F\n=== short test summary info ===\nFAILED tests/a.py::test_b[x-1] - AssertionError\n"
    assert mutants.first_failure(summary) == "tests/a.py::test_b[x-1]"


def test_the_report_has_a_row_per_mutant_in_its_section(tmp_path):
    multi_line = mutants.Mutant("f.py", "if a | b:\n    c\n", "", ("t.py", "u.py::test_v"), "drops it")
    rows = [("First", 1, multi_line, "caught by `test_w` in `t.py`", True, 12.0),
            ("Second", 2, mutants.MUTANTS[0], "**not caught**", False, 3.0)]
    header = dict(command="python -m hiabp_tf.tools.mutants", date="2026-01-01", source="commit abc",
                  machine="2 CPU cores", baseline="10 s")
    text = mutants.write_report(str(tmp_path / "mutation.md"), rows, header)
    assert text == (tmp_path / "mutation.md").read_text()
    assert text.startswith("# Mutation check of the tests\n\n*For ")
    assert "**2 mutants: 1 caught, 0 equivalent" in text and "1 not as they should be" in text
    assert text.index("## First") < text.index("| 1 | drops it |") < text.index("## Second")
    row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    assert "`if a \\| b: ⏎ c` → `(nothing)`" in row and "`t.py`<br>`test_v` in `u.py`" in row
    assert row.count(" | ") == 4  # five cells: the pipe in the code is escaped


def test_select_by_number_or_words():
    numbered = mutants.select(mutants.MUTANTS, "2, row order")
    assert numbered[0] == (2, mutants.MUTANTS[1])
    assert all("row order" in m.description for _, m in numbered[1:]) and len(numbered) >= 2
    assert len(mutants.select(mutants.MUTANTS, "")) == len(mutants.MUTANTS)

"""The package's layering: every import points down (or within its own folder), as the subpackages'
docstrings say. Read from the source with `ast`, so nothing is imported."""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "hiabp_tf")

# Bottom to top. A module may import a module of a lower layer, or one of its own group.
LAYERS = (
    ("errors", "sittings"),
    ("limits",),
    ("core", "data"),
    ("methods",),
    ("config",),
    ("workdir", "cli"),
    ("evaluation", "distribute"),
    ("train", "evaluate"),
    ("serving",),
    ("experiments", "tools"),
    ("export", "inpaint", "disentangle", "benchmark", "__init__"),  # entry modules
)
RANK = {group: rank for rank, groups in enumerate(LAYERS) for group in groups}


def _modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                yield os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, "."), path


def _group(module: str) -> str:
    """The concern of hiabp_tf.<module>: its folder, or the module itself at the top level."""
    head = module.split(".")[0]
    return head


def _imports(path: str):
    """The hiabp_tf modules a file imports (anywhere in it, function-level imports included)."""
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hiabp_tf"):
            base = node.module[len("hiabp_tf"):].lstrip(".")
            for alias in node.names:
                target = f"{base}.{alias.name}" if base else alias.name
                yield target.split(".")[0] if target.split(".")[0] in RANK else base.split(".")[0]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("hiabp_tf."):
                    yield alias.name.split(".")[1]


def test_every_module_has_a_layer():
    groups = {_group(module) for module, _ in _modules()}
    assert groups <= set(RANK), f"modules without a layer: {sorted(groups - set(RANK))}"
    for folder in ("core", "methods", "data", "evaluation", "serving", "experiments", "tools"):
        doc = ast.get_docstring(ast.parse(open(os.path.join(PACKAGE, folder, "__init__.py")).read()))
        assert doc and "import" in doc.lower(), f"hiabp_tf/{folder}/__init__.py must say what it may import"


@pytest.mark.parametrize("module,path", list(_modules()), ids=lambda v: v if "/" not in str(v) else "")
def test_imports_point_down(module, path):
    own = _group(module)
    upward = sorted({target for target in _imports(path)
                     if target != own and RANK[target] >= RANK[own]})
    assert not upward, f"hiabp_tf.{module} (layer {RANK[own]}) imports {upward}, which are not below it"


def test_the_top_level_shows_the_concerns():
    entries = sorted(name for name in os.listdir(PACKAGE) if not name.startswith(("_", ".")) or name == "__init__.py")
    folders = [name for name in entries if os.path.isdir(os.path.join(PACKAGE, name))]
    assert set(folders) >= {"core", "methods", "data", "evaluation", "serving", "experiments", "tools"}
    modules = [name for name in entries if name.endswith(".py")]
    assert len(modules) <= 15, f"the top level should hold a handful of entry and library modules: {modules}"

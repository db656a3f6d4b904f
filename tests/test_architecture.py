"""The package's layering: every import points down (or within its own folder), as the subpackages'
docstrings say. Read from the source with `ast`, so nothing is imported."""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "hiabp_tf")

# The top level: one module per command (python -m hiabp_tf.<command>) and the package face.
COMMANDS = ("train", "evaluate", "export", "inpaint", "disentangle", "benchmark", "__init__")
SUBPACKAGES = ("checks", "core", "data", "methods", "runtime", "evaluation", "training", "serving",
               "experiments", "tools")

# Bottom to top. A module may import a module of a lower layer, or one of its own group.
LAYERS = (
    ("checks",),
    ("core", "data"),
    ("methods",),
    ("config",),
    ("runtime",),
    ("evaluation",),
    ("training",),
    ("serving",),
    ("experiments", "tools"),
    COMMANDS,
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
    for folder in SUBPACKAGES:
        doc = ast.get_docstring(ast.parse(open(os.path.join(PACKAGE, folder, "__init__.py")).read()))
        assert doc and "import" in doc.lower(), f"hiabp_tf/{folder}/__init__.py must say what it may import"


@pytest.mark.parametrize("module,path", list(_modules()), ids=lambda v: v if "/" not in str(v) else "")
def test_imports_point_down(module, path):
    own = _group(module)
    upward = sorted({target for target in _imports(path)
                     if target != own and RANK[target] >= RANK[own]})
    assert not upward, f"hiabp_tf.{module} (layer {RANK[own]}) imports {upward}, which are not below it"


def test_the_top_level_is_the_commands():
    """`ls hiabp_tf/*.py` shows the entry points: the commands, the package face and config.py; the
    machinery is in the subpackages, whose names say what they hold."""
    entries = sorted(name for name in os.listdir(PACKAGE) if not name.startswith(("_", ".")) or name == "__init__.py")
    folders = {name for name in entries if os.path.isdir(os.path.join(PACKAGE, name)) and name != "__pycache__"}
    assert folders == set(SUBPACKAGES)
    modules = [name[:-3] for name in entries if name.endswith(".py")]
    assert len(modules) <= 10, f"at most 10 modules at the top level: {modules}"
    assert set(modules) <= set(COMMANDS) | {"config"}, f"not a command or the config: {set(modules) - set(COMMANDS)}"
    for command in set(modules) - {"config", "__init__"}:
        source = open(os.path.join(PACKAGE, f"{command}.py")).read()
        assert 'if __name__ == "__main__":' in source, f"hiabp_tf/{command}.py is not a command"
        assert len(source.splitlines()) <= 40, f"hiabp_tf/{command}.py should parse flags and call the library"


def _module_imports(path: str):
    """The hiabp_tf modules (dotted, below hiabp_tf) a file imports, anywhere in it."""
    for node in ast.walk(ast.parse(open(path).read())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hiabp_tf"):
            base = node.module[len("hiabp_tf"):].lstrip(".")
            names = [f"{base}.{alias.name}".lstrip(".") for alias in node.names]
            names = [n if os.path.exists(os.path.join(PACKAGE, *n.split(".")) + ".py") else base for n in names]
        elif isinstance(node, ast.Import):
            names = [alias.name[len("hiabp_tf."):] for alias in node.names if alias.name.startswith("hiabp_tf.")]
        for name in names:
            if name and os.path.isdir(os.path.join(PACKAGE, *name.split("."))):
                name += ".__init__"
            if name:
                yield name


def test_no_import_cycle():
    """No module imports itself back through others (function-level imports included)."""
    graph = {module: set(_module_imports(path)) - {module} for module, path in _modules()}
    state = {}

    def visit(module, trail):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", "import cycle: " + " -> ".join(trail[trail.index(module):] + [module])
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            visit(target, trail + [module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])

"""The package's layout (docs/layout.md): the wings, who may import whom, the commands.

    pytest tests/test_layout.py

Read from the source with `ast`, so a rule broken in a function's lazy import counts too.
"""
import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from netdsl import cli

PACKAGE = Path(__file__).resolve().parent.parent / "netdsl"
WINGS = ("language", "layers", "codegen", "devices", "runner", "datasets", "scale_invariance", "inspect", "importers", "commands")
TOP_LEVEL = {"__init__", "__main__", "cli", "errors", "files", "argtypes"}
# The runner, what it stands on and inspect/ know no experiment: only commands/ reaches scale_invariance/.
EXPERIMENT_FREE = ("language", "layers", "codegen", "devices", "runner", "datasets", "inspect")


def modules() -> list[tuple[str, Path]]:
    """(dotted name, path) of every module of netdsl/."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def imported(name: str, path: Path) -> set[str]:
    """Every module a module imports, at the top or inside a function, as absolute dotted names
    (`from .. import files` in netdsl.runner.data gives netdsl and netdsl.files); and any string
    naming a netdsl module, as importlib would take it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[:len(base) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("netdsl."):
            names.add(node.value)
    return names


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_package_is_its_wings_and_the_top_level_modules():
    top = {path.stem for path in PACKAGE.glob("*.py")}
    assert top == TOP_LEVEL, "a module at the top of netdsl/ that belongs in a wing (or a stale shim)"
    folders = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert folders == set(WINGS)


@pytest.mark.parametrize("wing", WINGS)
def test_each_wing_says_what_it_is_and_lists_its_modules(wing):
    init = PACKAGE / wing / "__init__.py"
    tree = ast.parse(init.read_text())
    doc = ast.get_docstring(tree)
    assert doc, f"netdsl/{wing}/__init__.py has no docstring"
    assert len(tree.body) == 1, f"netdsl/{wing}/__init__.py is its docstring only"
    for path in (PACKAGE / wing).glob("*.py"):
        if path.name != "__init__.py":
            assert path.name in doc, f"netdsl/{wing}/__init__.py does not list {path.name}"


def experiment_free() -> list[str]:
    """The modules of the experiment-free wings, and the top-level ones."""
    top = {"netdsl", *(f"netdsl.{module}" for module in TOP_LEVEL)}
    return [name for name, _ in modules()
            if name in top or any(within(name, f"netdsl.{wing}") for wing in EXPERIMENT_FREE)]


PATHS = dict(modules())


@pytest.mark.parametrize("name", experiment_free())
def test_the_runner_knows_no_experiment(name):
    """Nothing but commands/ imports netdsl.scale_invariance: the runner, the language, the code
    generator, the devices, the datasets and the top-level modules know no experiment."""
    found = sorted(m for m in imported(name, PATHS[name]) if within(m, "netdsl.scale_invariance"))
    assert not found, f"{name} imports {found}"


@pytest.mark.parametrize("name", [name for name in PATHS if not within(name, "netdsl.commands")
                                  and name != "netdsl.cli"])
def test_no_wing_reaches_up_to_the_commands(name):
    found = sorted(m for m in imported(name, PATHS[name]) if within(m, "netdsl.commands"))
    assert not found, f"{name} imports {found}"


def test_the_rule_is_checked_on_real_imports():
    """The walk sees relative imports, lazy ones and `from .. import wing`: it would catch a break."""
    found = imported("netdsl.commands.eval", PACKAGE / "commands" / "eval.py")
    assert "netdsl.scale_invariance.scale_eval" in found   # `from ..scale_invariance import scale_eval`, lazily
    assert "netdsl.runner.evaluate" in found
    found = imported("netdsl.scale_invariance.invariance", PACKAGE / "scale_invariance" / "invariance.py")
    assert "netdsl.runner.checkpoint.load_checkpoint" in found


def test_only_the_commands_define_flags():
    """argparse is the commands' (and the flag types' of argtypes.py): the wings take values."""
    for name, path in modules():
        if within(name, "netdsl.commands") or name in ("netdsl.cli", "netdsl.argtypes"):
            continue
        assert "argparse" not in imported(name, path), f"{name} imports argparse"


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_command_is_a_module_of_commands_with_add_arguments_and_run(command):
    module_name, help_text = cli.COMMANDS[command]
    assert module_name.startswith("netdsl.commands.") and help_text
    module = importlib.import_module(module_name)
    assert Path(module.__file__).resolve().parent == PACKAGE / "commands"
    assert callable(module.add_arguments) and callable(module.run)


def test_every_module_of_commands_is_a_command():
    listed = {module_name for module_name, _ in cli.COMMANDS.values()}
    present = {f"netdsl.commands.{path.stem}" for path in (PACKAGE / "commands").glob("*.py")
               if path.name != "__init__.py"}
    assert present == listed


def test_the_wheel_ships_every_wing():
    """pyproject.toml names each package: a wing missing there would be missing from a wheel."""
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11's")
    import tomllib

    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    packages = set(config["tool"]["setuptools"]["packages"])
    assert {"netdsl", *(f"netdsl.{wing}" for wing in WINGS)} <= packages


def test_every_subprocess_the_tests_start_has_a_timeout():
    """No test can hang the suite: every subprocess.run, communicate() and wait() in tests/ has a
    timeout (the processes a test starts with Popen end through one of them)."""
    missing = []
    for path in sorted(PACKAGE.parent.joinpath("tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name, owner = node.func.attr, node.func.value
            waits = name in ("communicate", "wait") and not (isinstance(owner, ast.Name) and owner.id == "self")
            runs = name == "run" and isinstance(owner, ast.Name) and owner.id == "subprocess"
            timed = any(k.arg == "timeout" for k in node.keywords) or (name == "wait" and node.args)
            if (waits or runs) and not timed:
                missing.append(f"{path.name}:{node.lineno}: {name}()")
    assert missing == []


def test_no_module_outside_the_layer_types_tests_a_type_by_name():
    """A layer type answers every question about itself (netdsl/layers/): no other module compares a
    layer's type with a name, nor lists type names."""
    from netdsl.layers.registry import REGISTRY

    found = []
    for name, path in modules():
        if within(name, "netdsl.layers"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Compare) and any(isinstance(side, ast.Attribute) and side.attr == "type"
                                                     for side in [node.left, *node.comparators]):
                names = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant)]
                if any(value in REGISTRY for value in names):
                    found.append(f"{path.name}:{node.lineno}")
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                listed = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                if len(listed) >= 2 and sum(value in REGISTRY for value in listed) >= 2:
                    found.append(f"{path.name}:{node.lineno}")
    assert found == []


def test_the_code_and_the_kernels_pass_ruff():
    """ruff, as pyproject.toml configures it, over netdsl/, tests/, bench/ and the plain kernel and helper
    files the generated modules include (codegen_templates/**/*.py.in)."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
                            cwd=PACKAGE.parent, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

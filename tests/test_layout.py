"""The package reads like the pipeline: a lower stage never imports a higher one, and no
module grows past the size a reader takes in at once.

Imports are read from the source with ``ast`` (those inside functions too, which is where the
lazy ones live), so the test needs nothing importable and catches an import on any path.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "streamer"
MAX_MODULE_LINES = 400

# stage -> rank; a module may import only modules of its own rank or lower
STAGES = {"vocabulary": 0, "engine": 1, "live": 2, "output": 3, "bench": 4, "entry": 5}
VOCABULARY = {"streamer", "streamer.audio", "streamer.audiofile", "streamer.config"}
VOCABULARY |= {"streamer.errors", "streamer.types", "streamer.vad", "streamer.languages"}
ENTRY = {"streamer.cli", "streamer.app", "streamer.__main__"}


def stage_of(module: str) -> str:
    """The stage a dotted module name belongs to (``streamer.vad`` -> ``live``)."""
    if module in VOCABULARY:
        return "vocabulary"
    if module in ENTRY:
        return "entry"
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in STAGES:
        return parts[1]
    raise AssertionError(f"{module} belongs to no stage; add it to tests/test_layout.py")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every ``streamer`` module the file imports, wherever in the file the import is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # ``from streamer import bench`` imports the submodule streamer.bench
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            found |= {name for name in submodules if _is_module(name)}
    return {name for name in found if name == "streamer" or name.startswith("streamer.")}


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    base = PACKAGE / relative
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_stage():
    assert SOURCES, f"no sources under {PACKAGE}"
    for path in SOURCES:
        stage_of(module_name(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lower_stages_never_import_higher_ones(path):
    module = module_name(path)
    rank = STAGES[stage_of(module)]
    upward = sorted(name for name in imported_modules(path) if STAGES[stage_of(name)] > rank)
    assert not upward, f"{module} ({stage_of(module)}) imports a higher stage: {upward}"


TESTS = sorted(Path(__file__).resolve().parent.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES + TESTS, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_modules_stay_small(path):
    n_lines = len(path.read_text(encoding="utf-8").splitlines())
    assert n_lines <= MAX_MODULE_LINES, (
        f"{path.relative_to(PACKAGE.parent)} has {n_lines} lines; split it along its seams"
    )


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule can fail: an engine module importing the live path is caught, also when the
    import hides inside a function."""
    source = tmp_path / "bad.py"
    source.write_text(
        "def f():\n    from streamer.live import buffer\n    from streamer import bench\n"
    )
    names = imported_modules(source)
    assert names == {"streamer", "streamer.live", "streamer.live.buffer", "streamer.bench"}
    upward = {name for name in names if STAGES[stage_of(name)] > STAGES["engine"]}
    assert upward == {"streamer.live", "streamer.live.buffer", "streamer.bench"}

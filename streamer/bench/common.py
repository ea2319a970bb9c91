"""What every benchmark needs around its figures: the evaluation manifest, status lines on
stderr, the machine and code the numbers belong to, and the report on stdout and in ``--json``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

from streamer.errors import ConfigError, DependencyError


def err(text: str) -> None:
    """A status line on stderr: stdout carries only the report."""
    print(text, file=sys.stderr, flush=True)


def require_psutil(command: str):
    """The psutil module, which ``bench <command>`` needs to watch the process."""
    try:
        import psutil
    except ImportError as error:
        raise DependencyError(
            f"bench {command} needs psutil: pip install -e '.[dev]' (or: pip install psutil)"
        ) from error
    return psutil


# --- the evaluation manifest ---------------------------------------------------------------------


def manifest_records(path: str | Path) -> list[dict]:
    """The JSON objects of an evaluation ``manifest.jsonl``, one per line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigError(
            f"cannot read manifest {path}: {error.strerror}; give the path of "
            "manifest.jsonl in the evaluation folder (../shared/eval)"
        ) from error
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as error:
            raise ConfigError(f"{path}:{number} is not a JSON object ({error})") from error
    return records


# --- what the numbers depend on ------------------------------------------------------------------


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo where there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def usable_cores() -> int | None:
    """The cores this process may run on (its affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def load_line(before: Sequence[float], after: Sequence[float]) -> str:
    """The 1, 5 and 15 minute load averages before and after a run, on one line."""
    return " / ".join(
        f"{label} {a:.2f} {b:.2f} {c:.2f}"
        for label, (a, b, c) in (("before", before), ("after", after))
    )


def code_state() -> str:
    """The commit the package was loaded from and the tracked files changed since (the
    numbers belong to that code), or "" outside a git checkout."""
    import subprocess

    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        # porcelain lines are "XY path": the status columns may start with a space
        changed = [line[3:] for line in git("status", "--porcelain", "-uno").splitlines()]
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"code: {commit}" + (f" + local changes in {', '.join(changed)}" if changed else "")


# --- the report ----------------------------------------------------------------------------------


def print_table(header: Sequence[str], render: Callable[[bool], object], legend: str = "") -> None:
    """Header lines, the table ``render(plain)`` makes and the legend on stdout: Rich on a
    terminal; otherwise plain text (a Markdown table) that a file or a test can read."""
    from rich.console import Console

    if sys.stdout.isatty():
        console = Console()
        for line in header:
            console.print(line)
        console.print(render(False))
        if legend:
            console.print(legend, style="dim")
        return
    console = Console(width=1000, no_color=True)  # wide enough that no cell wraps
    with console.capture() as capture:
        console.print(render(True))
    table = [line.rstrip() for line in capture.get().splitlines() if line.strip()]
    print("\n".join([*header, *table, *textwrap.wrap(legend, 100)]), flush=True)


def write_json_report(path: Path, report: dict) -> None:
    """Write a benchmark's ``--json`` report, with a one-line error if it cannot."""
    try:
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"cannot write {path}: {error.strerror}; choose another --json path"
        ) from error

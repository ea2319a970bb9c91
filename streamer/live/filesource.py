"""A file played as if it were a microphone, at wall-clock pace or on a virtual clock."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from streamer.audio import SAMPLE_RATE, ms_to_samples
from streamer.audiofile import audio_info, stream_audio
from streamer.types import AudioBlock

__all__ = ["FileSource"]


class FileSource:
    """Plays an audio file as if it were a microphone.

    ``pace="realtime"``: each block is returned when its last sample would have been captured,
    stamped with ``time.monotonic()``. ``pace="fast"``: blocks come as fast as they are read,
    stamped with a virtual clock, ``end_sample / 16000`` seconds since the start.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        pace: Literal["realtime", "fast"] = "realtime",
        block_ms: int = 30,
    ) -> None:
        if pace not in ("realtime", "fast"):
            raise ValueError(f"pace must be 'realtime' or 'fast', got {pace!r}")
        if block_ms <= 0:
            raise ValueError(f"block_ms must be positive, got {block_ms}")
        info = audio_info(path)  # a bad file fails here, not on the first read
        self.path = Path(path)
        self.pace = pace
        self.block_samples = ms_to_samples(block_ms)
        self.name = self.path.name
        self.native_rate = info.sample_rate
        self.channels = info.channels
        self.duration_s = info.duration_s
        self.xruns = 0
        self.dropped_blocks = 0
        self._blocks: Any = None
        self._pending: np.ndarray | None = None
        self._next_sample = 0
        self._started_at = 0.0
        self._closed = False

    def start(self) -> None:
        if self._blocks is None and not self._closed:
            self._blocks = stream_audio(self.path, self.block_samples)
            self._started_at = time.monotonic()

    def stop(self) -> None:
        """Stop playing; idempotent. ``closed`` becomes True."""
        if self._blocks is not None:
            self._blocks.close()
        self._closed = True

    def __enter__(self) -> FileSource:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def closed(self) -> bool:
        return self._closed

    def read(self, timeout_s: float) -> AudioBlock | None:
        """The next block; None when it is not due within ``timeout_s`` or the file ended."""
        if self._closed:
            return None
        if self._blocks is None:
            raise RuntimeError("FileSource.read() before start()")
        if self._pending is None:
            self._pending = next(self._blocks, None)
            if self._pending is None:
                self.stop()
                return None
        end_sample = self._next_sample + len(self._pending)
        if self.pace == "realtime":
            wait_s = self._started_at + end_sample / SAMPLE_RATE - time.monotonic()
            if wait_s > timeout_s:
                time.sleep(max(0.0, timeout_s))
                return None
            time.sleep(max(0.0, wait_s))
            captured_at_s = time.monotonic()
        else:
            captured_at_s = end_sample / SAMPLE_RATE
        block = AudioBlock(self._next_sample, self._pending, captured_at_s)
        self._next_sample, self._pending = end_sample, None
        return block

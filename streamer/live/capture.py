"""Audio sources: a microphone or a file, both giving 16 kHz mono ``AudioBlock``s.

``AudioSource`` is the seam: the pipeline calls ``start()``, then ``read(timeout_s)`` in a loop
until ``closed``, then ``stop()``. ``MicSource`` (``streamer.live.mic``) records a sounddevice
input stream; ``FileSource`` (``streamer.live.filesource``) plays a file at wall-clock pace or
as fast as it is read. Downstream cannot tell them apart.

Time: ``AudioBlock.start_sample`` counts 16 kHz samples since ``start()``, and blocks are
contiguous. For a microphone, blocks dropped because the queue was full are replaced by silence
of the same length, so sample indices keep matching wall-clock time; the count of dropped
blocks says how much of that silence is not real.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from streamer.config import Config
from streamer.live.filesource import FileSource
from streamer.live.mic import MicSource
from streamer.types import AudioBlock

__all__ = ["AudioSource", "build_source"]


@runtime_checkable
class AudioSource(Protocol):
    """Where audio comes from. ``read`` returns the next block, mono float32 at 16 kHz.

    ``read(timeout_s)`` returns None when no block arrived within ``timeout_s`` or when the
    source is ``closed`` (end of file, or ``stop()`` was called): the caller loops until
    ``closed``. Counters are cumulative since construction.
    """

    name: str  # for the UI: device or file name
    native_rate: int  # Hz, before resampling to 16 kHz
    channels: int  # before down-mixing to mono
    xruns: int  # input overflows reported by the driver
    dropped_blocks: int  # blocks lost because the consumer fell behind

    @property
    def closed(self) -> bool: ...

    def start(self) -> None: ...

    def read(self, timeout_s: float) -> AudioBlock | None: ...

    def stop(self) -> None: ...


def build_source(config: Config, input_path: str | None) -> AudioSource:
    """A file played through the live path when ``input_path`` is given, else the microphone."""
    if input_path:
        return FileSource(input_path, pace=config.stream.pace, block_ms=config.audio.block_ms)
    return MicSource(config.audio.device, config.audio.block_ms, config.audio.queue_blocks)

"""The capture thread: reads the source, feeds the VAD and the ring buffer, and never waits
on the model.

What it tells the inference thread crosses a queue as records: each VAD event with the audio
end at which the gate emitted it (``Decided``), then the end of the source (``StreamEnd``).
``CaptureState`` is what it has captured so far, for the inference thread's clock and stats.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from streamer.audio import SAMPLE_RATE, ms_to_samples
from streamer.errors import AudioDeviceError, StreamerError
from streamer.live.buffer import RingBuffer
from streamer.live.capture import AudioSource
from streamer.live.mic import DeviceLostError
from streamer.live.outlet import EventOutlet
from streamer.types import Notice, VadEvent
from streamer.vad import VadGate

POLL_S = 0.01
REOPEN_EVERY_S = 1.0


@dataclass(frozen=True)
class StreamEnd:
    """Capture saw the end of the source at ``end_sample``."""

    end_sample: int


@dataclass(frozen=True)
class Decided:
    """A VAD event and the audio end when the gate emitted it: an endpoint at sample s is
    only known a hangover later. The inference thread acts on it at ``known_at_sample`` (the
    event's own samples are never later), so at fast pace no sooner than a live stream could."""

    event: VadEvent
    known_at_sample: int


@dataclass
class CaptureState:
    """Written by the capture thread only; read (racily, for display) by the others."""

    captured_samples: int = 0
    first_capture_s: float | None = None  # clock time of the first sample
    level_db: float = -120.0
    vad_state: str = "silence"
    xruns: int = 0
    dropped_blocks: int = 0


class Listener:
    """The capture thread's work; ``run`` is its loop (``Pipeline`` starts the thread)."""

    def __init__(
        self,
        source: AudioSource,
        ring: RingBuffer,
        vad: VadGate,
        block_ms: int,
        outlet: EventOutlet,
        stop_event: threading.Event,
        virtual_clock: bool,
    ):
        self.source, self.ring, self.vad = source, ring, vad
        self.block_ms = block_ms
        self.outlet = outlet
        self.stop_event = stop_event
        self.virtual_clock = virtual_clock
        self.state = CaptureState()
        self.decided: queue.Queue = queue.Queue(maxsize=10_000)  # Decided, then a StreamEnd
        self.dropped_decisions = 0
        self.source_error: StreamerError | None = None  # the source failed part way

    def run(self) -> None:
        state = self.state
        block_samples = ms_to_samples(self.block_ms)
        while not self.stop_event.is_set():
            if self.virtual_clock:
                self._wait_for_room(block_samples)
            try:
                block = self.source.read(timeout_s=0.1)
            except DeviceLostError as error:
                self.outlet.emit(Notice(f"{error}; waiting for the device to return"))
                self._reopen_when_back()
                continue
            except StreamerError as error:  # e.g. a file corrupt part way: end the stream here
                self.source_error = error
                break
            if block is None:
                if self.source.closed:
                    break
                continue
            if state.first_capture_s is None:
                state.first_capture_s = block.captured_at_s - len(block.samples) / SAMPLE_RATE
            samples = self._align(block.start_sample, block.samples)
            self.ring.write(samples)
            events = self.vad.process(samples)
            for event in events:
                self._post_vad(Decided(event, self.ring.end_sample))
            # after the events: audio counted as captured has had its VAD events posted
            state.captured_samples = self.ring.end_sample
            state.level_db, state.vad_state = self.vad.level_db, self.vad.state
            state.xruns, state.dropped_blocks = self.source.xruns, self.source.dropped_blocks
        for event in self.vad.flush():
            self._post_vad(Decided(event, self.ring.end_sample))
        self._post_vad(StreamEnd(self.ring.end_sample))

    def _align(self, start_sample: int, samples: np.ndarray) -> np.ndarray:
        """Keep the ring contiguous in absolute time: silence fills a gap (device lost and
        back), an overlap is dropped."""
        gap = start_sample - self.ring.end_sample
        if gap > 0:
            fill = min(gap, self.ring.capacity_samples)
            return np.concatenate([np.zeros(fill, dtype=np.float32), samples])
        if gap < 0:
            return samples[-gap:]
        return samples

    def _wait_for_room(self, block_samples: int) -> None:
        """Virtual clock only: capture may not lap the inference thread in the ring."""
        limit = self.ring.capacity_samples - 2 * block_samples
        while (
            self.ring.end_sample - self.ring.consumed_sample > limit
            and not self.stop_event.is_set()
        ):
            time.sleep(POLL_S)

    def _reopen_when_back(self) -> None:
        reopen = getattr(self.source, "reopen", None)
        while not self.stop_event.wait(REOPEN_EVERY_S):
            if reopen is None:
                return
            try:
                reopen()
            except AudioDeviceError:  # still missing, or lost again
                continue
            except Exception as error:  # noqa: BLE001 - any other failure means: still gone
                if "lost" not in str(error).lower() and "not found" not in str(error).lower():
                    raise
                continue
            self.outlet.emit(Notice("input device is back; capture resumed", "info"))
            return

    def _post_vad(self, event: Decided | StreamEnd) -> None:
        try:
            self.decided.put_nowait(event)
        except queue.Full:  # 10k pending endpoints means inference is hopelessly behind
            self.dropped_decisions += 1

"""The microphone: a sounddevice input stream turned into 16 kHz mono ``AudioBlock``s.

Blocks dropped because the queue was full are replaced by silence of the same length, so
sample indices keep matching wall-clock time; ``dropped_blocks`` says how much of that silence
is not real. A device that vanishes is noticed within about a second and raises
``DeviceLostError``; ``reopen()`` resumes on the same device once it is back.
"""

from __future__ import annotations

import contextlib
import os
import queue
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from streamer.audio import SAMPLE_RATE
from streamer.errors import AudioDeviceError
from streamer.live.devices import (
    InputDevice,
    import_sounddevice,
    pulse_source_exists,
    refresh_portaudio,
    resolve_input_device,
)
from streamer.live.inputstream import open_input_stream
from streamer.types import AudioBlock

__all__ = ["DeviceLostError", "MicSource"]

RESAMPLE_QUALITY = "HQ"
SOURCE_CHECK_S = 1.0  # how often a PulseAudio source is checked to still exist
DEAD_AFTER_S = 3.0  # no callback for this long (after the first) means the device is gone
FIRST_BLOCK_TIMEOUT_S = 10.0  # PulseAudio monitors can take ~2 s to deliver the first block


class DeviceLostError(AudioDeviceError):
    """The input device stopped delivering audio (unplugged, server gone). ``reopen()`` retries."""


class _To16k:
    """Streaming soxr resampler from one native rate to 16 kHz (a no-op at 16 kHz)."""

    def __init__(self, native_rate: int) -> None:
        self._resampler = None
        if native_rate != SAMPLE_RATE:
            self._resampler = soxr.ResampleStream(
                native_rate, SAMPLE_RATE, 1, dtype="float32", quality=RESAMPLE_QUALITY
            )

    def __call__(self, mono: np.ndarray) -> np.ndarray:
        if self._resampler is None:
            return mono
        return self._resampler.resample_chunk(mono)


@dataclass(frozen=True)
class _Captured:
    """One callback's worth of input, exactly as the driver gave it."""

    first_frame: int  # running count of native frames before this block, per stream
    captured_at_s: float  # time.monotonic() in the callback
    frames: np.ndarray  # (n, channels) float32, a copy of indata


class MicSource:
    """Records an input device through a sounddevice callback stream.

    The callback only copies, stamps and enqueues; down-mixing and resampling happen in
    ``read()`` on the consumer's thread. A device that disappears makes ``read()`` raise
    ``DeviceLostError``; call ``reopen()`` until it succeeds to continue. Sample indices then
    carry on from where they stopped: the time without a device is not in the indices.
    """

    def __init__(self, device: str = "", block_ms: int = 30, queue_blocks: int = 200) -> None:
        if not 5 <= block_ms <= 500:
            raise ValueError(f"block_ms must be between 5 and 500, got {block_ms}")
        if queue_blocks < 1:
            raise ValueError(f"queue_blocks must be at least 1, got {queue_blocks}")
        self.device_spec = device
        self.block_ms = block_ms
        self.xruns = 0
        self.dropped_blocks = 0
        self.name = ""
        self.native_rate = 0
        self.channels = 0
        self._queue: queue.Queue[_Captured] = queue.Queue(maxsize=queue_blocks)
        self._stream: Any = None
        self._device: InputDevice | None = None
        self._to_16k: _To16k | None = None
        self._callback_frames = 0  # written by the callback only
        self._stream_finished = False  # set by PortAudio's finished callback
        self._next_frame = 0  # native frames of this stream turned into 16 kHz so far
        self._next_sample = 0  # 16 kHz samples handed out so far, all streams together
        self._opened_at = 0.0
        self._last_arrival = 0.0  # monotonic time of the last callback block read
        self._last_check = 0.0
        self._lost: str = ""
        self._closed = False
        self._saved_pulse_source: str | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the device and start recording; raises AudioDeviceError / DependencyError."""
        if self._stream is not None:
            return
        self._closed = False
        try:
            device = resolve_input_device(self.device_spec)
        except AudioDeviceError:
            # PortAudio lists devices once per process; one plugged in (or a sound server
            # started) since then is only seen after a rescan.
            refresh_portaudio()
            device = resolve_input_device(self.device_spec)
        self._open(device)

    def stop(self) -> None:
        """Stop recording and release the device; idempotent. ``closed`` becomes True."""
        self._close_stream()
        self._closed = True

    def reopen(self) -> None:
        """After ``DeviceLostError``: find the same device again and resume recording.

        Raises ``AudioDeviceError`` while it is still missing; call again later.
        """
        self._close_stream()
        refresh_portaudio()
        self._open(resolve_input_device(self.device_spec))
        self._lost = ""  # only now: a failed attempt leaves read() raising DeviceLostError
        self._closed = False

    def __enter__(self) -> MicSource:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def lost(self) -> bool:
        """True from the moment the device loss is noticed until ``reopen()`` succeeds."""
        return bool(self._lost)

    @property
    def device(self) -> InputDevice | None:
        return self._device

    # --- the audio callback (PortAudio's thread) ---------------------------------------------

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """Copy, stamp, enqueue, count. Nothing here may block or allocate much."""
        if status.input_overflow:
            self.xruns += 1
        captured = _Captured(self._callback_frames, time.monotonic(), indata.copy())
        self._callback_frames += frames
        try:
            self._queue.put_nowait(captured)
        except queue.Full:
            self.dropped_blocks += 1

    def _on_finished(self) -> None:
        self._stream_finished = True

    # --- the consumer's side ---------------------------------------------------------------------

    def read(self, timeout_s: float) -> AudioBlock | None:
        """The next 16 kHz block, None after ``timeout_s`` without one or once closed.

        Raises ``DeviceLostError`` once the device is gone (within about a second), and again
        on every call until ``reopen()`` succeeds.
        """
        deadline = time.monotonic() + timeout_s
        while not self._closed:
            self._check_health(time.monotonic())
            if self._lost:
                raise DeviceLostError(self._lost)
            try:
                captured = self._queue.get(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    self._check_health(time.monotonic())
                    if self._lost:
                        raise DeviceLostError(self._lost) from None
                    return None
                continue
            block = self._to_block(captured)
            if block is not None:
                return block
        return None

    def _to_block(self, captured: _Captured) -> AudioBlock | None:
        assert self._to_16k is not None
        self._last_arrival = captured.captured_at_s
        mono = _downmix(captured.frames)
        missing = captured.first_frame - self._next_frame
        if missing > 0:  # blocks dropped on a full queue: keep time aligned with silence
            mono = np.concatenate([np.zeros(missing, dtype=np.float32), mono])
        self._next_frame = captured.first_frame + len(captured.frames)
        samples = self._to_16k(mono)
        if len(samples) == 0:
            return None  # the resampler is still filling its filter
        block = AudioBlock(self._next_sample, samples, captured.captured_at_s)
        self._next_sample += len(samples)
        return block

    def _check_health(self, now: float) -> None:
        """Decide whether the device is gone; cheap except for one pactl call per second."""
        if self._stream is None or self._lost:
            return
        if self._stream_finished or not self._stream.active:
            self._mark_lost(f"input device {self.name!r} stopped (unplugged or server gone)")
            return
        if self._queue.empty():
            since = now - (self._last_arrival or self._opened_at)
            limit = DEAD_AFTER_S if self._last_arrival else FIRST_BLOCK_TIMEOUT_S
            if since > limit:
                self._mark_lost(f"input device {self.name!r} delivered no audio for {since:.0f} s")
                return
        # PulseAudio moves a stream whose source vanished onto another source at once, so
        # the audio keeps flowing: only asking the server tells that the source is gone.
        if now - self._last_check >= SOURCE_CHECK_S:
            self._last_check = now
            if self._source_gone():
                self._mark_lost(f"input source {self._device.pulse_source!r} disappeared")

    def _source_gone(self) -> bool:
        """For a PulseAudio source: True when pactl positively says it no longer exists."""
        if self._device is None or not self._device.pulse_source:
            return False
        return pulse_source_exists(self._device.pulse_source) is False

    def _mark_lost(self, reason: str) -> None:
        """Close the stream and drop what is queued: after a PulseAudio move, the last second
        may come from another source."""
        self._lost = f"{reason}; waiting for it to come back"
        self._close_stream()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()

    # --- opening and closing ---------------------------------------------------------------------

    def _open(self, device: InputDevice) -> None:
        sounddevice = import_sounddevice()
        # Reset per-stream counters first: the callback may run before open_input_stream returns.
        self._callback_frames = self._next_frame = 0
        self._stream_finished = False
        self._last_arrival = 0.0
        self._set_pulse_source(device.pulse_source)
        try:
            stream, rate = open_input_stream(
                sounddevice, device, self.block_ms, self._callback, self._on_finished
            )
        except BaseException:
            self._restore_pulse_source()
            raise
        self._device = device
        self._stream = stream
        self.name = device.name
        self.native_rate = rate
        self.channels = device.capture_channels
        self._to_16k = _To16k(rate)
        self._opened_at = self._last_check = time.monotonic()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):  # a vanished device may fail to stop cleanly
                stream.abort()
            with contextlib.suppress(Exception):
                stream.close()
        self._restore_pulse_source()

    def _set_pulse_source(self, source: str) -> None:
        """Route the ALSA ``pulse`` device to ``source`` for as long as the stream lives.

        libpulse reads PULSE_SOURCE whenever the plugin (re)connects, also on xrun recovery,
        so it stays set until the stream is closed. One MicSource per process can do this.
        """
        if not source:
            return
        self._saved_pulse_source = os.environ.get("PULSE_SOURCE", "")
        os.environ["PULSE_SOURCE"] = source

    def _restore_pulse_source(self) -> None:
        if self._saved_pulse_source is None:
            return
        if self._saved_pulse_source:
            os.environ["PULSE_SOURCE"] = self._saved_pulse_source
        else:
            os.environ.pop("PULSE_SOURCE", None)
        self._saved_pulse_source = None


def _downmix(frames: np.ndarray) -> np.ndarray:
    """(n, channels) -> (n,) float32 by the mean of the channels."""
    if frames.shape[1] == 1:
        return np.ascontiguousarray(frames[:, 0], dtype=np.float32)
    return frames.mean(axis=1, dtype=np.float32)

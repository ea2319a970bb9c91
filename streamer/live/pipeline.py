"""Threads of live transcription: capture -> VAD -> ring buffer -> inference -> events.

The capture thread reads the source, feeds the VAD and the ring buffer and never waits on the
model. The inference thread decodes the current utterance whenever enough new audio arrived
and posts typed events (Committed, Tentative, Endpoint, Stats, Notice) on a bounded queue
that the caller drains. This is the only module that creates threads; stopping is one Event,
and an exception in a worker is re-raised in the caller by ``next_event``.

With ``virtual_clock`` (a file at ``--pace fast``) the inference thread keeps its own time:
each step advances it by its measured compute time (or, with ``stream.virtual_cpu_speed``,
by its modelled cost, so that runs repeat exactly), a step is taken when a live stream's
would be, and a VAD event counts only from the audio sample at which the gate emitted it,
so fast runs schedule like real time and give the same figures in a fraction of the time.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from streamer.audio import SAMPLE_RATE, ms_to_samples, seconds_to_samples
from streamer.config import Config
from streamer.engine.transcribe import Engine
from streamer.errors import AudioDeviceError, StreamerError
from streamer.live.buffer import RingBuffer
from streamer.live.capture import AudioSource, DeviceLostError
from streamer.live.stepcost import REFERENCE_COST
from streamer.live.streaming import Reading, StepResult, StreamingTranscriber
from streamer.live.vad import VadGate
from streamer.types import (
    Committed,
    Endpoint,
    Notice,
    PauseOnset,
    PipelineEvent,
    SpeechEnd,
    SpeechPause,
    SpeechStart,
    Stats,
    Tentative,
    VadEvent,
)

JOIN_TIMEOUT_S = 5.0
POLL_S = 0.01
REOPEN_EVERY_S = 1.0


@dataclass(frozen=True)
class Finished:
    """The stream ended (or stop was asked) and everything was committed."""

    reason: str  # "end_of_stream" | "stopped"


@dataclass(frozen=True)
class _StreamEnd:
    """Capture saw the end of the source at ``end_sample``."""

    end_sample: int


@dataclass(frozen=True)
class _Decided:
    """A VAD event and the audio end when the gate emitted it: an endpoint at sample s is
    only known a hangover later. The inference thread acts on it at ``known_at_sample`` (the
    event's own samples are never later), so at fast pace no sooner than a live stream could."""

    event: VadEvent
    known_at_sample: int


@dataclass
class _CaptureState:
    """Written by the capture thread only; read (racily, for display) by the others."""

    captured_samples: int = 0
    first_capture_s: float | None = None  # clock time of the first sample
    level_db: float = -120.0
    vad_state: str = "silence"
    xruns: int = 0
    dropped_blocks: int = 0


class Pipeline:
    """Live transcription of one audio source. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        source: AudioSource,
        engine: Engine,
        config: Config,
        virtual_clock: bool = False,
        output_queue_size: int = 1000,
    ):
        self.source, self.engine, self.config = source, engine, config
        self.virtual_clock = virtual_clock
        self.stop_event = threading.Event()
        self.ring = RingBuffer(seconds_to_samples(config.audio.ring_seconds))
        self.vad = VadGate(config.vad)
        self.transcriber = StreamingTranscriber(
            engine, config.decode, config.stream, pre_roll_ms=config.vad.pre_roll_ms
        )
        self._vad_events: queue.Queue = queue.Queue(maxsize=10_000)
        self._out: queue.Queue = queue.Queue(maxsize=output_queue_size)
        self._errors: queue.Queue = queue.Queue()
        self._capture = _CaptureState()
        self._threads: list[threading.Thread] = []
        self._dropped_events = 0
        self._decoded_end = 0
        # where the newest reading's window ended, if it was not rejected and kept its window
        self._heard_end_sample = 0
        self._read_ahead: Reading | None = None  # taken at a pause's onset, judged if it comes
        self._rtf = 0.0
        self._last_latency: float | None = None
        self.source_error: StreamerError | None = None  # the source failed part way
        self._virtual_now = 0.0  # the virtual clock's time, for stats
        self._reader_gone = False  # stopped and nobody drained the events for a while

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        self.source.start()
        self._threads = [
            threading.Thread(
                target=self._guard, args=(self._capture_loop,), name="streamer-capture", daemon=True
            ),
            threading.Thread(
                target=self._guard,
                args=(self._inference_loop,),
                name="streamer-inference",
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Ask every thread to finish (the tentative tail is committed) and join them."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT_S)
        self.source.stop()

    def alive_threads(self) -> list[str]:
        return [thread.name for thread in self._threads if thread.is_alive()]

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _guard(self, loop) -> None:
        """Run a worker loop; an exception stops everything and reaches the caller."""
        try:
            loop()
        except BaseException as error:  # noqa: BLE001 - forwarded, re-raised by next_event
            self._errors.put(error)
            self.stop_event.set()

    def next_event(self, timeout_s: float) -> PipelineEvent | Finished | None:
        """The next event for the UI/sinks; re-raises a worker's exception here."""
        try:
            raise self._errors.get_nowait()
        except queue.Empty:
            pass
        try:
            return self._out.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def _emit(self, event, essential: bool = True) -> None:
        """Committed text, endpoints and notices wait for room; the rest may be dropped.

        After stop, an essential event waits at most JOIN_TIMEOUT_S for a reader (stale
        tentative/stats events are discarded to make room): nobody reading means nobody to
        show it to, and the thread must still end."""
        if essential and not self._reader_gone:
            give_up = None
            while True:
                try:
                    self._out.put(event, timeout=0.1)
                    return
                except queue.Full:
                    if not self.stop_event.is_set():
                        continue
                    self._drain_droppable()
                    give_up = give_up or time.monotonic() + JOIN_TIMEOUT_S / 2
                    if time.monotonic() > give_up:
                        self._reader_gone = True  # later events do not wait again
                        break
        try:
            self._out.put_nowait(event)
        except queue.Full:
            self._dropped_events += 1

    def _drain_droppable(self) -> None:
        """Make room by discarding stale tentative/stats events (never commits)."""
        kept = []
        while True:
            try:
                event = self._out.get_nowait()
            except queue.Empty:
                break
            if not isinstance(event, (Tentative, Stats)):
                kept.append(event)
        for event in kept:
            self._out.put_nowait(event)

    # --- capture thread ------------------------------------------------------------------------

    def _capture_loop(self) -> None:
        state = self._capture
        block_samples = ms_to_samples(self.config.audio.block_ms)
        while not self.stop_event.is_set():
            if self.virtual_clock:
                self._wait_for_room(block_samples)
            try:
                block = self.source.read(timeout_s=0.1)
            except DeviceLostError as error:
                self._emit(Notice(f"{error}; waiting for the device to return"))
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
                self._post_vad(_Decided(event, self.ring.end_sample))
            # after the events: audio counted as captured has had its VAD events posted
            state.captured_samples = self.ring.end_sample
            state.level_db, state.vad_state = self.vad.level_db, self.vad.state
            state.xruns, state.dropped_blocks = self.source.xruns, self.source.dropped_blocks
        for event in self.vad.flush():
            self._post_vad(_Decided(event, self.ring.end_sample))
        self._post_vad(_StreamEnd(self.ring.end_sample))

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
            self._emit(Notice("input device is back; capture resumed", "info"))
            return

    def _post_vad(self, event: _Decided | _StreamEnd) -> None:
        try:
            self._vad_events.put_nowait(event)
        except queue.Full:  # 10k pending endpoints means inference is hopelessly behind
            self._dropped_events += 1

    # --- inference thread ----------------------------------------------------------------------

    def _inference_loop(self) -> None:
        stream = self.config.stream
        min_step = ms_to_samples(stream.min_step_ms)
        first_step = ms_to_samples(stream.first_step_ms + self.config.vad.pre_roll_ms)
        pending: deque = deque()
        cursor = 0  # audio up to here has been considered
        last_decode = 0
        in_speech = False
        stream_end: int | None = None
        virtual_now = 0.0
        while not self.stop_event.is_set():
            # read first: every VAD event of the audio up to ``captured`` is queued by now
            captured = self._capture.captured_samples
            while True:
                try:
                    event = self._vad_events.get_nowait()
                except queue.Empty:
                    break
                if isinstance(event, _StreamEnd):
                    stream_end = event.end_sample
                else:
                    pending.append(event)
            if self.virtual_clock:
                # wake as a live stream would: when a step is due or the gate said something,
                # and no sooner than the last step's compute time allows
                wake = [last_decode + min_step] if in_speech else [cursor + min_step]
                if pending:
                    wake.append(pending[0].known_at_sample)
                limit = max(min(wake), int(virtual_now * SAMPLE_RATE), cursor)
                if captured < limit and stream_end is None:
                    time.sleep(POLL_S)
                    continue
                limit = min(limit, self.ring.end_sample)
                virtual_now = max(virtual_now, limit / SAMPLE_RATE)  # that audio has arrived
            else:
                limit = self.ring.end_sample
                due = in_speech and limit - last_decode >= min_step
                event_due = pending and pending[0].known_at_sample <= limit
                if not due and not event_due and stream_end is None:
                    time.sleep(POLL_S)
                    continue
            while pending and pending[0].known_at_sample <= limit:
                event = pending.popleft().event
                if isinstance(event, SpeechStart):
                    in_speech = True
                    self.transcriber.start_utterance(event.start_sample)
                    # the first decode waits for first_step of audio after the onset
                    last_decode = max(last_decode, event.start_sample + first_step - min_step)
                elif isinstance(event, PauseOnset):
                    step_due = limit - last_decode >= min_step  # a step due now reads it all
                    if (
                        in_speech
                        and not step_due
                        and self._worth_reading_ahead(event, last_decode, first_step)
                    ):
                        self._read_ahead, virtual_now = self._read(event.at_sample, virtual_now)
                elif isinstance(event, SpeechPause):
                    if in_speech and last_decode > self.transcriber.window_start:
                        virtual_now = self._pause(event, virtual_now)
                        last_decode = max(last_decode, event.at_sample)
                else:
                    virtual_now = self._end_utterance(event, virtual_now, last_decode)
                    last_decode = max(last_decode, event.end_sample)
                    in_speech = False
            if in_speech and limit - last_decode >= min_step:
                virtual_now = self._decode_step(limit, virtual_now)
                last_decode = limit
            if not in_speech:
                self.ring.consume(max(0, limit - ms_to_samples(self.config.vad.pre_roll_ms)))
            cursor = limit
            if self.virtual_clock:
                self._virtual_now = virtual_now
            if stream_end is not None and not pending and cursor >= stream_end:
                self._finish("end_of_stream", virtual_now)
                return
        self._finish("stopped", virtual_now)

    def _now(self, virtual_now: float) -> float:
        if self.virtual_clock:
            return virtual_now
        first = self._capture.first_capture_s
        return 0.0 if first is None else time.monotonic() - first

    def _decode_step(self, end_sample: int, virtual_now: float) -> float:
        self._read_ahead = None  # a reading taken since replaces one taken ahead of a pause
        reading, virtual_now = self._read(end_sample, virtual_now)
        return self._apply(reading, virtual_now)

    def _read(self, end_sample: int, virtual_now: float) -> tuple[Reading, float]:
        """Decode the window up to ``end_sample``; the virtual clock moves on by its cost."""
        audio = self._window(self.transcriber.window_start, end_sample)
        reading = self.transcriber.read(audio)
        return reading, max(virtual_now, end_sample / SAMPLE_RATE) + self._read_cost(reading)

    def _apply(self, reading: Reading, virtual_now: float) -> float:
        """Let the commit policy judge ``reading`` and send what it decided."""
        end_sample = reading.window_end
        result = self.transcriber.apply(reading, None if self.virtual_clock else self._now(0.0))
        new_audio = end_sample - max(self._decoded_end, reading.window_start)
        self._decoded_end = end_sample
        # a reading that moved the window stopped short of its end (it missed words)
        kept = self.transcriber.window_start == reading.window_start
        self._heard_end_sample = end_sample if kept and not result.rejected else 0
        result = _restamp(result, virtual_now if self.virtual_clock else self._now(0.0))
        self._publish(result, new_audio)
        self.transcriber.maybe_trim(end_sample)
        self.ring.consume(min(self.transcriber.window_start, self.ring.end_sample))
        return virtual_now

    def _read_cost(self, reading: Reading) -> float:
        """Seconds a reading takes on the virtual clock: measured, or modelled from its work."""
        speed = self.config.stream.virtual_cpu_speed
        if speed <= 0:
            return reading.compute_s
        return REFERENCE_COST.seconds(reading.work, speed)

    def _worth_reading_ahead(self, event: PauseOnset, last_decode: int, first_step: int) -> bool:
        """Whether to read the words before a silence that may become a pause now: the pause
        then makes them final without a decode after it, a step's compute time sooner. The
        reading is kept aside and judged only if the pause comes, and dropped if the voice
        comes back first: judged at once, squeezed in between two steps, it would agree with
        its neighbours too early (README). Not before the window holds the first step's
        audio (short windows are where Whisper invents), nor if the newest reading already
        heard the voice stop."""
        window_start = self.transcriber.window_start
        long_enough = event.at_sample - window_start >= first_step
        return long_enough and window_start < last_decode < event.voiced_end_sample

    def _pause(self, event: SpeechPause, virtual_now: float) -> float:
        """A short pause: the words said up to it are final at once (the speaker stopped, so
        they will not change), and the window keeps its context. They are decoded first
        unless the newest reading, or the one taken at the pause's onset, heard the voice
        stop. A rejected reading does not count: it holds no words to make final."""
        ahead, self._read_ahead = self._read_ahead, None
        heard = ahead is not None and ahead.window_start == self.transcriber.window_start
        if heard and not ahead.rejected and ahead.window_end >= event.voiced_end_sample:
            virtual_now = self._apply(ahead, virtual_now)
        elif self._heard_end_sample < event.voiced_end_sample:
            virtual_now = self._decode_step(event.at_sample, virtual_now)
        now = virtual_now if self.virtual_clock else self._now(0.0)
        self._publish(self.transcriber.finalize(event.at_sample, now), 0)
        return virtual_now

    def _end_utterance(self, event: SpeechEnd, virtual_now: float, last_decode: int) -> float:
        """Decode the tail (unless the last step already covered it) and commit it all."""
        self._read_ahead = None  # no pause came: the voice stopped for longer, or the span was cut
        if last_decode < event.end_sample:
            virtual_now = self._decode_step(event.end_sample, virtual_now)
        if self.transcriber.unread_tail(event.end_sample):
            self._publish(self.transcriber.read_rest(self._now(virtual_now)), 0)
            virtual_now = self._decode_step(event.end_sample, virtual_now)
        now = virtual_now if self.virtual_clock else self._now(0.0)
        result = self.transcriber.endpoint(event.end_sample, now, event.reason)
        self._publish(result, 0)
        self._emit(Endpoint(event.end_sample, event.reason, now))
        return virtual_now

    def _window(self, start: int, end: int) -> np.ndarray:
        first, audio = self.ring.read_clipped(start, end)
        if first > start:  # overwritten (inference fell far behind): pad, and it is counted
            audio = np.concatenate([np.zeros(first - start, dtype=np.float32), audio])
        return audio

    def _publish(self, result: StepResult, new_samples: int) -> None:
        """Send a step's events; ``new_samples``: audio this step added (for the RTF)."""
        if result.committed:
            self._last_latency = result.committed[-1].emitted_at_s - (
                result.committed[-1].end_sample / SAMPLE_RATE
            )
            self._emit(Committed(result.committed))
        self._emit(result.tentative, essential=False)
        if new_samples > 0:
            # compute per second of new audio: above 1.0 the decoder falls behind
            step_rtf = result.compute_s / (new_samples / SAMPLE_RATE)
            self._rtf = step_rtf if self._rtf == 0 else 0.8 * self._rtf + 0.2 * step_rtf
        self._emit(self.stats(), essential=False)

    def stats(self) -> Stats:
        capture = self._capture
        captured = capture.captured_samples
        if self.virtual_clock:  # the file is read ahead; "captured" is what the clock reached
            captured = min(captured, max(self._decoded_end, int(self._virtual_now * SAMPLE_RATE)))
        dropped = self.ring.dropped_samples + capture.dropped_blocks * ms_to_samples(
            self.config.audio.block_ms
        )
        return Stats(
            captured_samples=capture.captured_samples,
            decoded_samples=self._decoded_end,
            real_time_factor=self._rtf,
            dropped_samples=dropped,
            xruns=capture.xruns,
            vad_state=capture.vad_state,
            input_level_db=capture.level_db,  # type: ignore[arg-type]
            last_commit_latency_s=self._last_latency,
        )

    def _finish(self, reason: str, virtual_now: float) -> None:
        """Commit the tentative tail (nothing shown is ever lost), then say we are done."""
        now = virtual_now if self.virtual_clock else self._now(0.0)
        result = self.transcriber.endpoint(self.ring.end_sample, now)
        self._publish(result, 0)
        self._emit(Finished(reason))


def _restamp(result: StepResult, now_s: float) -> StepResult:
    words = tuple(replace(word, emitted_at_s=now_s) for word in result.committed)
    return replace(result, committed=words)

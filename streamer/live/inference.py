"""The inference thread: decodes the current utterance whenever enough new audio arrived, acts
on the VAD's decisions (speech start, a pause's onset, a pause, the end of a span) and posts
the results (Committed, Tentative, Endpoint, Stats, then Finished) on the outlet.

With ``virtual_clock`` it keeps its own time, as ``streamer.live.pipeline`` explains: each
step advances it by its measured or modelled cost, and a VAD decision counts only from the
audio sample at which the gate emitted it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import replace

import numpy as np

from streamer.audio import SAMPLE_RATE, ms_to_samples
from streamer.config import Config
from streamer.live.buffer import RingBuffer
from streamer.live.listener import POLL_S, CaptureState, StreamEnd
from streamer.live.outlet import EventOutlet, Finished
from streamer.live.reading import Reading
from streamer.live.stepcost import REFERENCE_COST
from streamer.live.streaming import StepResult, StreamingTranscriber
from streamer.types import (
    Committed,
    Endpoint,
    PauseOnset,
    SpeechEnd,
    SpeechPause,
    SpeechStart,
    Stats,
)


class Inference:
    """The inference thread's work; ``run`` is its loop (``Pipeline`` starts the thread)."""

    def __init__(
        self,
        transcriber: StreamingTranscriber,
        ring: RingBuffer,
        config: Config,
        capture: CaptureState,
        decided: queue.Queue,
        outlet: EventOutlet,
        stop_event: threading.Event,
        virtual_clock: bool,
    ):
        self.transcriber, self.ring, self.config = transcriber, ring, config
        self.capture = capture  # what the capture thread has captured so far
        self.decided = decided  # the capture thread's Decided records, then a StreamEnd
        self.outlet = outlet
        self.stop_event = stop_event
        self.virtual_clock = virtual_clock
        self._decoded_end = 0
        # where the newest reading's window ended, if it was not rejected and kept its window
        self._heard_end_sample = 0
        self._read_ahead: Reading | None = None  # taken at a pause's onset, judged if it comes
        self._rtf = 0.0
        self._last_latency: float | None = None
        self._virtual_now = 0.0  # the virtual clock's time, for stats

    def run(self) -> None:
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
            captured = self.capture.captured_samples
            while True:
                try:
                    event = self.decided.get_nowait()
                except queue.Empty:
                    break
                if isinstance(event, StreamEnd):
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
        first = self.capture.first_capture_s
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
        its neighbours too early (docs/benchmarks.md). Not before the window holds the first step's
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
        self.outlet.emit(Endpoint(event.end_sample, event.reason, now))
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
            self.outlet.emit(Committed(result.committed))
        self.outlet.emit(result.tentative, essential=False)
        if new_samples > 0:
            # compute per second of new audio: above 1.0 the decoder falls behind
            step_rtf = result.compute_s / (new_samples / SAMPLE_RATE)
            self._rtf = step_rtf if self._rtf == 0 else 0.8 * self._rtf + 0.2 * step_rtf
        self.outlet.emit(self.stats(), essential=False)

    def stats(self) -> Stats:
        capture = self.capture
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
        self.outlet.emit(Finished(reason))


def _restamp(result: StepResult, now_s: float) -> StepResult:
    words = tuple(replace(word, emitted_at_s=now_s) for word in result.committed)
    return replace(result, committed=words)

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

The capture thread's work is ``live.listener``, the inference thread's ``live.inference``,
and the queue between them and the caller ``live.outlet``; this module wires them up.
"""

from __future__ import annotations

import threading

from streamer.audio import seconds_to_samples
from streamer.config import Config
from streamer.engine.transcribe import Engine
from streamer.errors import StreamerError
from streamer.live.buffer import RingBuffer
from streamer.live.capture import AudioSource
from streamer.live.inference import Inference
from streamer.live.listener import Listener
from streamer.live.outlet import JOIN_TIMEOUT_S, EventOutlet, Finished
from streamer.live.streaming import StreamingTranscriber
from streamer.types import PipelineEvent, Stats
from streamer.vad import VadGate

__all__ = ["Finished", "Pipeline"]


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
        self._outlet = EventOutlet(self.stop_event, output_queue_size)
        self._listener = Listener(
            source,
            self.ring,
            self.vad,
            config.audio.block_ms,
            self._outlet,
            self.stop_event,
            virtual_clock,
        )
        self._inference = Inference(
            self.transcriber,
            self.ring,
            config,
            self._listener.state,
            self._listener.decided,
            self._outlet,
            self.stop_event,
            virtual_clock,
        )
        self._threads: list[threading.Thread] = []

    @property
    def source_error(self) -> StreamerError | None:
        """The source failed part way (its stream ended there), if it did."""
        return self._listener.source_error

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        self.source.start()
        self._threads = [
            threading.Thread(
                target=self._guard, args=(self._listener.run,), name="streamer-capture", daemon=True
            ),
            threading.Thread(
                target=self._guard,
                args=(self._inference.run,),
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
            self._outlet.fail(error)
            self.stop_event.set()

    # --- what the caller reads -----------------------------------------------------------------

    def next_event(self, timeout_s: float) -> PipelineEvent | Finished | None:
        """The next event for the UI/sinks; re-raises a worker's exception here."""
        return self._outlet.next_event(timeout_s)

    def stats(self) -> Stats:
        return self._inference.stats()

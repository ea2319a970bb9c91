"""``streamer live``: wire a source, the engine, the pipeline, sinks and the screen together.

Committed words go to the sinks (disk first) before the screen shows them, so what a person
saw is what the transcript holds, even after ``kill -9``.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time

from streamer.config import Config
from streamer.engine.transcribe import Engine
from streamer.errors import SinkError, StreamerError
from streamer.live.capture import build_source
from streamer.live.pipeline import Finished, Pipeline
from streamer.output.keyboard import TextTyper
from streamer.output.sinks import EmitLogSink, OutputClosedError, PlainSink
from streamer.output.transcript import TranscriptSink
from streamer.types import Committed, Endpoint, Notice

DRAIN_TIMEOUT_S = 10.0


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def build_sinks(config: Config) -> list:
    """Durable sinks first: the meeting transcript, then the emit log, then the screen-side
    ones (plain text on stdout, typing into the focused window)."""
    sinks: list = []
    if config.output.transcript_dir:
        sinks.append(TranscriptSink(config.output.transcript_dir))
    if config.output.emit_log:
        sinks.append(EmitLogSink(config.output.emit_log))
    if config.ui.plain:
        sinks.append(PlainSink(sys.stdout))
    if config.output.type_text:
        sinks.append(TextTyper())
    return sinks


class _Keys:
    """Single key presses on a terminal's stdin (``q`` quits), without echo or Enter."""

    def __init__(self):
        self.saved = None

    def __enter__(self):
        if sys.stdin.isatty():
            import termios
            import tty

            self.saved = termios.tcgetattr(sys.stdin)
            tty.setcbreak(sys.stdin.fileno())
        return self

    def pressed(self) -> str:
        if self.saved is None:
            return ""
        ready, _, _ = select.select([sys.stdin], [], [], 0)
        return os.read(sys.stdin.fileno(), 16).decode(errors="ignore") if ready else ""

    def __exit__(self, *exc):
        if self.saved is not None:
            import termios

            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, self.saved)


def _terminate_as_interrupt(signum, frame):  # SIGTERM flushes like Ctrl-C
    raise KeyboardInterrupt


def run_live(config: Config, input_path: str | None = None) -> int:
    """Run until the input ends, ``q``, Ctrl-C or SIGTERM; returns the exit code."""
    from streamer.output.ui import LiveView, TranscriptModel

    engine = Engine(config.model, log=_err)
    engine.task(config.decode)  # a language the model lacks fails now, in one line
    if not engine.decoder.has_cross_attentions:
        _err(
            "streamer: this export has no cross-attention outputs: word times are spread "
            "between timestamps and the attention guards (squeezed repeats, crammed tail) are off"
        )
    engine.warm_up()
    source = build_source(config, input_path)
    sinks = build_sinks(config)
    virtual = bool(input_path) and config.stream.pace == "fast"
    pipeline = Pipeline(source, engine, config, virtual_clock=virtual)
    model = TranscriptModel(
        config.ui,
        device=source.name,
        device_rate=int(source.native_rate or 0),
        provider=engine.provider,
    )
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    view = contextlib.nullcontext() if config.ui.plain else LiveView(lambda: model.state, config.ui)
    try:
        with view, _Keys() as keys:
            pipeline.start()
            if config.ui.plain:
                _err(f"streamer: {engine.describe()}; listening on {source.name}")
            _event_loop(pipeline, sinks, model, keys)
            if pipeline.source_error is not None:
                raise pipeline.source_error
    finally:
        signal.signal(signal.SIGTERM, previous)
        pipeline.stop()
        _close_sinks(sinks)
    return 0


def _event_loop(pipeline: Pipeline, sinks: list, model, keys: _Keys) -> None:
    stopping_since: float | None = None
    while True:
        try:
            if stopping_since is None and "q" in keys.pressed().lower():
                raise KeyboardInterrupt
            event = pipeline.next_event(0.05)
            if event is None:
                if stopping_since and time.monotonic() - stopping_since > DRAIN_TIMEOUT_S:
                    return
                continue
            if isinstance(event, Finished):
                return
            _deliver(event, sinks, model)
        except KeyboardInterrupt:
            if stopping_since is not None:  # a second Ctrl-C: leave now
                return
            stopping_since = time.monotonic()
            pipeline.stop_event.set()  # the inference thread commits the tail and finishes


def _deliver(event, sinks: list, model) -> None:
    """Sinks first (disk before screen), then the screen."""
    if isinstance(event, (Committed, Endpoint)):
        for sink in sinks:
            try:
                if isinstance(event, Committed):
                    sink.on_commit(event.words)
                else:
                    sink.on_endpoint(event)
            except OutputClosedError:
                raise KeyboardInterrupt from None  # the reader has gone: stop like q
            except SinkError as error:
                model.apply(Notice(str(error), "error"))
    if isinstance(event, Notice) and model.config.plain:
        _err(f"streamer: {event.text}")
    model.apply(event)


def _close_sinks(sinks: list) -> None:
    errors = []
    for sink in sinks:
        try:
            sink.close()
        except StreamerError as error:
            errors.append(error)
    if errors:
        raise errors[0]

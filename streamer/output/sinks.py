"""Sinks: where committed words go (standard output, emit log, meeting transcript, typing).

Every sink sees the same two calls in stream order: ``on_commit`` with words that will never
change and ``on_endpoint`` when an utterance ends. Seconds appear here for the first time
(samples / 16000). A sink that cannot write raises ``SinkError`` once and keeps accepting calls,
so a full disk costs the transcript file, never the captions on screen.

Standard output, the emit log and ``MultiSink`` live here; the meeting transcript in
``streamer.output.transcript``, typing into the focused window in ``streamer.output.keyboard``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TextIO

from streamer.audio import samples_to_seconds
from streamer.errors import SinkError
from streamer.output.appendlog import AppendLog
from streamer.types import CommittedWord, Endpoint


class Sink(Protocol):
    """A consumer of the committed stream; calls arrive in order from one thread."""

    def on_commit(self, words: tuple[CommittedWord, ...]) -> None:
        """Words committed by one step, in time order. May raise ``SinkError``."""
        ...

    def on_endpoint(self, endpoint: Endpoint) -> None:
        """The utterance in progress ended; the next commit starts a new one."""
        ...

    def close(self) -> None:
        """Finish files and release resources; calling it twice is harmless."""
        ...


# --- standard output and emit log -----------------------------------------------------------


def one_line(text: str) -> str:
    """The text with its line breaks turned into spaces: one utterance stays on one line."""
    return " ".join(text.splitlines())


class PlainSink:
    """Committed text on a stream, one line per utterance, flushed at once (for pipes)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._line_open = False

    def on_commit(self, words: tuple[CommittedWord, ...]) -> None:
        text = one_line("".join(word.text for word in words))
        if not self._line_open:
            text = text.lstrip()
        if text:
            self._write(text)
            self._line_open = True

    def on_endpoint(self, endpoint: Endpoint) -> None:
        self._end_line()

    def close(self) -> None:
        self._end_line()

    def _end_line(self) -> None:
        if self._line_open:
            self._line_open = False
            self._write("\n")

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except BrokenPipeError as error:
            # nobody reads any more: later writes and the exit flush go to /dev/null, quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
            raise OutputClosedError(
                "the program reading the transcript has exited (broken pipe)"
            ) from error


class OutputClosedError(SinkError):
    """The reader of standard output has gone (broken pipe): there is no one to caption for."""


def _emit_record(word: CommittedWord) -> str:
    record = {
        "emit_s": round(word.emitted_at_s, 6),
        "start_s": samples_to_seconds(word.start_sample),
        "end_s": samples_to_seconds(word.end_sample),
        "text": word.text,
        "language": word.language,
    }
    return json.dumps(record, ensure_ascii=False) + "\n"


class EmitLogSink:
    """One JSON line per committed word: when it was emitted and where it lies in the audio."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._log = AppendLog(self.path, "emit log", durable=False, truncate=True)

    def on_commit(self, words: tuple[CommittedWord, ...]) -> None:
        if words:
            self._log.append("".join(map(_emit_record, words)).encode())

    def on_endpoint(self, endpoint: Endpoint) -> None:
        pass

    def close(self) -> None:
        self._log.close()


# --- several sinks --------------------------------------------------------------------------


def raise_first(errors: Sequence[BaseException | None]) -> None:
    """Raise the first error of calls that were all attempted (``None`` for a success)."""
    for error in errors:
        if error is not None:
            raise error


class MultiSink:
    """Several sinks as one: every sink gets every call even when another one fails."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = tuple(sinks)

    def on_commit(self, words: tuple[CommittedWord, ...]) -> None:
        self._each(lambda sink: sink.on_commit(words))

    def on_endpoint(self, endpoint: Endpoint) -> None:
        self._each(lambda sink: sink.on_endpoint(endpoint))

    def close(self) -> None:
        self._each(lambda sink: sink.close())

    def _each(self, call: Callable[[Sink], None]) -> None:
        errors: list[BaseException | None] = []
        for sink in self.sinks:
            try:
                call(sink)
            except SinkError as error:
                errors.append(error)
        raise_first(errors)

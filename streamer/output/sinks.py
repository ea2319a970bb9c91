"""Sinks: where committed words go (standard output, emit log, meeting transcript, typing).

Every sink sees the same two calls in stream order: ``on_commit`` with words that will never
change and ``on_endpoint`` when an utterance ends. Seconds appear here for the first time
(samples / 16000). A sink that cannot write raises ``SinkError`` once and keeps accepting calls,
so a full disk costs the transcript file, never the captions on screen.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, TextIO

from streamer.audio import samples_to_seconds
from streamer.errors import DependencyError, SinkError
from streamer.types import CommittedWord, Endpoint

MAX_PENDING_BYTES = 1 << 20  # unwritten records kept for retry while the disk is full
SESSION_EXTENSIONS = (".jsonl", ".md", ".srt", ".vtt")
CUE_LINE_CHARS = 42  # the usual subtitle line length (BBC, Netflix guidelines)


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


# --- time formats ---------------------------------------------------------------------------


def _clock_parts(seconds: float) -> tuple[int, int, int, int]:
    """Seconds -> (hours, minutes, seconds, milliseconds), rounded to the millisecond.

    Integer arithmetic, so 59.9996 s becomes 00:01:00.000 and never 00:00:60.000.
    """
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, millis = divmod(rest, 1000)
    return hours, minutes, whole, millis


def format_srt_time(seconds: float) -> str:
    """SubRip time stamp, ``hh:mm:ss,mmm``."""
    hours, minutes, whole, millis = _clock_parts(seconds)
    return f"{hours:02d}:{minutes:02d}:{whole:02d},{millis:03d}"


def format_vtt_time(seconds: float) -> str:
    """WebVTT time stamp, ``hh:mm:ss.mmm``."""
    hours, minutes, whole, millis = _clock_parts(seconds)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}.{millis:03d}"


def format_clock(seconds: float) -> str:
    """Whole-second clock ``hh:mm:ss`` (truncated, like a wall clock)."""
    hours, minutes, whole, _ = _clock_parts(int(max(0.0, seconds)))
    return f"{hours:02d}:{minutes:02d}:{whole:02d}"


def session_stem(now: datetime | None = None) -> str:
    """File name stem for a session started at ``now``: ``2026-11-25_14-03-22``."""
    return (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")


# --- durable appends ------------------------------------------------------------------------


def _write_failed(path: Path, what: str, error: OSError) -> SinkError:
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        advice = "free disk space; captions continue and writing is retried with each caption"
    else:
        advice = "check the disk; captions continue and writing is retried with each caption"
    return SinkError(f"cannot write {what} {path}: {reason}; {advice}")


def _open_failed(path: Path, what: str, error: OSError) -> SinkError:
    reason = error.strerror or str(error)
    return SinkError(f"cannot open {what} {path}: {reason}; choose a writable location")


class AppendLog:
    """A file that only grows by whole records: an append either lands completely or not at all.

    A failed append (disk full) is cut back with ``ftruncate`` so no torn record stays in the
    file, kept in memory (bounded) and retried before the next record. Only the first failure
    of a run of failures raises ``SinkError``; later ones are silent until a write succeeds.
    """

    def __init__(self, path: Path, what: str, *, durable: bool, truncate: bool = False) -> None:
        self.path = path
        self.what = what
        self.durable = durable  # fsync every append: the record survives kill -9 and power loss
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
        try:
            self._fd: int | None = os.open(path, flags, 0o644)
        except OSError as error:
            raise _open_failed(path, what, error) from error
        self._size = os.fstat(self._fd).st_size  # everything before this offset is whole
        self._pending: list[bytes] = []
        self._failing = False
        self._torn = False  # a rollback failed: the next record starts on a fresh line
        self.lost_bytes = 0  # records dropped because the pending buffer was full

    def append(self, record: bytes) -> None:
        if self._fd is None:
            raise SinkError(f"{self.what} {self.path} is already closed")
        self._pending.append(record)
        blob = (b"\n" if self._torn else b"") + b"".join(self._pending)
        try:
            self._write_all(blob)
            if self.durable:
                os.fsync(self._fd)
        except OSError as error:
            self._roll_back()
            self._bound_pending()
            if not self._failing:
                self._failing = True
                raise _write_failed(self.path, self.what, error) from error
            return
        self._size += len(blob)
        self._pending.clear()
        self._failing = self._torn = False

    def close(self) -> None:
        """Retry what is still pending, then close; raises ``SinkError`` if some is lost."""
        if self._fd is None:
            return
        self._failing = True  # the retry below reports through the check after it
        if self._pending:
            self.append(b"")
        fd, self._fd = self._fd, None
        os.close(fd)
        unwritten = sum(map(len, self._pending)) + self.lost_bytes
        if unwritten:
            raise SinkError(f"{unwritten} bytes of {self.what} {self.path} could not be written")

    def _write_all(self, blob: bytes) -> None:
        view = memoryview(blob)
        while view:
            written = os.write(self._fd, view)  # type: ignore[arg-type]
            view = view[written:]

    def _roll_back(self) -> None:
        try:
            os.ftruncate(self._fd, self._size)  # type: ignore[arg-type]
        except OSError:
            self._torn = True

    def _bound_pending(self) -> None:
        while sum(map(len, self._pending)) > MAX_PENDING_BYTES and len(self._pending) > 1:
            self.lost_bytes += len(self._pending.pop(0))


# --- standard output and emit log -----------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


class PlainSink:
    """Committed text on a stream, one line per utterance, flushed at once (for pipes)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._line_open = False

    def on_commit(self, words: tuple[CommittedWord, ...]) -> None:
        text = _one_line("".join(word.text for word in words))
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


# --- meeting transcript ---------------------------------------------------------------------


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: an utterance, in seconds from the start of the session."""

    start_s: float
    end_s: float
    text: str


def read_cues(jsonl_path: str | Path) -> Iterator[Cue]:
    """Stream the session JSONL as one cue per utterance (lines that do not parse are skipped)."""
    utterance, start_s, end_s, texts = None, 0.0, 0.0, []
    with open(jsonl_path, encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
                key = record.get("utterance")
                start, end, text = float(record["start_s"]), float(record["end_s"]), record["text"]
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if texts and key != utterance:
                yield Cue(start_s, end_s, "".join(texts).strip())
                texts = []
            if not texts:
                utterance, start_s = key, start
            end_s = max(end_s, end) if texts else end
            texts.append(str(text))
    if texts:
        yield Cue(start_s, end_s, "".join(texts).strip())


def _cue_lines(text: str) -> str:
    # "-->" would end a VTT cue header early; blank lines would end the cue
    return "\n".join(textwrap.wrap(text.replace("-->", "->"), CUE_LINE_CHARS)) or "..."


def write_subtitles(jsonl_path: str | Path, srt_path: str | Path, vtt_path: str | Path) -> int:
    """Write SRT and VTT (one cue per utterance) from a session JSONL; returns the cue count.

    Reads the JSONL as a stream, so hours of transcript never sit in memory.
    """
    count = 0
    with open(srt_path, "w", encoding="utf-8") as srt, open(vtt_path, "w", encoding="utf-8") as vtt:
        vtt.write("WEBVTT\n\n")
        for count, cue in enumerate(read_cues(jsonl_path), start=1):
            end_s = max(cue.end_s, cue.start_s + 0.001)  # players drop zero-length cues
            text = _cue_lines(cue.text)
            srt.write(f"{count}\n{format_srt_time(cue.start_s)} --> {format_srt_time(end_s)}\n")
            srt.write(f"{text}\n\n")
            vtt.write(f"{format_vtt_time(cue.start_s)} --> {format_vtt_time(end_s)}\n{text}\n\n")
    return count


def _free_stem(directory: Path, stem: str) -> str:
    """``stem``, or ``stem-2``, ``stem-3``...: an existing transcript is never overwritten."""
    candidate, number = stem, 1
    while any((directory / f"{candidate}{ext}").exists() for ext in SESSION_EXTENSIONS):
        number += 1
        candidate = f"{stem}-{number}"
    return candidate


class TranscriptSink:
    """Meeting mode: session JSONL + Markdown while running, SRT and VTT at ``close()``.

    Each commit is one JSONL line ``{"utterance", "text", "start_s", "end_s", "emit_s"}``
    (``text`` as Whisper spells it, leading space included), appended and fsynced before
    ``on_commit`` returns: a caption shown after the sink returned is on disk even after
    ``kill -9``.
    """

    def __init__(self, directory: str | Path, stem: str | None = None) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = error.strerror or str(error)
            raise SinkError(
                f"cannot create transcript directory {self.directory}: {reason}; "
                "pass a writable directory with --transcript"
            ) from error
        self.stem = _free_stem(self.directory, stem or session_stem())
        self.jsonl_path, self.markdown_path, self.srt_path, self.vtt_path = (
            self.directory / f"{self.stem}{ext}" for ext in SESSION_EXTENSIONS
        )
        self._jsonl = AppendLog(self.jsonl_path, "transcript", durable=True)
        self._markdown = AppendLog(self.markdown_path, "transcript", durable=True)
        self._utterance = 0
        self._utterance_open = False
        self._closed = False
        error = self._append(self._markdown, f"# Transcript {self.stem}\n")
        if error is not None:  # the disk is full before the session starts: say so now
            self._close(self._jsonl)
            self._close(self._markdown)
            raise error

    def on_commit(self, words: tuple[CommittedWord, ...]) -> None:
        if not words:
            return
        text = _one_line("".join(word.text for word in words))
        record = {
            "utterance": self._utterance,
            "text": text,
            "start_s": samples_to_seconds(words[0].start_sample),
            "end_s": samples_to_seconds(words[-1].end_sample),
            "emit_s": round(max(word.emitted_at_s for word in words), 6),
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        if not self._utterance_open:
            text = f"\n[{format_clock(record['start_s'])}] {text.lstrip()}"
            self._utterance_open = True
        # both files are attempted even when the first fails; the first error is reported
        errors = [self._append(self._jsonl, line), self._append(self._markdown, text)]
        _raise_first(errors)

    def on_endpoint(self, endpoint: Endpoint) -> None:
        if self._utterance_open:
            self._utterance_open = False
            self._utterance += 1
            _raise_first([self._append(self._markdown, "\n")])

    def close(self) -> None:
        """Finish the Markdown, retry what is pending, then build SRT and VTT from the JSONL."""
        if self._closed:
            return
        self._closed = True
        errors: list[SinkError | None] = []
        if self._utterance_open:
            self._utterance_open = False
            errors.append(self._append(self._markdown, "\n"))
        errors += [self._close(self._jsonl), self._close(self._markdown)]
        try:
            write_subtitles(self.jsonl_path, self.srt_path, self.vtt_path)
        except OSError as error:
            failure = _write_failed(self.srt_path, "subtitles", error)
            failure.__cause__ = error
            errors.append(failure)
        _raise_first(errors)

    @staticmethod
    def _close(log: AppendLog) -> SinkError | None:
        try:
            log.close()
        except SinkError as error:
            return error
        return None

    @staticmethod
    def _append(log: AppendLog, text: str) -> SinkError | None:
        try:
            log.append(text.encode())
        except SinkError as error:
            return error
        return None


def _raise_first(errors: Sequence[BaseException | None]) -> None:
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
        _raise_first(errors)


# --- typing into the focused window ---------------------------------------------------------

TYPING_COMMANDS = {
    "xdotool": ("type", "--clearmodifiers", "--"),
    "wtype": ("--",),
    "ydotool": ("type", "--"),
}
MISSING_TYPING_TOOL = (
    "--type needs xdotool (X11), wtype (Wayland) or ydotool (X11, Wayland or console; needs the "
    "ydotoold daemon) on PATH; install one, e.g. `sudo apt install xdotool` or `sudo apt install "
    "wtype`"
)


def display_session(env: Mapping[str, str]) -> str:
    """The kind of graphical session ``env`` describes: "wayland", "x11" or "console"."""
    if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland":
        return "wayland"
    return "x11" if env.get("DISPLAY") else "console"


def typing_tool_candidates(env: Mapping[str, str]) -> tuple[str, ...]:
    """Typing tools that work in the session described by ``env``, best first."""
    return {
        "wayland": ("wtype", "ydotool", "xdotool"),  # xdotool reaches XWayland windows only
        "x11": ("xdotool", "ydotool"),
        "console": ("ydotool",),  # no display server: only the uinput route works
    }[display_session(env)]


def find_typing_tool(env: Mapping[str, str] | None = None) -> str:
    """Path of the typing tool to use; ``DependencyError`` naming all three when none is found."""
    env = os.environ if env is None else env
    search_path = env.get("PATH", os.defpath)
    for name in typing_tool_candidates(env):
        found = shutil.which(name, path=search_path)
        if found:
            return found
    raise DependencyError(f"{MISSING_TYPING_TOOL} (this is a {display_session(env)} session)")


class TextTyper:
    """Types committed text into the focused window with xdotool, wtype or ydotool.

    The typing process runs while the pipeline goes on; the next commit waits for it, so
    text never interleaves. A tool that fails is reported as ``SinkError`` on the next call.
    """

    def __init__(self, env: Mapping[str, str] | None = None, timeout_s: float = 30.0) -> None:
        self.tool = find_typing_tool(env)
        self._env = dict(os.environ if env is None else env)
        self._timeout_s = timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._typed_any = False

    def on_commit(self, words: tuple[CommittedWord, ...]) -> None:
        text = _one_line("".join(word.text for word in words))
        if not self._typed_any:
            text = text.lstrip()  # the first word of the session needs no separating space
        if not text:
            return
        self._finish_previous()
        name = Path(self.tool).name
        argv = [self.tool, *TYPING_COMMANDS.get(name, ("type", "--")), text]
        try:
            self._process = subprocess.Popen(
                argv, env=self._env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except OSError as error:
            raise SinkError(f"cannot run {self.tool}: {error.strerror}") from error
        self._typed_any = True

    def on_endpoint(self, endpoint: Endpoint) -> None:
        pass

    def close(self) -> None:
        self._finish_previous()

    def _finish_previous(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            _, stderr = process.communicate(timeout=self._timeout_s)
        except subprocess.TimeoutExpired as error:
            process.kill()
            process.communicate()
            raise SinkError(
                f"{self.tool} did not finish typing within {self._timeout_s:g} s"
            ) from error
        if process.returncode != 0:
            detail = (stderr or b"").decode(errors="replace").strip().splitlines()
            reason = detail[-1] if detail else f"exit status {process.returncode}"
            raise SinkError(f"{Path(self.tool).name} could not type the text: {reason}")

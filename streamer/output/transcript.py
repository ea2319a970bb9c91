"""The meeting transcript: session JSONL and Markdown fsynced as captions commit, SRT and VTT
rebuilt from the JSONL when the session ends.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from streamer.audio import samples_to_seconds
from streamer.errors import SinkError
from streamer.output.appendlog import AppendLog, write_failed
from streamer.output.sinks import one_line, raise_first
from streamer.output.subtitles import format_clock, write_subtitles
from streamer.types import CommittedWord, Endpoint

SESSION_EXTENSIONS = (".jsonl", ".md", ".srt", ".vtt")


def session_stem(now: datetime | None = None) -> str:
    """File name stem for a session started at ``now``: ``2026-11-25_14-03-22``."""
    return (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")


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
        self._language = "en"  # of the utterance before: a change is marked in the notes
        self._closed = False
        error = self._append(self._markdown, f"# Transcript {self.stem}\n")
        if error is not None:  # the disk is full before the session starts: say so now
            self._close(self._jsonl)
            self._close(self._markdown)
            raise error

    def on_commit(self, words: tuple[CommittedWord, ...]) -> None:
        if not words:
            return
        text = one_line("".join(word.text for word in words))
        record = {
            "utterance": self._utterance,
            "text": text,
            "start_s": samples_to_seconds(words[0].start_sample),
            "end_s": samples_to_seconds(words[-1].end_sample),
            "emit_s": round(max(word.emitted_at_s for word in words), 6),
            "language": words[-1].language,
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        if not self._utterance_open:
            text = (
                f"\n[{format_clock(record['start_s'])}] {self._language_mark(words)}{text.lstrip()}"
            )
            self._utterance_open = True
        # both files are attempted even when the first fails; the first error is reported
        errors = [self._append(self._jsonl, line), self._append(self._markdown, text)]
        raise_first(errors)

    def _language_mark(self, words: tuple[CommittedWord, ...]) -> str:
        """``(de) `` where an utterance is in another language than the one before it (a
        session starts in English, so an English one reads as it always did)."""
        language, self._language = self._language, words[-1].language
        return "" if words[-1].language == language else f"({words[-1].language}) "

    def on_endpoint(self, endpoint: Endpoint) -> None:
        if self._utterance_open:
            self._utterance_open = False
            self._utterance += 1
            raise_first([self._append(self._markdown, "\n")])

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
            failure = write_failed(self.srt_path, "subtitles", error)
            failure.__cause__ = error
            errors.append(failure)
        raise_first(errors)

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

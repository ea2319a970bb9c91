"""Durable appends: a file that only grows by whole records, even when the disk fills up.

The meeting transcript and the emit log write through ``AppendLog``; a failure is reported
as ``SinkError`` once, and the records are retried with each later append.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from streamer.errors import SinkError

MAX_PENDING_BYTES = 1 << 20  # unwritten records kept for retry while the disk is full


def write_failed(path: Path, what: str, error: OSError) -> SinkError:
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
                raise write_failed(self.path, self.what, error) from error
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

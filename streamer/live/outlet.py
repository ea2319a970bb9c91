"""What the caller drains from a running pipeline: its events, and a worker's exception.

Both worker threads post on one bounded queue. Committed text, endpoints and notices wait for
room; tentative text and stats may be dropped, since a newer one follows. An exception in a
worker is kept aside and re-raised in the caller by ``next_event``.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

from streamer.types import PipelineEvent, Stats, Tentative

JOIN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Finished:
    """The stream ended (or stop was asked) and everything was committed."""

    reason: str  # "end_of_stream" | "stopped"


class EventOutlet:
    """The bounded queue of events between the worker threads and the caller."""

    def __init__(self, stop_event: threading.Event, size: int):
        self.stop_event = stop_event
        self._out: queue.Queue = queue.Queue(maxsize=size)
        self._errors: queue.Queue = queue.Queue()
        self.dropped_events = 0
        self._reader_gone = False  # stopped and nobody drained the events for a while

    def fail(self, error: BaseException) -> None:
        """A worker's exception, for ``next_event`` to re-raise in the caller."""
        self._errors.put(error)

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

    def emit(self, event, essential: bool = True) -> None:
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
            self.dropped_events += 1

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

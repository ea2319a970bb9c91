"""RingBuffer: the last ``capacity_samples`` of 16 kHz audio, addressed by absolute sample index.

One writer (capture) appends; one reader (inference) reads any range still held and reports its
progress with ``consume``. The writer never blocks and never fails: when the buffer is full the
oldest audio is overwritten, and audio lost before the reader consumed it is counted in
``dropped_samples``. One lock guards the state; copies in and out are made under it, so a read
never sees a half-written block.

Reads are strict: a range that is partly overwritten raises ``OverwrittenError`` and a range
that is partly in the future raises ``NotYetWrittenError`` (both ``IndexError``), because a
silently shortened window would misplace every word time computed from it. A reader that would
rather skip ahead uses ``read_clipped``, which returns the part still held and where it starts.
"""

from __future__ import annotations

import threading

import numpy as np


class OverwrittenError(IndexError):
    """Part of the requested range is older than ``start_sample``: it has been overwritten."""


class NotYetWrittenError(IndexError):
    """Part of the requested range is at or after ``end_sample``: it has not been written yet."""


class RingBuffer:
    """Float32 samples ``[start_sample, end_sample)`` in a circular array of fixed capacity."""

    def __init__(self, capacity_samples: int, start_sample: int = 0) -> None:
        if capacity_samples <= 0:
            raise ValueError(f"capacity_samples must be positive, got {capacity_samples}")
        if start_sample < 0:
            raise ValueError(f"start_sample must be >= 0, got {start_sample}")
        self._lock = threading.Lock()
        self._data = np.zeros(capacity_samples, dtype=np.float32)
        self._capacity = capacity_samples
        self._first = start_sample  # absolute index of the first sample ever written
        self._end = start_sample  # absolute index of the next sample to write
        self._consumed = start_sample  # the reader is done with everything before this
        self._dropped = 0

    # --- writer ----------------------------------------------------------------------------------

    def write(self, samples: np.ndarray) -> int:
        """Append ``samples`` (shape (n,), converted to float32); returns the index of the first.

        Never blocks on the reader. If the buffer overflows, the oldest samples are overwritten
        and those the reader had not consumed yet are added to ``dropped_samples``.
        """
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"samples must have shape (n,), got {samples.shape}")
        with self._lock:
            first_index = self._end
            old_oldest = self._oldest()
            self._store(samples)
            self._end += len(samples)
            new_oldest = self._oldest()
            self._dropped += max(0, new_oldest - max(old_oldest, self._consumed))
            return first_index

    def _store(self, samples: np.ndarray) -> None:
        """Copy into the circular array at ``_end``; only the last ``capacity`` samples matter."""
        if len(samples) > self._capacity:
            skipped = len(samples) - self._capacity
            samples = samples[skipped:]
            offset = (self._end + skipped) % self._capacity
        else:
            offset = self._end % self._capacity
        head = min(len(samples), self._capacity - offset)
        self._data[offset : offset + head] = samples[:head]
        self._data[: len(samples) - head] = samples[head:]

    # --- reader ----------------------------------------------------------------------------------

    def read(self, start_sample: int, end_sample: int) -> np.ndarray:
        """A copy of samples ``[start_sample, end_sample)``, float32 shape (end - start,).

        Raises ``OverwrittenError`` if ``start_sample < self.start_sample`` and
        ``NotYetWrittenError`` if ``end_sample > self.end_sample``.
        """
        if start_sample > end_sample:
            raise ValueError(f"start_sample {start_sample} is after end_sample {end_sample}")
        with self._lock:
            oldest = self._oldest()
            if start_sample < oldest:
                raise OverwrittenError(
                    f"samples [{start_sample}, {end_sample}) requested but the buffer holds "
                    f"[{oldest}, {self._end}): {oldest - start_sample} were overwritten"
                )
            if end_sample > self._end:
                raise NotYetWrittenError(
                    f"samples [{start_sample}, {end_sample}) requested but only "
                    f"[{oldest}, {self._end}) have been written"
                )
            return self._copy(start_sample, end_sample)

    def read_clipped(self, start_sample: int, end_sample: int) -> tuple[int, np.ndarray]:
        """The part of ``[start_sample, end_sample)`` still held, as (its first index, copy).

        The returned array may be shorter than asked, or empty, never longer.
        """
        if start_sample > end_sample:
            raise ValueError(f"start_sample {start_sample} is after end_sample {end_sample}")
        with self._lock:
            first = min(max(start_sample, self._oldest()), self._end)
            last = max(min(end_sample, self._end), first)
            return first, self._copy(first, last)

    def _copy(self, start_sample: int, end_sample: int) -> np.ndarray:
        offset = start_sample % self._capacity
        n_samples = end_sample - start_sample
        head = min(n_samples, self._capacity - offset)
        out = np.empty(n_samples, dtype=np.float32)
        out[:head] = self._data[offset : offset + head]
        out[head:] = self._data[: n_samples - head]
        return out

    def consume(self, up_to_sample: int) -> None:
        """The reader no longer needs samples before ``up_to_sample``; progress never goes back.

        Consumed samples stay readable until they are overwritten; consuming only decides
        whether overwriting them counts as a drop. Raises ``ValueError`` past ``end_sample``.
        """
        with self._lock:
            if up_to_sample > self._end:
                raise ValueError(
                    f"cannot consume up to {up_to_sample}: only {self._end} samples written"
                )
            self._consumed = max(self._consumed, up_to_sample)

    # --- state -----------------------------------------------------------------------------------

    def _oldest(self) -> int:
        return max(self._first, self._end - self._capacity)

    @property
    def capacity_samples(self) -> int:
        return self._capacity

    @property
    def start_sample(self) -> int:
        """Absolute index of the oldest sample still held."""
        with self._lock:
            return self._oldest()

    @property
    def end_sample(self) -> int:
        """Absolute index the next written sample will get."""
        with self._lock:
            return self._end

    @property
    def consumed_sample(self) -> int:
        """The reader's progress: everything before it was consumed."""
        with self._lock:
            return self._consumed

    @property
    def dropped_samples(self) -> int:
        """Samples overwritten before the reader consumed them, since the start."""
        with self._lock:
            return self._dropped

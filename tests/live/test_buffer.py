"""RingBuffer: absolute indexing, overwrite semantics and drop accounting, checked against a model.

The model is the plain concatenation of everything written; the buffer must behave like a
window onto its last ``capacity`` samples.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from streamer.live.buffer import NotYetWrittenError, OverwrittenError, RingBuffer


def _blocks(max_blocks: int = 12, max_len: int = 40):
    """Lists of write blocks with distinct, recognisable values (a running counter)."""
    return st.lists(st.integers(0, max_len), max_size=max_blocks).map(_counter_blocks)


def _counter_blocks(lengths: list[int]) -> list[np.ndarray]:
    blocks, value = [], 0
    for length in lengths:
        blocks.append(np.arange(value, value + length, dtype=np.float32))
        value += length
    return blocks


@given(
    capacity=st.integers(1, 64),
    blocks=_blocks(),
    ranges=st.lists(st.tuples(st.integers(0, 500), st.integers(0, 64)), max_size=10),
)
def test_any_partition_of_writes_reads_like_slicing_the_concatenation(capacity, blocks, ranges):
    """Whatever the block sizes, reads of held ranges equal slices of all audio written."""
    buffer = RingBuffer(capacity)
    starts = [buffer.write(block) for block in blocks]
    written = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    assert starts == list(np.cumsum([0] + [len(b) for b in blocks])[:-1])
    assert buffer.end_sample == len(written)
    assert buffer.start_sample == max(0, len(written) - capacity)
    for start, length in ranges:
        start = buffer.start_sample + start % (buffer.end_sample - buffer.start_sample + 1)
        end = min(start + length, buffer.end_sample)
        np.testing.assert_array_equal(buffer.read(start, end), written[start:end])


class RingBufferModel(RuleBasedStateMachine):
    """Interleaved writes, reads and consumes against a brute-force model of every sample."""

    def __init__(self) -> None:
        super().__init__()
        self.capacity = 0
        self.buffer: RingBuffer | None = None
        self.written: list[float] = []
        self.consumed = 0
        self.dropped = 0
        self.counter = 0
        self.last_end = 0
        self.last_start = 0

    @precondition(lambda self: self.buffer is None)
    @rule(capacity=st.integers(1, 50), first=st.integers(0, 1000))
    def create(self, capacity, first):
        self.capacity = capacity
        self.buffer = RingBuffer(capacity, start_sample=first)
        self.written = [float("nan")] * first  # indices before the first write never existed
        self.first = first
        self.consumed = first
        self.last_end = self.last_start = first

    def _oldest(self) -> int:
        return max(self.first, len(self.written) - self.capacity)

    @precondition(lambda self: self.buffer is not None)
    @rule(length=st.integers(0, 120))
    def write(self, length):
        samples = np.arange(self.counter, self.counter + length, dtype=np.float32)
        self.counter += length
        old_oldest = self._oldest()
        assert self.buffer.write(samples) == len(self.written)
        self.written.extend(samples.tolist())
        # Every sample pushed out now that the reader had not consumed is a drop.
        self.dropped += sum(1 for i in range(old_oldest, self._oldest()) if i >= self.consumed)

    @precondition(lambda self: self.buffer is not None)
    @rule(start=st.integers(-60, 60), length=st.integers(0, 60))
    def read(self, start, length):
        start = self._oldest() + start
        end = start + length
        if start < self._oldest():
            with pytest.raises(OverwrittenError):
                self.buffer.read(start, end)
        elif end > len(self.written):
            with pytest.raises(NotYetWrittenError):
                self.buffer.read(start, end)
        else:
            expected = np.array(self.written[start:end], dtype=np.float32)
            np.testing.assert_array_equal(self.buffer.read(start, end), expected)

    @precondition(lambda self: self.buffer is not None)
    @rule(start=st.integers(-60, 60), length=st.integers(0, 60))
    def read_clipped(self, start, length):
        start = self._oldest() + start
        first, samples = self.buffer.read_clipped(start, start + length)
        held_first = min(max(start, self._oldest()), len(self.written))
        held_end = max(min(start + length, len(self.written)), held_first)
        assert first == held_first
        expected = np.array(self.written[held_first:held_end], dtype=np.float32)
        np.testing.assert_array_equal(samples, expected)

    @precondition(lambda self: self.buffer is not None)
    @rule(back=st.integers(0, 80))
    def consume(self, back):
        target = max(0, len(self.written) - back)
        self.buffer.consume(target)
        self.consumed = max(self.consumed, target)

    @invariant()
    def indices_match_the_model_and_never_go_back(self):
        if self.buffer is None:
            return
        assert self.buffer.end_sample == len(self.written) >= self.last_end
        assert self.buffer.start_sample == self._oldest() >= self.last_start
        assert self.buffer.end_sample - self.buffer.start_sample <= self.capacity
        assert self.buffer.consumed_sample == self.consumed
        assert self.buffer.dropped_samples == self.dropped
        self.last_end, self.last_start = self.buffer.end_sample, self.buffer.start_sample


TestRingBufferModel = RingBufferModel.TestCase
TestRingBufferModel.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


def test_overflow_keeps_the_newest_capacity_samples():
    buffer = RingBuffer(10)
    buffer.write(np.arange(7, dtype=np.float32))
    buffer.write(np.arange(7, 15, dtype=np.float32))
    assert (buffer.start_sample, buffer.end_sample) == (5, 15)
    np.testing.assert_array_equal(buffer.read(5, 15), np.arange(5, 15, dtype=np.float32))


def test_a_single_write_larger_than_capacity_keeps_its_tail():
    buffer = RingBuffer(4)
    assert buffer.write(np.arange(10, dtype=np.float32)) == 0
    np.testing.assert_array_equal(buffer.read(6, 10), [6, 7, 8, 9])
    assert buffer.dropped_samples == 6


def test_drops_count_only_unconsumed_samples():
    buffer = RingBuffer(10)
    buffer.write(np.zeros(10, np.float32))
    buffer.consume(4)
    buffer.write(np.zeros(6, np.float32))  # overwrites 0..5; 0..3 were already consumed
    assert buffer.dropped_samples == 2
    buffer.consume(16)
    buffer.write(np.zeros(10, np.float32))  # overwrites 6..15, all consumed
    assert buffer.dropped_samples == 2


def test_overwritten_and_future_ranges_raise_with_the_held_range_in_the_message():
    buffer = RingBuffer(8)
    buffer.write(np.zeros(20, np.float32))
    with pytest.raises(OverwrittenError, match=r"holds \[12, 20\)"):
        buffer.read(11, 15)
    with pytest.raises(NotYetWrittenError, match=r"\[12, 20\)"):
        buffer.read(18, 21)
    with pytest.raises(ValueError):
        buffer.read(15, 14)


def test_read_returns_a_copy_not_a_view():
    buffer = RingBuffer(8)
    buffer.write(np.ones(4, np.float32))
    samples = buffer.read(0, 4)
    samples[:] = 5
    np.testing.assert_array_equal(buffer.read(0, 4), np.ones(4, np.float32))


@pytest.mark.parametrize(
    ("capacity", "start"), [(0, 0), (-1, 0), (4, -1)], ids=["zero", "negative", "negative-start"]
)
def test_invalid_construction_is_rejected(capacity, start):
    with pytest.raises(ValueError):
        RingBuffer(capacity, start_sample=start)


def test_consume_past_the_written_end_is_rejected():
    buffer = RingBuffer(8)
    buffer.write(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="only 3 samples written"):
        buffer.consume(4)


def test_concurrent_writer_and_reader_see_consistent_blocks():
    """A reader racing a writer never sees a torn block: every read equals its model slice."""
    buffer = RingBuffer(4096)
    n_blocks, block = 2000, 37
    done = threading.Event()

    def writer() -> None:
        for index in range(n_blocks):
            buffer.write(np.arange(index * block, (index + 1) * block, dtype=np.float32))
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not done.is_set() or reads == 0:
        start, samples = buffer.read_clipped(buffer.end_sample - 1000, buffer.end_sample)
        np.testing.assert_array_equal(samples, np.arange(start, start + len(samples)))
        reads += 1
    thread.join(timeout=10)
    assert buffer.end_sample == n_blocks * block

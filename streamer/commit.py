"""Commit policy: a stream of hypotheses over a growing window -> committed and tentative words.

Whisper re-reads the whole audio window at every step, so the words at the end of a hypothesis
change from step to step. LocalAgreement-n (Machacek et al., "Turning Whisper into Real-Time
Transcription System", 2023; the idea behind whisper_streaming's ``HypothesisBuffer``) commits a
word once ``n`` consecutive hypotheses agree on it; everything after the agreed prefix stays
tentative. Committed words never change again.

Each hypothesis restates audio that is already committed. Two filters remove that restatement
before agreement is computed:

1. time: words lying in committed audio (ending at or just after the committed end) are dropped;
2. text: words at the start of what remains that repeat the committed tail (an n-gram of up to
   five words, compared lower case without punctuation) are dropped. This catches the words whose
   timestamps moved past the committed end when Whisper re-aligned them with more context.
"""

from __future__ import annotations

import unicodedata
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from difflib import SequenceMatcher
from typing import Protocol

from streamer.audio import ms_to_samples
from streamer.types import Hypothesis, Word

# A committed word ending with one of these closes a sentence: a safe place to cut the window.
SENTENCE_END = (".", "?", "!", "\u3002", "\uff1f", "\uff01", "\u2026")
SIMILAR_SPELLING = 0.75  # difflib ratio above which two readings are the same word


@dataclass(frozen=True)
class CommitUpdate:
    """What one step changed: words committed now (in order) and the new tentative tail."""

    newly_committed: tuple[Word, ...] = ()
    tentative: tuple[Word, ...] = ()

    @property
    def tentative_text(self) -> str:
        return words_text(self.tentative)


class CommitPolicy(Protocol):
    """Turns the decoder's successive hypotheses into an append-only stream of words."""

    def update(self, hypothesis: Hypothesis) -> CommitUpdate:
        """Fold in the newest hypothesis of the window (words in absolute samples)."""
        ...

    def force_commit(self) -> CommitUpdate:
        """Commit the whole tentative tail now (a VAD endpoint: no more audio is coming)."""
        ...

    @property
    def committed_end_sample(self) -> int:
        """Absolute sample where the last committed word ends (0 before the first commit)."""
        ...

    @property
    def committed_text(self) -> str:
        """The most recent committed text (bounded; enough for a decoder prompt)."""
        ...

    def trim_point(
        self, window_start_sample: int, window_end_sample: int, max_window_samples: int
    ) -> int | None:
        """The absolute sample the audio window may be cut at, or None to keep it whole."""
        ...


def normalize(text: str) -> str:
    """The form words are compared in: lower case, no punctuation, no spaces."""
    return "".join(
        char
        for char in text.lower()
        if not unicodedata.category(char).startswith("P") and not char.isspace()
    )


def words_text(words: Sequence[Word]) -> str:
    """Words joined the way Whisper spells them (each carries its leading space)."""
    return "".join(word.text for word in words).strip()


def common_prefix_length(sequences: Sequence[Sequence[Word]]) -> int:
    """Number of leading words on which every sequence agrees (by normalised text)."""
    if not sequences:
        return 0
    length = 0
    for column in zip(*sequences, strict=False):  # the shortest reading bounds agreement
        first = normalize(column[0].text)
        if any(normalize(word.text) != first for word in column[1:]):
            break
        length += 1
    return length


class LocalAgreement:
    """LocalAgreement-n over words with absolute sample timestamps.

    Memory is bounded: the last ``n`` hypotheses and the last ``keep_words`` committed words
    (the seam check and the decoder prompt need no more), plus counters.
    """

    def __init__(
        self,
        n: int = 2,
        *,
        tolerance_ms: float = 100.0,
        seam_ngram: int = 5,
        seam_window_ms: float = 1000.0,
        keep_words: int = 64,
    ) -> None:
        if n < 1:
            raise ValueError(f"LocalAgreement needs n >= 1 hypotheses to agree, got n={n}")
        if keep_words < seam_ngram:
            raise ValueError(f"keep_words ({keep_words}) must be at least seam_ngram")
        self.n = n
        # Whisper's word times jitter by a few 20 ms steps between readings of the same audio.
        self._tolerance_samples = ms_to_samples(tolerance_ms)
        self._seam_ngram = seam_ngram
        self._seam_window_samples = ms_to_samples(seam_window_ms)
        self._history: deque[tuple[Word, ...]] = deque(maxlen=n)
        self._tail: deque[Word] = deque(maxlen=keep_words)
        self._n_committed = 0
        self._committed_end_sample = 0
        self._boundary_sample = 0  # end of the last committed sentence or segment
        self._tentative: tuple[Word, ...] = ()

    # --- the policy ---------------------------------------------------------------------------

    def update(self, hypothesis: Hypothesis) -> CommitUpdate:
        self._history.append(tuple(hypothesis.words))
        candidates = [self._unseen(words) for words in self._history]
        agreed = common_prefix_length(candidates) if len(candidates) == self.n else 0
        newest = candidates[-1]
        # The newest reading had the most audio, so its spelling and timing are kept.
        committed = self._commit(newest[:agreed])
        self._tentative = newest[agreed:]
        return CommitUpdate(committed, self._tentative)

    def force_commit(self) -> CommitUpdate:
        committed = self._commit(self._tentative)
        if self._n_committed:
            self._boundary_sample = self._committed_end_sample
        # The next utterance starts fresh: old readings must not vote on new audio.
        self._history.clear()
        self._tentative = ()
        return CommitUpdate(committed, ())

    def trim_point(
        self, window_start_sample: int, window_end_sample: int, max_window_samples: int
    ) -> int | None:
        """Where the inference engine may cut its window, as an absolute sample.

        The end of the last committed sentence (or force-committed segment) inside the window
        is preferred: the audio after it starts a new sentence, so Whisper loses little context.
        If there is none and the window is longer than ``max_window_samples``, the end of the
        last committed word is returned instead. None means "keep the window": nothing inside it
        is committed yet; a caller whose window is full should ``force_commit()`` and ask again.
        """
        if window_start_sample < self._boundary_sample <= window_end_sample:
            return self._boundary_sample
        too_long = window_end_sample - window_start_sample > max_window_samples
        cut = min(self._committed_end_sample, window_end_sample)
        if too_long and self._n_committed and cut > window_start_sample:
            return cut
        return None

    # --- what was committed -------------------------------------------------------------------

    @property
    def committed_end_sample(self) -> int:
        return self._committed_end_sample

    @property
    def n_committed(self) -> int:
        """How many words were committed since the start (the words themselves are not kept)."""
        return self._n_committed

    @property
    def committed_words(self) -> tuple[Word, ...]:
        """The most recent committed words, at most ``keep_words`` of them."""
        return tuple(self._tail)

    @property
    def committed_text(self) -> str:
        return words_text(self._tail)

    @property
    def tentative(self) -> tuple[Word, ...]:
        return self._tentative

    # --- helpers ------------------------------------------------------------------------------

    def _is_committed_audio(self, word: Word) -> bool:
        """True if the word lies in audio already committed, allowing for timing jitter.

        A word may overhang the committed end by the tolerance, but by no more than half its
        own length, so a short new word right after the committed end is kept.
        """
        overhang = word.end_sample - self._committed_end_sample
        half_length = max(0, (word.end_sample - word.start_sample) // 2)
        return overhang <= min(self._tolerance_samples, half_length)

    def _unseen(self, words: tuple[Word, ...]) -> tuple[Word, ...]:
        """The part of a hypothesis after the committed text (time filter, then seam n-grams)."""
        if not self._n_committed:
            return words
        # Words are in time order, so everything before the last old word is old as well.
        cut = 0
        for index, word in enumerate(words):
            if self._is_committed_audio(word):
                cut = index + 1
        words = words[cut:]
        if not words:
            return words
        # A restated word starts before the committed end; a word starting well after it is new
        # speech even when it repeats the last words ("no, no").
        if words[0].start_sample - self._committed_end_sample > self._seam_window_samples:
            return words
        words = words[self._seam_overlap(words) :]
        if words and self._restates_last(words[0]):
            words = words[1:]
        return words

    def _restates_last(self, word: Word) -> bool:
        """A word that begins inside the last committed word and spells nearly the same is
        the same word read again with more audio ("letter" then "letterpress")."""
        if not self._tail or word.start_sample >= self._committed_end_sample:
            return False
        old, new = normalize(self._tail[-1].text), normalize(word.text)
        if not old or not new:
            return False
        return (
            new.startswith(old)
            or old.startswith(new)
            or (SequenceMatcher(None, old, new).ratio() >= SIMILAR_SPELLING)
        )

    def _seam_overlap(self, words: tuple[Word, ...]) -> int:
        """Length of the longest n-gram that ends the committed text and starts ``words``."""
        tail = [normalize(word.text) for word in self._tail]
        head = [normalize(word.text) for word in words[: self._seam_ngram]]
        for size in range(min(len(tail), len(head)), 0, -1):
            if tail[-size:] == head[:size]:
                return size
        return 0

    def _commit(self, words: Sequence[Word]) -> tuple[Word, ...]:
        """Append words to the committed stream, clamping times so they never go backwards."""
        committed = []
        for word in words:
            start = max(word.start_sample, self._committed_end_sample)
            end = max(word.end_sample, start)
            if (start, end) != (word.start_sample, word.end_sample):
                word = replace(word, start_sample=start, end_sample=end)
            committed.append(word)
            self._tail.append(word)
            self._committed_end_sample = end
            if word.text.rstrip().endswith(SENTENCE_END):
                self._boundary_sample = end
        self._n_committed += len(committed)
        return tuple(committed)

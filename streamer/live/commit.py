"""Commit policy: a stream of hypotheses over a growing window -> committed and tentative words.

Whisper re-reads the whole audio window at every step, so the words at the end of a hypothesis
change from step to step. LocalAgreement-n (Machacek et al., "Turning Whisper into Real-Time
Transcription System", 2023; the idea behind whisper_streaming's ``HypothesisBuffer``) commits a
word once ``n`` consecutive hypotheses agree on it; everything after the agreed prefix stays
tentative. Committed words never change again.

Each hypothesis restates the committed words whose audio is still in the window; the seam where
its new words begin is found in ``seams``. Which words vote, and where agreement alone does not
decide, is in ``voting``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from streamer.audio import ms_to_samples
from streamer.engine.script import is_spaceless
from streamer.live.seams import CommittedTail
from streamer.live.voting import Voting
from streamer.live.wordtext import SENTENCE_END, common_prefix_length, normalize, words_text
from streamer.types import Hypothesis, Word

# agreed characters of a spaceless script that wait where the readings part after them
SPACELESS_HOLD = 1


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

    def force_commit(
        self, end_of_utterance: bool = False, until_sample: int | None = None
    ) -> CommitUpdate:
        """Commit the tentative tail now (a pause or a VAD endpoint): all of it, or with
        ``until_sample`` the words that end by then (the VAD decides an endpoint after the
        fact, when the newest reading may already hold the next words, cut off mid-word at
        the window's end). After the end of an utterance only silence follows the committed
        words, so no later window restates them."""
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
        short_window_ms: float = 0.0,
        edge_ms: float = 100.0,
        seam_window_ms: float = 1000.0,
        unsure_probability: float = 0.0,
        unsure_settle_ms: float = 800.0,
        contested_wait: bool = False,
        settled_ms: float = 0.0,
        settled_probability: float = 0.8,
        keep_words: int = 64,
    ) -> None:
        if n < 1:
            raise ValueError(f"LocalAgreement needs n >= 1 hypotheses to agree, got n={n}")
        if keep_words < 1:
            raise ValueError(f"keep_words must be at least 1, got {keep_words}")
        self.n = n
        # Whisper's word times jitter by a few 20 ms steps between readings of the same audio.
        self._tolerance_samples = ms_to_samples(tolerance_ms)
        # readings of a short window (the start of an utterance) are the least reliable:
        # they need one more agreeing reading
        self._short_window_samples = ms_to_samples(short_window_ms)
        self._history: deque[Hypothesis] = deque(maxlen=n + 2)
        self._voting = Voting(
            edge_samples=ms_to_samples(edge_ms),
            unsure_probability=unsure_probability,
            settle_samples=ms_to_samples(unsure_settle_ms),
            contested_wait=contested_wait,
            settled_samples=ms_to_samples(settled_ms),
            settled_probability=settled_probability,
        )
        self._tail = CommittedTail(
            keep_words, self._tolerance_samples, ms_to_samples(seam_window_ms)
        )
        self._boundary_sample = 0  # end of the last committed sentence or segment
        self._tentative: tuple[Word, ...] = ()
        # the stop taken off a word committed at a pause, until the sentence is known to end
        self._held_stop: Word | None = None

    # --- the policy ---------------------------------------------------------------------------

    def update(self, hypothesis: Hypothesis) -> CommitUpdate:
        self._history.append(hypothesis)
        window = hypothesis.window_end_sample - hypothesis.window_start_sample
        short = 0 < self._short_window_samples and window < self._short_window_samples
        needed = self.n + 1 if short else self.n
        readings = list(self._history)[-needed:]
        candidates = [self._tail.unseen(reading) for reading in readings]
        voters = [
            self._voting.heard(words, reading) for words, reading in zip(candidates, readings)
        ]
        common = common_prefix_length(voters) if len(voters) == needed else 0
        agreed = self._voting.sure_prefix(voters, common, hypothesis.window_end_sample)
        agreed = self._voting.whole_word_prefix(voters, agreed, SPACELESS_HOLD)
        if self._voting.contested_wait and len(self._history) > needed:
            earlier = self._history[-needed - 1]
            agreed = self._voting.uncontested_prefix(
                voters[-1][:agreed], self._voting.heard(self._tail.unseen(earlier), earlier)
            )
        if agreed == common and len(voters) == needed:
            agreed += self._voting.settled_count(voters, agreed, hypothesis.window_end_sample)
        newest = candidates[-1]
        # The newest reading had the most audio, so its spelling and timing are kept.
        committed = self._commit(self._release_stop(newest[:agreed], [hypothesis]))
        self._tentative = newest[agreed:]
        return CommitUpdate(committed, self._tentative)

    def force_commit(
        self, end_of_utterance: bool = False, until_sample: int | None = None
    ) -> CommitUpdate:
        ready = self._tentative
        if end_of_utterance:
            ready = self._longer_earlier_tail(ready)
        if until_sample is not None:
            ready = self._ending_by(ready, until_sample)
        left = len(self._tentative) - len(ready)
        ready = self._release_stop(ready, list(reversed(self._history)))
        if not end_of_utterance:
            ready = self._hold_stop(ready)
        elif self._held_stop is not None:  # the utterance ended where the sentence did
            ready, self._held_stop = (*ready, self._held_stop), None
        committed = self._commit(ready)
        if end_of_utterance:
            self._tail.seal()
        # the committed end is a place to cut the window only if the speech stopped there
        # (a max-length cut decided late may find agreed words past it, mid-phrase)
        stopped = not left and (
            until_sample is None or self._tail.end_sample <= until_sample + self._tolerance_samples
        )
        if self._tail.count and stopped:
            self._boundary_sample = self._tail.end_sample
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
        cut = min(self._tail.end_sample, window_end_sample)
        if too_long and self._tail.count and cut > window_start_sample:
            return cut
        return None

    # --- what was committed -------------------------------------------------------------------

    @property
    def committed_end_sample(self) -> int:
        return self._tail.end_sample

    @property
    def n_committed(self) -> int:
        """How many words were committed since the start (the words themselves are not kept)."""
        return self._tail.count

    @property
    def committed_words(self) -> tuple[Word, ...]:
        """The most recent committed words, at most ``keep_words`` of them."""
        return self._tail.words

    @property
    def committed_text(self) -> str:
        return words_text(self._tail.words)

    @property
    def tentative(self) -> tuple[Word, ...]:
        return self._tentative

    # --- helpers ------------------------------------------------------------------------------

    def _ending_by(self, words: tuple[Word, ...], sample: int) -> tuple[Word, ...]:
        """The leading words that end by ``sample``, give or take the timing jitter."""
        for index, word in enumerate(words):
            if word.end_sample > sample + self._tolerance_samples:
                return words[:index]
        return words

    def _longer_earlier_tail(self, tentative: tuple[Word, ...]) -> tuple[Word, ...]:
        """The reading before the newest one, where it read the same words and more.

        Whisper ends some readings early, and at the end of an utterance no later reading
        follows: the words the reading before it heard would be lost (measured: the last
        reading of a file, 30 ms after the one before, stopped at "between" and lost "Gothic
        and Roman"). Only an earlier reading that the newest one agrees with, as far as it
        goes, is taken, and only its words heard before its window's edge."""
        if len(self._history) < 2:
            return tentative
        earlier = self._history[-2]
        words = self._voting.heard(self._tail.unseen(earlier), earlier)
        longer = len(words) > len(tentative)
        if longer and common_prefix_length([tentative, words]) == len(tentative):
            return words
        return tentative

    def _hold_stop(self, words: tuple[Word, ...]) -> tuple[Word, ...]:
        """``words`` with the sentence-final stop taken off the last one, and kept aside.

        A reading taken at a pause ends where the audio does, and Whisper closes a sentence
        there that the speaker goes on with ("may just be considered." then "as the
        invention"): committed as read, the stop would stand mid-sentence for good."""
        if not words:
            return words
        last = words[-1]
        body = last.text.rstrip()
        bare = body.rstrip("".join(SENTENCE_END))
        if bare == body or not normalize(bare):
            return words
        stop = body[len(bare) :]
        self._held_stop = Word(stop, last.end_sample, last.end_sample, last.probability)
        return (*words[:-1], replace(last, text=bare))

    def _release_stop(
        self, words: tuple[Word, ...], readings: Sequence[Hypothesis]
    ) -> tuple[Word, ...]:
        """``words`` (new words to commit) after the held stop if the newest of ``readings``
        that holds them closes the sentence before them; without it if that reading goes on
        with the sentence. With no new words the stop stays held."""
        held = self._held_stop
        if held is None or not words:
            return words
        self._held_stop = None
        first = words[0]
        for reading in readings:
            index = next((i for i, w in enumerate(reading.words) if w is first), None)
            if index is None:
                continue
            if index == 0:  # the reading starts with the new words: a capital starts anew
                initial = first.text.strip()[:1]  # (a script without case: nothing says not)
                closes = initial.isupper() or is_spaceless(initial)
            else:
                closes = reading.words[index - 1].text.rstrip().endswith(held.text)
            return (held, *words) if closes else words
        # the new words are the rest of the last committed word: the sentence went on
        return words

    def _commit(self, words: Sequence[Word]) -> tuple[Word, ...]:
        """Append words to the committed stream; a word that closes a sentence marks a place
        to cut the window."""
        committed = []
        for word in words:
            word = self._tail.append(word)
            committed.append(word)
            if word.text.rstrip().endswith(SENTENCE_END):
                self._boundary_sample = word.end_sample
        return tuple(committed)

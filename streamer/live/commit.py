"""Commit policy: a stream of hypotheses over a growing window -> committed and tentative words.

Whisper re-reads the whole audio window at every step, so the words at the end of a hypothesis
change from step to step. LocalAgreement-n (Machacek et al., "Turning Whisper into Real-Time
Transcription System", 2023; the idea behind whisper_streaming's ``HypothesisBuffer``) commits a
word once ``n`` consecutive hypotheses agree on it; everything after the agreed prefix stays
tentative. Committed words never change again.

Each hypothesis restates the committed words whose audio is still in the window. They are
found by text first: the committed words of the window are aligned to the hypothesis (compared
lower case without punctuation), and what follows the last committed word is new. Timing alone
is not enough: Whisper moves word boundaries by a few hundred milliseconds between readings, so
a short word after the committed end ("most, if not") looks like old audio, and a restated word
re-aligned with more context looks like new audio. Time decides only where the text cannot: the
committed tail was spelled differently this time ("concern" then "concerned") or not at all.
"""

from __future__ import annotations

import unicodedata
from collections import deque
from collections.abc import Iterator, Sequence
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


def normalize(text: str) -> str:
    """The form words are compared in: lower case, no punctuation, no spaces."""
    return "".join(
        char
        for char in text.lower()
        if not unicodedata.category(char).startswith("P") and not char.isspace()
    )


def repeat_lengths(items: Sequence, index: int, shortest: int, longest: int) -> Iterator[int]:
    """Lengths (longest first, ``shortest``..``longest``) of the phrases starting at
    ``index`` that are said again right after themselves."""
    for n in range(min(longest, (len(items) - index) // 2), shortest - 1, -1):
        # the first word rules out most lengths without copying slices (a phrase may be
        # as long as half the reading)
        if items[index] != items[index + n]:
            continue
        if items[index : index + n] == items[index + n : index + 2 * n]:
            yield n


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
        self._seam_window_samples = ms_to_samples(seam_window_ms)
        # readings of a short window (the start of an utterance) are the least reliable:
        # they need one more agreeing reading
        self._short_window_samples = ms_to_samples(short_window_ms)
        self._history: deque[Hypothesis] = deque(maxlen=n + 2)
        # a word starting this close to the end of its window has almost no audio behind it:
        # Whisper puts invented words there (measured: "chief actors were the chief actors.",
        # the last four 20 ms long at the window's end, read the same way twice)
        self._edge_samples = ms_to_samples(edge_ms)
        # Agreement is weak evidence for a word the model itself doubts: two readings with
        # little audio after it often agree on the same wrong guess ("aforementioned" for
        # "aforesaid"), which more audio corrects. Such a word waits until enough audio
        # follows it (or a pause makes the tail final).
        self._unsure_probability = unsure_probability
        self._settle_samples = ms_to_samples(unsure_settle_ms)
        # A word the reading before the agreeing ones read otherwise is contested: readings
        # that flip ("asked", "ask", "asked", "asked") are guessing, and one more agreeing
        # reading is asked of them.
        self._contested_wait = contested_wait
        # A new word the newest reading heard whole, with this much audio after it and sure
        # of it, needs no second reading when every earlier word agreed (0: off). Longer
        # steps cost less CPU, but under plain agreement a word spoken early in a step waits
        # for the next one: on the modelled clock 1.01 s mean commit latency at 650 ms steps,
        # 0.90 s with 200 ms settled, and no more errors (long-form 7.16% -> 7.04%); at real
        # time on the AMD machine 1.03 s even so, so no preset turns it on (README).
        self._settled_samples = ms_to_samples(settled_ms)
        self._settled_probability = settled_probability
        self._tail: deque[Word] = deque(maxlen=keep_words)
        self._n_committed = 0
        self._committed_end_sample = 0
        self._boundary_sample = 0  # end of the last committed sentence or segment
        self._tentative: tuple[Word, ...] = ()
        self._sealed = 0  # the first ``_sealed`` words of the tail end an utterance or precede it

    # --- the policy ---------------------------------------------------------------------------

    def update(self, hypothesis: Hypothesis) -> CommitUpdate:
        self._history.append(hypothesis)
        window = hypothesis.window_end_sample - hypothesis.window_start_sample
        short = 0 < self._short_window_samples and window < self._short_window_samples
        needed = self.n + 1 if short else self.n
        readings = list(self._history)[-needed:]
        candidates = [self._unseen(reading) for reading in readings]
        voters = [self._heard(words, reading) for words, reading in zip(candidates, readings)]
        common = common_prefix_length(voters) if len(voters) == needed else 0
        agreed = self._sure_prefix(voters, common, hypothesis.window_end_sample)
        if self._contested_wait and len(self._history) > needed:
            earlier = self._history[-needed - 1]
            agreed = self._uncontested_prefix(
                voters[-1][:agreed], self._heard(self._unseen(earlier), earlier)
            )
        if agreed == common and len(voters) == needed:
            agreed += self._settled_count(voters, agreed, hypothesis.window_end_sample)
        newest = candidates[-1]
        # The newest reading had the most audio, so its spelling and timing are kept.
        committed = self._commit(newest[:agreed])
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
        committed = self._commit(ready)
        if end_of_utterance:
            self._sealed = len(self._tail)
        # the committed end is a place to cut the window only if the speech stopped there
        # (a max-length cut decided late may find agreed words past it, mid-phrase)
        stopped = not left and (
            until_sample is None
            or self._committed_end_sample <= until_sample + self._tolerance_samples
        )
        if self._n_committed and stopped:
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
        words = self._heard(self._unseen(earlier), earlier)
        longer = len(words) > len(tentative)
        if longer and common_prefix_length([tentative, words]) == len(tentative):
            return words
        return tentative

    def _heard(self, words: tuple[Word, ...], reading: Hypothesis) -> tuple[Word, ...]:
        """The words of a reading that may vote: those starting before its window's edge."""
        edge = reading.window_end_sample - self._edge_samples
        for index, word in enumerate(words):
            if word.start_sample > edge:
                return words[:index]
        return words

    def _sure_prefix(self, voters: list[tuple[Word, ...]], agreed: int, window_end: int) -> int:
        """How many of the ``agreed`` leading words may commit now: up to the first one that
        some reading gave a probability under the threshold and that has less than the
        settle time of audio after it in the newest reading."""
        if self._unsure_probability <= 0:
            return agreed
        for index in range(agreed):
            probability = min(words[index].probability for words in voters)
            settled = window_end - voters[-1][index].end_sample >= self._settle_samples
            if probability < self._unsure_probability and not settled:
                return index
        return agreed

    def _settled_count(self, voters: list[tuple[Word, ...]], agreed: int, window_end: int) -> int:
        """How many words after the ``agreed`` ones commit on the newest reading alone: only
        if the earlier readings held no more than the agreed words, and then each word up to
        the first one that is doubted or lacks the settle time of audio after it."""
        if self._settled_samples <= 0 or any(len(words) > agreed for words in voters[:-1]):
            return 0
        count = 0
        for word in voters[-1][agreed:]:
            settled = window_end - word.end_sample >= self._settled_samples
            if not settled or word.probability < self._settled_probability:
                break
            count += 1
        return count

    @staticmethod
    def _uncontested_prefix(agreed: tuple[Word, ...], earlier: tuple[Word, ...]) -> int:
        """How many ``agreed`` words the earlier reading read the same way (or had not
        heard yet: a reading that stopped short contests nothing)."""
        for index, (word, before) in enumerate(zip(agreed, earlier)):
            if normalize(word.text) != normalize(before.text):
                return index
        return len(agreed)

    def _is_committed_audio(self, word: Word) -> bool:
        """True if the word lies in audio already committed, allowing for timing jitter.

        A word may overhang the committed end by the tolerance, but by no more than half its
        own length, so a short new word right after the committed end is kept.
        """
        overhang = word.end_sample - self._committed_end_sample
        half_length = max(0, (word.end_sample - word.start_sample) // 2)
        return overhang <= min(self._tolerance_samples, half_length)

    def _unseen(self, hypothesis: Hypothesis) -> tuple[Word, ...]:
        """The part of a hypothesis after the committed text."""
        words = tuple(hypothesis.words)
        if not self._n_committed:
            return words
        window_start = hypothesis.window_start_sample
        # committed words whose audio this window may hold: the only ones it can restate (the
        # window may start at a committed word's end that Whisper timed early: a seam window
        # of slack)
        earliest = window_start - self._seam_window_samples
        recent = list(self._tail)[self._sealed :]
        in_window = [w for w in recent if w.end_sample > earliest]
        if not in_window:  # a window after the committed audio: only time can overlap
            return words[self._old_audio_prefix(words, 0) :]
        return self._completing_last(words, self._restated_prefix(words, in_window))

    def _completing_last(self, words: tuple[Word, ...], cut: int) -> tuple[Word, ...]:
        """``words[cut:]``, where the first of them or the restated one before it is the last
        committed word read whole this time: then only its rest is new ("flower" committed,
        then "flower-fattened" over the same audio: "-fattened", not "flower flower-fattened",
        nor "flower" alone)."""
        for index in (cut - 1, cut):
            rest = self._rest_of_last(words[index]) if 0 <= index < len(words) else None
            if rest is not None:
                return (rest, *words[index + 1 :])
        return words[cut:]

    def _rest_of_last(self, word: Word) -> Word | None:
        """What ``word`` adds to the last committed word, if it starts where that word did
        (give or take the jitter), spells it and goes on past its end; else None."""
        if len(self._tail) <= self._sealed:  # nothing committed since an utterance's end
            return None
        last = self._tail[-1]
        old, new = normalize(last.text), normalize(word.text)
        same_start = abs(word.start_sample - last.start_sample) <= self._tolerance_samples
        open_ended = last.text.rstrip()[-1:].isalnum()  # "read." closed its word
        longer = bool(old) and len(new) > len(old) and new.startswith(old)
        if not (same_start and open_ended and longer and word.end_sample > last.end_sample):
            return None
        text = word.text.strip()
        kept = 0  # characters of ``text`` that spell the committed word
        for count, char in enumerate(text, 1):
            kept += bool(normalize(char))
            if kept == len(old):
                return Word(text[count:], last.end_sample, word.end_sample, word.probability)
        return None

    def _restated_prefix(self, words: tuple[Word, ...], committed: list[Word]) -> int:
        """How many leading words of ``words`` restate the ``committed`` words."""
        old = [normalize(word.text) for word in committed]
        new = [normalize(word.text) for word in words]
        cut = self._end_of_committed_text(words, new, old)
        if cut is not None:
            # what follows is new, unless it ends before the committed audio does (the same
            # sound read twice)
            while cut < len(words) and words[cut].end_sample <= self._committed_end_sample:
                cut += 1
            return cut
        # the last committed word was re-spelled or dropped: align what agrees, then time
        # decides where the old audio ends. A match is a restatement only where the words
        # end about where the committed ones did: a common word seconds later is new speech
        # (measured: a reading that skipped the committed audio stretched its first word,
        # "the", over it, and an older committed "the" would have swallowed it)
        matcher = SequenceMatcher(None, old, new, autojunk=False)
        blocks = [
            block
            for block in matcher.get_matching_blocks()
            if block.size
            and words[block.b].start_sample < self._committed_end_sample
            and self._ends_near(
                words[block.b + block.size - 1], committed[block.a + block.size - 1]
            )
        ]
        cut = blocks[-1].b + blocks[-1].size if blocks else 0
        cut = self._old_audio_prefix(words, cut)
        if cut < len(words) and self._restates_last(words[cut]):
            cut += 1
        return cut

    def _end_of_committed_text(
        self, words: tuple[Word, ...], new: list[str], old: list[str]
    ) -> int | None:
        """Where the committed text ends in ``words``: the position after the longest run of
        words that ends like the committed text does (ties: the one ending nearest the
        committed end in time), or None if the last committed word is not there."""
        best, best_key = None, None
        for end in range(1, len(new) + 1):
            run = 0
            while run < min(end, len(old)) and new[end - 1 - run] == old[-1 - run]:
                run += 1
            if run == 0 or not self._may_restate(words[end - run]):
                continue
            key = (run, -abs(words[end - 1].end_sample - self._committed_end_sample))
            if best_key is None or key > best_key:
                best, best_key = end, key
        return best

    def _may_restate(self, word: Word) -> bool:
        """A word starting well after the committed end is new speech even when it repeats
        old words ("no ... no")."""
        return word.start_sample - self._committed_end_sample <= self._seam_window_samples

    def _ends_near(self, word: Word, committed: Word) -> bool:
        """Whether ``word`` may be ``committed`` read again: it ends no more than the seam
        window after it (Whisper moves word boundaries by a few hundred milliseconds)."""
        return word.end_sample - committed.end_sample <= self._seam_window_samples

    def _old_audio_prefix(self, words: tuple[Word, ...], start: int) -> int:
        """Index of the first word from ``start`` on that does not lie in committed audio."""
        while start < len(words) and self._is_committed_audio(words[start]):
            start += 1
        return start

    def _restates_last(self, word: Word) -> bool:
        """A word that begins inside the last committed word and spells nearly the same, or
        lies mostly in its audio, is the same word read again with more audio ("letter" then
        "letterpress")."""
        if not self._tail or word.start_sample >= self._committed_end_sample:
            return False
        last = self._tail[-1]
        # mostly the same audio: the same word, however it is spelled this time
        # ("Schoffer." at a pause, then "chauffeur, but by" with more audio)
        overlap = min(word.end_sample, last.end_sample) - max(word.start_sample, last.start_sample)
        if overlap > 0 and 2 * overlap >= word.end_sample - word.start_sample:
            return True
        old, new = normalize(last.text), normalize(word.text)
        if not old or not new:
            return False
        shorter, longer = sorted((old, new), key=len)
        # a prefix counts when it is most of the word: "letter" of "letterpress", not
        # "the" of "themselves" (a new "the" whose start DTW stretched back over old audio)
        prefix = longer.startswith(shorter) and 2 * len(shorter) >= len(longer)
        return prefix or SequenceMatcher(None, old, new).ratio() >= SIMILAR_SPELLING

    def _commit(self, words: Sequence[Word]) -> tuple[Word, ...]:
        """Append words to the committed stream, clamping times so they never go backwards."""
        committed = []
        for word in words:
            start = max(word.start_sample, self._committed_end_sample)
            end = max(word.end_sample, start)
            if (start, end) != (word.start_sample, word.end_sample):
                word = replace(word, start_sample=start, end_sample=end)
            committed.append(word)
            if len(self._tail) == self._tail.maxlen:
                self._sealed = max(0, self._sealed - 1)
            self._tail.append(word)
            self._committed_end_sample = end
            if word.text.rstrip().endswith(SENTENCE_END):
                self._boundary_sample = end
        self._n_committed += len(committed)
        return tuple(committed)

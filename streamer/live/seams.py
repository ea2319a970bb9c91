"""The seam: where a new reading of the window picks up after the words already committed.

Each hypothesis restates the committed words whose audio is still in the window. They are
found by text first: the committed words of the window are aligned to the hypothesis (compared
lower case without punctuation), and what follows the last committed word is new. Timing alone
is not enough: Whisper moves word boundaries by a few hundred milliseconds between readings, so
a short word after the committed end ("most, if not") looks like old audio, and a restated word
re-aligned with more context looks like new audio. Time decides only where the text cannot: the
committed tail was spelled differently this time ("concern" then "concerned") or not at all.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from difflib import SequenceMatcher

from streamer.engine.script import is_spaceless
from streamer.live.wordtext import normalize
from streamer.types import Hypothesis, Word

SIMILAR_SPELLING = 0.75  # difflib ratio above which two readings are the same word


class CommittedTail:
    """The most recent committed words (at most ``keep_words``), where they end, and how many
    were committed in all: what a new reading is matched against to find its unseen words."""

    def __init__(self, keep_words: int, tolerance_samples: int, seam_window_samples: int) -> None:
        self._words: deque[Word] = deque(maxlen=keep_words)
        self._count = 0
        self._end_sample = 0
        self._sealed = 0  # the first ``_sealed`` words end an utterance or precede it
        self._tolerance_samples = tolerance_samples
        self._seam_window_samples = seam_window_samples

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(self._words)

    @property
    def count(self) -> int:
        """How many words were committed since the start (not all of them are kept)."""
        return self._count

    @property
    def end_sample(self) -> int:
        """Absolute sample where the last committed word ends (0 before the first commit)."""
        return self._end_sample

    def append(self, word: Word) -> Word:
        """Commit one word, its times clamped so they never go backwards; returns it as kept."""
        start = max(word.start_sample, self._end_sample)
        end = max(word.end_sample, start)
        if (start, end) != (word.start_sample, word.end_sample):
            word = replace(word, start_sample=start, end_sample=end)
        if len(self._words) == self._words.maxlen:
            self._sealed = max(0, self._sealed - 1)
        self._words.append(word)
        self._end_sample = end
        self._count += 1
        return word

    def seal(self) -> None:
        """The utterance ended: only silence follows the words so far, so no later window
        restates them."""
        self._sealed = len(self._words)

    def unseen(self, hypothesis: Hypothesis) -> tuple[Word, ...]:
        """The part of a hypothesis after the committed text."""
        words = tuple(hypothesis.words)
        if not self._count:
            return words
        window_start = hypothesis.window_start_sample
        # committed words whose audio this window may hold: the only ones it can restate (the
        # window may start at a committed word's end that Whisper timed early: a seam window
        # of slack)
        earliest = window_start - self._seam_window_samples
        recent = list(self._words)[self._sealed :]
        in_window = [w for w in recent if w.end_sample > earliest]
        if not in_window:  # a window after the committed audio: only time can overlap
            return words[self._old_audio_prefix(words, 0) :]
        return self._completing_last(words, self._restated_prefix(words, in_window))

    # --- finding the end of the committed text ------------------------------------------------

    def _restated_prefix(self, words: tuple[Word, ...], committed: list[Word]) -> int:
        """How many leading words of ``words`` restate the ``committed`` words."""
        old = [normalize(word.text) for word in committed]
        new = [normalize(word.text) for word in words]
        cut = self._end_of_committed_text(words, new, old)
        if cut is not None:
            # what follows is new, unless it ends before the committed audio does (the same
            # sound read twice)
            while cut < len(words) and words[cut].end_sample <= self._end_sample:
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
            and words[block.b].start_sample < self._end_sample
            and self._character_in_old_audio(words[block.b])
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
            key = (run, -abs(words[end - 1].end_sample - self._end_sample))
            if best_key is None or key > best_key:
                best, best_key = end, key
        return best

    def _may_restate(self, word: Word) -> bool:
        """A word starting well after the committed end is new speech even when it repeats
        old words ("no ... no"). A character of a spaceless script repeats far more often
        than a word ("我们我你"): it restates only if it starts in the committed audio."""
        slack = self._tolerance_samples if is_spaceless(word.text) else self._seam_window_samples
        return word.start_sample - self._end_sample <= slack

    def _character_in_old_audio(self, word: Word) -> bool:
        """A character of a spaceless script matches a committed one only where most of it
        lies in the committed audio: the same character a moment later is new speech far
        more often than a word is ("们我们": the second "们" right after the committed end).
        Other words: always (time decides after the match)."""
        middle = (word.start_sample + word.end_sample) // 2
        return middle < self._end_sample or not is_spaceless(word.text)

    def _ends_near(self, word: Word, committed: Word) -> bool:
        """Whether ``word`` may be ``committed`` read again: it ends no more than the seam
        window after it (Whisper moves word boundaries by a few hundred milliseconds)."""
        return word.end_sample - committed.end_sample <= self._seam_window_samples

    # --- where time decides -------------------------------------------------------------------

    def _is_committed_audio(self, word: Word) -> bool:
        """True if the word lies in audio already committed, allowing for timing jitter.

        A word may overhang the committed end by the tolerance, but by no more than half its
        own length, so a short new word right after the committed end is kept. A character
        of a spaceless script that starts well inside the committed audio is old however far
        it runs on: the last one before a pause takes the pause's time too (measured: "州,"
        over 1.30-2.04 s restated "舟" committed at 1.32-1.56 s)."""
        overhang = word.end_sample - self._end_sample
        half_length = max(0, (word.end_sample - word.start_sample) // 2)
        if overhang <= min(self._tolerance_samples, half_length):
            return True
        early = word.start_sample < self._end_sample - self._tolerance_samples
        return early and is_spaceless(word.text)

    def _old_audio_prefix(self, words: tuple[Word, ...], start: int) -> int:
        """Index of the first word from ``start`` on that does not lie in committed audio."""
        while start < len(words) and self._is_committed_audio(words[start]):
            start += 1
        return start

    # --- the last committed word read again ---------------------------------------------------

    def _restates_last(self, word: Word) -> bool:
        """A word that begins inside the last committed word and spells nearly the same, or
        lies mostly in its audio, is the same word read again with more audio ("letter" then
        "letterpress")."""
        if not self._words or word.start_sample >= self._end_sample:
            return False
        last = self._words[-1]
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
        if len(self._words) <= self._sealed:  # nothing committed since an utterance's end
            return None
        last = self._words[-1]
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

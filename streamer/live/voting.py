"""The vote: which words of a reading may vote, and where agreement alone is not the last word.

Plain LocalAgreement commits the words ``n`` readings agree on. Measured on Whisper, agreement is
too weak for some words and too strict for others; these rules adjust it, each off by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamer.engine.script import is_spaceless
from streamer.live.wordtext import normalize
from streamer.types import Hypothesis, Word


@dataclass(frozen=True)
class Voting:
    """The rules of the vote, in samples (see ``LocalAgreement`` for the parameters in ms)."""

    # a word starting this close to the end of its window has almost no audio behind it:
    # Whisper puts invented words there (measured: "chief actors were the chief actors.",
    # the last four 20 ms long at the window's end, read the same way twice)
    edge_samples: int
    # Agreement is weak evidence for a word the model itself doubts: two readings with
    # little audio after it often agree on the same wrong guess ("aforementioned" for
    # "aforesaid"), which more audio corrects. Such a word waits until enough audio
    # follows it (or a pause makes the tail final).
    unsure_probability: float
    settle_samples: int
    # A word the reading before the agreeing ones read otherwise is contested: readings
    # that flip ("asked", "ask", "asked", "asked") are guessing, and one more agreeing
    # reading is asked of them.
    contested_wait: bool
    # A new word the newest reading heard whole, with this much audio after it and sure
    # of it, needs no second reading when every earlier word agreed (0: off). Longer
    # steps cost less CPU, but under plain agreement a word spoken early in a step waits
    # for the next one: on the modelled clock 1.01 s mean commit latency at 650 ms steps,
    # 0.90 s with 200 ms settled, and no more errors (long-form 7.16% -> 7.04%); at real
    # time on the AMD machine 1.03 s even so, so no preset turns it on (docs/benchmarks.md).
    settled_samples: int
    settled_probability: float

    def heard(self, words: tuple[Word, ...], reading: Hypothesis) -> tuple[Word, ...]:
        """The words of a reading that may vote: those starting before its window's edge."""
        edge = reading.window_end_sample - self.edge_samples
        for index, word in enumerate(words):
            if word.start_sample > edge:
                return words[:index]
        return words

    def sure_prefix(self, voters: list[tuple[Word, ...]], agreed: int, window_end: int) -> int:
        """How many of the ``agreed`` leading words may commit now: up to the first one that
        some reading gave a probability under the threshold and that has less than the
        settle time of audio after it in the newest reading."""
        if self.unsure_probability <= 0:
            return agreed
        for index in range(agreed):
            probability = min(words[index].probability for words in voters)
            settled = window_end - voters[-1][index].end_sample >= self.settle_samples
            if probability < self.unsure_probability and not settled:
                return index
        return agreed

    def settled_count(self, voters: list[tuple[Word, ...]], agreed: int, window_end: int) -> int:
        """How many words after the ``agreed`` ones commit on the newest reading alone: only
        if the earlier readings held no more than the agreed words, and then each word up to
        the first one that is doubted or lacks the settle time of audio after it."""
        if self.settled_samples <= 0 or any(len(words) > agreed for words in voters[:-1]):
            return 0
        count = 0
        for word in voters[-1][agreed:]:
            settled = window_end - word.end_sample >= self.settled_samples
            if not settled or word.probability < self.settled_probability:
                break
            count += 1
        return count

    @staticmethod
    def whole_word_prefix(voters: list[tuple[Word, ...]], agreed: int, hold: int) -> int:
        """How many of the ``agreed`` leading units may commit where the readings part after
        them: in a script without spaces the last ``hold`` agreed characters before the
        parting may begin a word read otherwise ("美國家" then "美國加利福尼亞": "家" of a
        "加州" still being read), so they wait. Words of other scripts all commit."""
        parted = any(len(words) > agreed for words in voters)
        newest = voters[-1]
        kept = agreed
        while parted and kept > agreed - hold and kept > 0 and is_spaceless(newest[kept - 1].text):
            kept -= 1
        return kept

    @staticmethod
    def uncontested_prefix(agreed: tuple[Word, ...], earlier: tuple[Word, ...]) -> int:
        """How many ``agreed`` words the earlier reading read the same way (or had not
        heard yet: a reading that stopped short contests nothing)."""
        for index, (word, before) in enumerate(zip(agreed, earlier)):
            if normalize(word.text) != normalize(before.text):
                return index
        return len(agreed)

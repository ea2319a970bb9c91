"""Word error rate as Whisper reports it: both sides through Whisper's English text normalizer,
then corpus-level edit counts (total errors over total reference words) from jiwer.

jiwer and whisper-normalizer are development dependencies (``pip install -e '.[dev]'``); they are
imported on first use, so the runtime never needs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from streamer.errors import DependencyError

_INSTALL_HINT = (
    "install the dev extra: pip install -e '.[dev]' (or: pip install jiwer whisper-normalizer)"
)


@lru_cache(maxsize=1)
def _english_normalizer() -> Callable[[str], str]:
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError as error:
        raise DependencyError(f"WER needs whisper-normalizer; {_INSTALL_HINT}") from error
    return EnglishTextNormalizer()


def _jiwer():
    try:
        import jiwer
    except ImportError as error:
        raise DependencyError(f"WER needs jiwer; {_INSTALL_HINT}") from error
    return jiwer


def normalize(text: str) -> str:
    """Whisper's English normalization: lower case, no punctuation, spelled-out numbers as
    digits, British spellings as American, "mr" as "mister", single spaces."""
    return " ".join(_english_normalizer()(text).split())


@dataclass(frozen=True)
class WordErrors:
    """Edit counts of hypotheses against references, summed over a corpus."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Errors per reference word (0.0 for an empty corpus with no insertions)."""
        if self.reference_words == 0:
            return float(self.errors > 0)
        return self.errors / self.reference_words

    def __add__(self, other: WordErrors) -> WordErrors:
        return WordErrors(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_words + other.reference_words,
        )


NO_ERRORS = WordErrors(0, 0, 0, 0)


def word_errors(references: Sequence[str], hypotheses: Sequence[str]) -> WordErrors:
    """Corpus-level edit counts after normalizing both sides.

    A reference that normalizes to nothing counts every hypothesis word as an insertion
    (older jiwer versions refuse empty references)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    pairs = [(normalize(ref), normalize(hyp)) for ref, hyp in zip(references, hypotheses)]
    stray = sum(len(hyp.split()) for ref, hyp in pairs if not ref)
    scored = [(ref, hyp) for ref, hyp in pairs if ref]
    if not scored:
        return WordErrors(0, 0, stray, 0)
    output = _jiwer().process_words([ref for ref, _ in scored], [hyp for _, hyp in scored])
    return WordErrors(
        substitutions=output.substitutions,
        deletions=output.deletions,
        insertions=output.insertions + stray,
        reference_words=output.hits + output.substitutions + output.deletions,
    )


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Total word errors over total reference words, Whisper-normalized (0.12 = 12 %)."""
    return word_errors(references, hypotheses).wer

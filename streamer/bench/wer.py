"""Word error rate as Whisper reports it: both sides through Whisper's English text normalizer,
then corpus-level edit counts (total errors over total reference words) from jiwer.

Other languages: both sides through Whisper's basic normalizer (lower case, no punctuation or
symbols; numbers are left as they are), scored by words; languages written without spaces
between words (Chinese, Japanese, Thai ...) by characters with the whitespace removed (CER), and
Chinese mapped to Simplified characters on both sides first (OpenCC t2s): Whisper writes either.

jiwer, whisper-normalizer and opencc are development dependencies (``pip install -e '.[dev]'``);
they are imported on first use, so the runtime never needs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from streamer.errors import DependencyError

_INSTALL_HINT = "install the dev extra: pip install -e '.[dev]' (or: pip install jiwer ...)"
# scored by characters, whitespace removed: no spaces between words in their writing
CHARACTER_SCORED = frozenset({"zh", "yue", "ja", "th", "lo", "km", "my"})
SIMPLIFIED = frozenset({"zh", "yue"})  # both sides mapped to Simplified characters


@lru_cache(maxsize=2)
def _normalizer(kind: str) -> Callable[[str], str]:
    """Whisper's ``"english"`` or ``"basic"`` (any language) text normalizer."""
    try:
        from whisper_normalizer import basic, english
    except ImportError as error:
        raise DependencyError(f"WER needs whisper-normalizer; {_INSTALL_HINT}") from error
    return english.EnglishTextNormalizer() if kind == "english" else basic.BasicTextNormalizer()


@lru_cache(maxsize=1)
def _traditional_to_simplified() -> Callable[[str], str]:
    try:
        import opencc
    except ImportError as error:
        raise DependencyError(f"Chinese CER needs opencc; {_INSTALL_HINT}") from error
    return opencc.OpenCC("t2s").convert


def _jiwer():
    try:
        import jiwer
    except ImportError as error:
        raise DependencyError(f"WER needs jiwer; {_INSTALL_HINT}") from error
    return jiwer


def normalize(text: str) -> str:
    """Whisper's English normalization: lower case, no punctuation, spelled-out numbers as
    digits, British spellings as American, "mr" as "mister", single spaces."""
    return " ".join(_normalizer("english")(text).split())


def to_simplified(text: str) -> str:
    """Traditional Chinese characters as Simplified ones (OpenCC t2s); other text unchanged."""
    return _traditional_to_simplified()(text)


def metric_name(language: str) -> str:
    """ "CER" where ``language`` is scored by characters, else "WER"."""
    return "CER" if language in CHARACTER_SCORED else "WER"


def scored_units(text: str, language: str = "en") -> list[str]:
    """The units ``text`` is scored by: the words Whisper's English normalizer leaves for
    English; for other languages the words its basic normalizer leaves, or the characters
    (whitespace removed) where the language has no spaces between words."""
    if language == "en":
        return normalize(text).split()
    text = _normalizer("basic")(text)
    if language in SIMPLIFIED:
        text = to_simplified(text)
    if language in CHARACTER_SCORED:
        return list("".join(text.split()))
    return text.split()


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


def word_errors(
    references: Sequence[str], hypotheses: Sequence[str], language: str = "en"
) -> WordErrors:
    """Corpus-level edit counts after normalizing both sides (units: see ``scored_units``;
    "words" below are characters where ``language`` is scored by characters).

    A reference that normalizes to nothing counts every hypothesis word as an insertion
    (older jiwer versions refuse empty references)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    pairs = [
        (" ".join(scored_units(ref, language)), " ".join(scored_units(hyp, language)))
        for ref, hyp in zip(references, hypotheses)
    ]
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


def error_rate(
    references: Sequence[str], hypotheses: Sequence[str], languages: Sequence[str]
) -> float:
    """The error rate of a corpus whose items may be in several languages: corpus-level per
    language (WER or CER, see ``scored_units``), then the mean over the languages, each
    counted once (a rate over characters and one over words do not pool)."""
    if not len(references) == len(hypotheses) == len(languages):
        raise ValueError("references, hypotheses and languages differ in length")
    rates = []
    for language in dict.fromkeys(languages):
        picked = [i for i, lang in enumerate(languages) if lang == language]
        rates.append(
            word_errors([references[i] for i in picked], [hypotheses[i] for i in picked], language)
        )
    return sum(errors.wer for errors in rates) / len(rates) if rates else 0.0

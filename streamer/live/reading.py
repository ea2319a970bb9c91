"""Reading a window of live audio: the decode, the guards against invented text, word times.

A reading encodes the current window (the utterance so far, at most 30 s), decodes it with the
committed text that scrolled out of the window as prompt and the previous hypothesis as a draft
(accepted up to the first disagreement, see ``DecodeTask.run``) and aligns the words in time
from the cross-attention. It changes nothing: ``StreamingTranscriber`` decides where the window
is and lets the commit policy judge what was read.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

import numpy as np

from streamer.audio import (
    HOP_LENGTH,
    N_SAMPLES_PER_TOKEN,
    SAMPLE_RATE,
    ms_to_samples,
    seconds_to_samples,
)
from streamer.config import DecodeOptions, StreamConfig
from streamer.engine.alignment import interpolated_word_timestamps, word_timestamps
from streamer.engine.decoding import DecodingResult
from streamer.engine.script import is_spaceless, split_words
from streamer.engine.transcribe import Engine, max_tokens_for, tokens_per_second
from streamer.languages import AUTO
from streamer.live.stepcost import StepWork
from streamer.live.wordtext import SENTENCE_END, normalize, repeat_lengths
from streamer.types import CommittedWord, Word

REPEAT_NGRAM, REPEAT_COUNT = 3, 3  # a 3-word phrase three times in one hypothesis is a loop
# in a script without spaces a phrase of 4 characters three times is one (a character is about
# half a word: a character said again, "的" or "谢谢", is speech)
REPEAT_CHARS = 4
MAX_CHARS_PER_S = 25.0  # fast speech is ~20 characters/s; more is invented text
SQUEEZED_WORD_S = 0.06  # a phrase read again with most words this short has no audio
CRAMMED_WORD_S = 0.04  # a reading that ends in CRAMMED_RUN or more words this short...
CRAMMED_RUN = 3  # ...ran out of audio: no spoken word is that short, three in a row
CRAMMED_RUN_SPACELESS = 4  # characters: about two words
# auto language: each reading of an utterance detects its language until this much speech is
# in, and the reading past it fixes the language for the rest of the utterance (detected
# right on the 46 FLEURS/Common Voice clips of six languages from 1.5 s of speech: 59%,
# 2 s: 72%, 3 s: 93%, a whole 30 s window: 100%)
LANGUAGE_LOCK_S = 3.0


@dataclass(frozen=True)
class Reading:
    """One decode of a window, before the commit policy has seen it."""

    window_start: int
    window_end: int
    result: DecodingResult
    rejected: str  # why the hypothesis is dropped (no speech, loop, ...), if it is
    looped: bool  # the decode ran into a loop (a salvaged reading keeps what came before it)
    words: tuple[Word, ...]
    work: StepWork
    compute_s: float


class WindowReader:
    """Reads the window that starts at ``window_start`` with its prompt and draft. Where the
    window starts, the draft and the prompt context are kept by ``StreamingTranscriber``."""

    def __init__(
        self, engine: Engine, decode: DecodeOptions, stream: StreamConfig, pre_roll_ms: int = 0
    ):
        self.engine = engine
        self.pre_roll_samples = seconds_to_samples(pre_roll_ms / 1000)
        self.stream = stream
        # live decoding is greedy with timestamps; fallback would double the cost of a step
        self.options = replace(decode, beam_size=1, without_timestamps=False, temperatures=(0.0,))
        self.task = engine.task(self.options)
        # the utterance's language: fixed by the options, or detected (None: not yet)
        self.language: str | None = None if self.task.language == AUTO else self.task.language
        self.window_start = 0
        self._draft: list[int] = []  # previous hypothesis tokens for this window start
        self._context: deque[CommittedWord] = deque(maxlen=64)  # recent commits, for prompts

    def prompt_tokens(self) -> list[int]:
        """Committed text that scrolled out of the window (up to ``prompt_chars``), unless a
        long silence separates it from the window."""
        before = [w for w in self._context if w.end_sample <= self.window_start]
        if not before or self.stream.prompt_chars == 0:
            return []
        if self.window_start - before[-1].end_sample > ms_to_samples(self.stream.prompt_max_gap_ms):
            return []
        text = "".join(w.text for w in before)[-self.stream.prompt_chars :]
        return self.engine.tokenizer.encode(" " + text.strip())

    def read(self, audio: np.ndarray) -> Reading:
        """Decode the window ``audio`` and place its words in time, changing nothing: a
        reading taken ahead of a pause is dropped if the voice comes back first."""
        started = time.perf_counter()
        window_end = self.window_start + len(audio)
        result, work = self._decode(audio)
        rejected = self._reject_reason(result, len(audio))
        looped = rejected == "repetition"
        if looped:
            salvaged = self._before_loop(result)
            if salvaged is not None and not self._reject_reason(salvaged, len(audio)):
                result, rejected = salvaged, ""
        words: list[Word] = []
        if not rejected:
            words = self._place_words(result, len(audio) // N_SAMPLES_PER_TOKEN, window_end)
            if words is None:
                rejected, words = "no audio", []
        compute_s = time.perf_counter() - started
        return Reading(
            self.window_start, window_end, result, rejected, looped, tuple(words), work, compute_s
        )

    def _place_words(
        self, result: DecodingResult, n_frames: int, window_end: int
    ) -> list[Word] | None:
        """Words in time from the cross-attention; from the timestamps where the export has
        no attention outputs (its word times are coarse, so the guards that judge a word by
        its duration are off). None: the words mostly lack audio (the reading is dropped)."""
        tokenizer, start, tokens = self.engine.tokenizer, self.window_start, result.tokens
        if result.cross_attentions is None:
            words = interpolated_word_timestamps(
                tokenizer, tokens, n_frames, start, result.token_logprobs
            )
            return [w for w in words if w.start_sample < window_end]
        attention = result.cross_attentions
        words = word_timestamps(
            tokenizer, tokens, attention, n_frames, start, result.token_logprobs
        )
        words = drop_squeezed_repeats([w for w in words if w.start_sample < window_end])
        if lacks_audio(words):  # judged whole: a crammed tail is most of such a reading
            return None
        return drop_crammed_tail(words)

    def _decode(self, audio: np.ndarray) -> tuple[DecodingResult, StepWork]:
        n_frames = len(audio) // HOP_LENGTH
        padding = self.stream.encoder_padding_s
        features = self.engine.encode(audio, n_frames, padding if padding > 0 else None)
        budget = max_tokens_for(len(audio) / SAMPLE_RATE, self.options, self.engine.info.n_text_ctx)
        language = self.language or self.task.detect(features).language
        result = self.task.run(
            features,
            self.prompt_tokens(),
            max_new_tokens=budget,
            want_alignment=True,
            draft=self._draft,
            language=language,
        )
        work = StepWork(
            encoder_positions=features.shape[1],
            prefill_tokens=result.prefill_tokens,
            decoder_calls=result.decoder_calls - 1,
            fed_tokens=result.fed_tokens,
            output_tokens=len(result.tokens),
            detections=0 if self.language else 1,
        )
        return result, work

    def _reject_reason(self, result: DecodingResult, n_samples: int) -> str:
        """Hallucination guards: silence, loops and runaway token rates are not text."""
        stream = self.stream
        if (
            result.no_speech_prob > stream.no_speech_threshold
            and result.avg_logprob < stream.log_prob_threshold
        ):
            return "no speech"
        if result.compression_ratio > stream.compression_ratio_threshold:
            return "repetition"
        text_tokens = [t for t in result.tokens if t < self.engine.tokenizer.special.eot]
        duration_s = n_samples / SAMPLE_RATE
        if len(text_tokens) > tokens_per_second(self.options, result.text) * duration_s + 8:
            return "repetition"
        if _has_repeated_ngram(result.text):
            return "repetition"
        speech_s = max(0.1, (n_samples - self.pre_roll_samples) / SAMPLE_RATE)
        if len(result.text.strip()) > MAX_CHARS_PER_S * speech_s + 4:
            return "implausible rate"
        return ""

    def _before_loop(self, result: DecodingResult) -> DecodingResult | None:
        """The reading up to where it began to loop, or None if it does not end in one.

        A loop usually starts after the words were read right ("make a deformed person
        appear lovely. Like a deformed person appear lovely. Like a ..."): rejecting the
        whole reading loses them (the step after read "deform"). One copy of the looping
        phrase is kept, up to its last sentence end ("Like" starts the next copy)."""
        decode = self.engine.tokenizer.decode  # text tokens only: timestamps read as ""
        sentence_ends = {
            k
            for k, token in enumerate(result.tokens)
            if decode([token]).rstrip().endswith(SENTENCE_END)
        }
        cut = loop_cut(result.tokens, sentence_ends)
        return None if cut is None else result.truncated(cut, decode(result.tokens[:cut]))


def loop_cut(tokens: Sequence[int], sentence_ends: Collection[int] = ()) -> int | None:
    """Where to cut a reading that ends in a loop: after the first copy of the phrase that
    repeats to the end (at least twice), or after that copy's last sentence end; None if
    the reading does not end in a loop. The earliest loop start wins (then the shortest
    phrase), so what comes before the loop is kept whole."""
    n = len(tokens)
    best: tuple[int, int] | None = None
    for period in range(1, n // 2 + 1):
        start = n - period  # walk back while the tail repeats with this period
        while start > 0 and tokens[start - 1] == tokens[start - 1 + period]:
            start -= 1
        if n - start >= 2 * period and (best is None or start < best[0]):
            best = (start, period)
    if best is None:
        return None
    start, period = best
    ends = [k for k in sentence_ends if start <= k < start + period]
    return max(ends) + 1 if ends else start + period


def drop_squeezed_repeats(words: list[Word]) -> list[Word]:
    """A phrase read twice in a row where one copy has no audio of its own is one phrase.

    Measured: "Has never been surpassed. Has never been surpassed." in one reading, the
    second "Has never been" 20 ms long in all, committed at a pause as it was; and a whole
    13-word sentence read again in 20 ms words at the window's end ("The Middle Ages brought
    calligraphy to perfection and it was natural there for..."), so phrases of any length
    are looked for. A phrase spoken twice ("on the beaches, on the beaches") has audio for
    both copies and stays. The first copy is kept, ending where the second did."""
    result = list(words)
    texts = [normalize(w.text) for w in result]
    index = 0
    while index < len(result):
        n = _squeezed_repeat_at(result, texts, index)
        if n:
            last = result[index + 2 * n - 1]
            result[index + n - 1] = replace(result[index + n - 1], end_sample=last.end_sample)
            del result[index + n : index + 2 * n]
            del texts[index + n : index + 2 * n]
        index += 1
    return result


def drop_crammed_tail(words: list[Word]) -> list[Word]:
    """A reading that ends in a run of words with no audio of their own ran out of audio:
    Whisper crams what it expects to hear next into the window's last frames (measured:
    "considered as the invention of the 15th century may be considered as the", the last
    ten words 20 ms each). They are dropped: at a pause they would be made final."""
    crammed = seconds_to_samples(CRAMMED_WORD_S)
    keep = len(words)
    while keep and words[keep - 1].end_sample - words[keep - 1].start_sample <= crammed:
        keep -= 1
    tail = "".join(word.text for word in words[keep:])
    run = CRAMMED_RUN_SPACELESS if is_spaceless(tail) else CRAMMED_RUN
    return words[:keep] if len(words) - keep >= run else words


def lacks_audio(words: list[Word]) -> bool:
    """A reading in a script without spaces whose characters mostly have no audio of their own
    is invented (measured: "中国文化学校副教授。", the committed text read again from the prompt
    over a noise after the utterance, seven of its nine characters 20 ms long). Characters
    of speech are 100-300 ms; other scripts are left to the other guards."""
    if not words or not is_spaceless("".join(word.text for word in words)):
        return False
    return _median_duration_s(words) <= CRAMMED_WORD_S


def _squeezed_repeat_at(words: list[Word], texts: list[str], index: int) -> int:
    """Length of a phrase (2+ words) at ``index`` read again at once, one copy squeezed."""
    for n in repeat_lengths(texts, index, 2, len(texts)):
        first, second = words[index : index + n], words[index + n : index + 2 * n]
        if min(_median_duration_s(first), _median_duration_s(second)) < SQUEEZED_WORD_S:
            return n
    return 0


def _median_duration_s(words: list[Word]) -> float:
    # the median: the last word of a squeezed copy takes the rest of the audio
    return float(np.median([w.end_sample - w.start_sample for w in words])) / SAMPLE_RATE


def _has_repeated_ngram(text: str) -> bool:
    """A phrase said three times in one reading: words, or characters of a spaceless script."""
    if is_spaceless(text):
        words = [unit for unit in map(normalize, split_words(text)) if unit]
        size = REPEAT_CHARS
    else:
        words, size = text.lower().split(), REPEAT_NGRAM
    grams = [tuple(words[i : i + size]) for i in range(len(words) - size + 1)]
    counts: dict[tuple[str, ...], int] = {}
    for gram in grams:
        counts[gram] = counts.get(gram, 0) + 1
        if counts[gram] >= REPEAT_COUNT:
            return True
    return False

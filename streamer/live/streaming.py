"""One inference step of live transcription, without threads: window -> words -> commits.

Each step encodes the current window (the utterance so far, at most 30 s), decodes it with
the committed text that scrolled out of the window as prompt and the previous hypothesis as a
draft (accepted up to the first disagreement, see ``DecodeTask.run``), aligns the words in
time from the cross-attention, and lets the commit policy decide what is final.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

import numpy as np

from streamer.audio import HOP_LENGTH, N_SAMPLES_PER_TOKEN, SAMPLE_RATE, seconds_to_samples
from streamer.config import DecodeOptions, StreamConfig
from streamer.engine.alignment import word_timestamps
from streamer.engine.decoding import DecodingResult
from streamer.engine.transcribe import Engine, max_tokens_for
from streamer.live.commit import SENTENCE_END, LocalAgreement, normalize, repeat_lengths
from streamer.live.stepcost import StepWork
from streamer.types import CommittedWord, EndpointReason, Hypothesis, Tentative, Word

PROMPT_MAX_GAP_S = 5.0  # older context than this (silence in between) is not a prompt
REPEAT_NGRAM, REPEAT_COUNT = 3, 3  # a 3-word phrase three times in one hypothesis is a loop
UNCOVERED_S = 1.0  # a reading ending this long before its window's end missed speech
UNREAD_AT_END_S = 0.6  # at an endpoint (the span ends 150 ms after its last voiced frame)
SEEK_BACK_S = 1.0  # a moved window starts at a committed word about this far back
SEEK_OVERLAP_S = 0.3  # or, with no committed word to start at, this much before the end
MAX_CHARS_PER_S = 25.0  # fast speech is ~20 characters/s; more is invented text
SQUEEZED_WORD_S = 0.06  # a phrase read again with most words this short has no audio
CRAMMED_WORD_S = 0.04  # a reading that ends in CRAMMED_RUN or more words this short...
CRAMMED_RUN = 3  # ...ran out of audio: no spoken word is that short, three in a row


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


@dataclass(frozen=True)
class StepResult:
    """What one step produced: new commits, the tentative tail, bookkeeping."""

    committed: tuple[CommittedWord, ...]
    tentative: Tentative
    decoded_end_sample: int
    compute_s: float
    hypothesis: Hypothesis | None = None
    rejected: str = ""  # why the hypothesis was dropped (no speech, loop, ...), if it was
    work: StepWork | None = None  # what the decode computed (a modelled clock's input)


class StreamingTranscriber:
    """Turns growing windows of one audio stream into committed and tentative words."""

    def __init__(
        self, engine: Engine, decode: DecodeOptions, stream: StreamConfig, pre_roll_ms: int = 0
    ):
        self.engine = engine
        self.pre_roll_samples = seconds_to_samples(pre_roll_ms / 1000)
        self.stream = stream
        # live decoding is greedy with timestamps; fallback would double the cost of a step
        self.options = replace(decode, beam_size=1, without_timestamps=False, temperatures=(0.0,))
        self.task = engine.task(self.options)
        self.policy = LocalAgreement(
            n=stream.agreement,
            short_window_ms=stream.short_window_s * 1000,
            unsure_probability=stream.unsure_probability,
            unsure_settle_ms=stream.unsure_settle_ms,
            contested_wait=stream.contested_wait,
            settled_ms=stream.settled_ms,
            settled_probability=stream.settled_probability,
        )
        self.window_start = 0
        self._read_end = 0  # where the newest reading's words end (absolute sample)
        self._cut_sample: int | None = None  # the last max-length cut: the span goes on there
        self._draft: list[int] = []  # previous hypothesis tokens for this window start
        self._context: deque[CommittedWord] = deque(maxlen=64)  # recent commits, for prompts

    # --- window management ------------------------------------------------------------------

    def start_utterance(self, start_sample: int) -> None:
        """Speech (re)starts at ``start_sample``: the window begins there, unless a
        max-length cut just split the span there (``endpoint``)."""
        cut, self._cut_sample = self._cut_sample, None
        if cut == start_sample:  # the same speech goes on: the window keeps its audio
            return
        self._move_window(max(start_sample, self.policy.committed_end_sample))

    def _move_window(self, start_sample: int) -> None:
        if start_sample != self.window_start:
            self.window_start = start_sample
            self._draft = []  # its timestamps were relative to the old start

    def maybe_trim(self, window_end: int) -> None:
        """Cut a long window near the end of a committed sentence (Whisper keeps its context
        best when a window starts at a sentence start), at a committed word's start about a
        second before that end, as a seek does: a window starting right at the end, with a
        second of audio, read "on the whole" as "Im a hole" (chapters 15.37% -> 15.09% on
        the modelled clock, long-form the same)."""
        max_samples = seconds_to_samples(self.stream.max_window_s)
        if window_end - self.window_start < seconds_to_samples(self.stream.trim_after_s):
            return
        cut = self.policy.trim_point(self.window_start, window_end, max_samples)
        if cut is not None:
            self._move_window(self._restart_sample(cut))

    def _skip_uncovered(self, words: list[Word], window_end: int) -> None:
        """Whisper sometimes ends a reading seconds before the audio does, and reads the same
        window the same way at every step, so the words after it would never come. When all
        it read is committed and more than ``UNCOVERED_S`` of audio follows, the window moves
        to the committed end: the next step reads the rest with the committed text as prompt
        (what offline Whisper does when it seeks to the last timestamp). It starts a little
        before that end, because word boundaries are approximate and a window starting inside
        a word misreads it; the commit policy drops the restated committed words."""
        committed_end = self.policy.committed_end_sample
        read_end = max([committed_end, *(w.end_sample for w in words)])
        uncovered = seconds_to_samples(UNCOVERED_S)
        if committed_end > self.window_start and window_end - read_end > uncovered:
            self._seek_committed_end()

    def _seek_committed_end(self) -> None:
        self._move_window(self._restart_sample(self.policy.committed_end_sample))

    def _restart_sample(self, end: int) -> int:
        """Where a window moved to ``end`` (a committed word's end) starts: at the start of
        the committed word that begins about ``SEEK_BACK_S`` before it (the latest one that
        begins by then, else the first after the window's start); never before the window.

        A window starting inside a word, with the committed text as prompt, makes Whisper
        skip the first new word and stretch the next one over it (measured: "that it might
        | appear I had none" read "I had done", "between | Gothic and Roman" read "and
        Roman"); from a word boundary a second back it reads the last committed words
        again, which the commit policy drops, and goes on (long-form WER 7.51% -> 7.04%,
        chapters 15.87% -> 15.37% on the modelled clock; 0.3 s back: 15.98%)."""
        starts = [
            w.start_sample
            for w in self.policy.committed_words
            if w.start_sample > self.window_start
        ]
        if not starts:  # no committed word starts in the window: no boundary to go to
            return max(self.window_start, end - seconds_to_samples(SEEK_OVERLAP_S))
        back = end - seconds_to_samples(SEEK_BACK_S)
        return max([start for start in starts if start <= back], default=starts[0])

    def prompt_tokens(self) -> list[int]:
        """Committed text that scrolled out of the window (up to ``prompt_chars``), unless a
        long silence separates it from the window."""
        before = [w for w in self._context if w.end_sample <= self.window_start]
        if not before or self.stream.prompt_chars == 0:
            return []
        if self.window_start - before[-1].end_sample > seconds_to_samples(PROMPT_MAX_GAP_S):
            return []
        text = "".join(w.text for w in before)[-self.stream.prompt_chars :]
        return self.engine.tokenizer.encode(" " + text.strip())

    # --- steps ------------------------------------------------------------------------------

    def step(self, audio: np.ndarray, now_s: float | None = None) -> StepResult:
        """Decode the window ``audio`` (it starts at ``window_start``) and commit what the
        last ``agreement`` hypotheses agree on. ``now_s`` stamps the commits (pipeline clock);
        None means: the audio end plus the compute time (the virtual clock)."""
        return self.apply(self.read(audio), now_s)

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
            n_frames = len(audio) // N_SAMPLES_PER_TOKEN
            words = word_timestamps(
                self.engine.tokenizer,
                result.tokens,
                result.cross_attentions or (),
                n_frames,
                self.window_start,
                result.token_logprobs,
            )
            words = drop_squeezed_repeats([w for w in words if w.start_sample < window_end])
            words = drop_crammed_tail(words)
        compute_s = time.perf_counter() - started
        return Reading(
            self.window_start, window_end, result, rejected, looped, tuple(words), work, compute_s
        )

    def apply(self, reading: Reading, now_s: float | None = None) -> StepResult:
        """Let the commit policy judge ``reading`` (taken by ``read`` on the current window
        and draft) and return the step's commits and tentative tail."""
        if reading.window_start != self.window_start:
            raise ValueError("the reading was taken on a window that has moved since")
        started = time.perf_counter()
        result, rejected, words = reading.result, reading.rejected, list(reading.words)
        if reading.looped:
            self._context.clear()  # a loop feeds on its own context: the next step goes without
        self._draft = [] if rejected else list(result.tokens)
        window_end = reading.window_end
        hypothesis = Hypothesis(
            words=reading.words,
            tokens=result.tokens,
            window_start_sample=self.window_start,
            window_end_sample=window_end,
            avg_logprob=result.avg_logprob,
            no_speech_prob=result.no_speech_prob,
            compression_ratio=result.compression_ratio,
        )
        update = self.policy.update(hypothesis)
        self._read_end = max([self.policy.committed_end_sample, *(w.end_sample for w in words)])
        if not rejected and not update.tentative:
            self._skip_uncovered(words, window_end)
        compute_s = reading.compute_s + time.perf_counter() - started
        stamp = now_s if now_s is not None else window_end / SAMPLE_RATE + compute_s
        committed = self._stamp(update.newly_committed, stamp)
        return StepResult(
            committed,
            Tentative(update.tentative_text, update.tentative),
            window_end,
            compute_s,
            hypothesis,
            rejected,
            reading.work,
        )

    def finalize(self, at_sample: int, now_s: float) -> StepResult:
        """A pause at ``at_sample``: commit the tentative words that end by then; the
        window and its draft stay."""
        update = self.policy.force_commit(until_sample=at_sample)
        committed = self._stamp(update.newly_committed, now_s)
        return StepResult(committed, Tentative(""), self.window_start, 0.0)

    def unread_tail(self, end_sample: int) -> bool:
        """True if the newest reading stopped well before the speech ending at
        ``end_sample`` did. Whisper ends some readings early ("a transition between..."
        with "Gothic and Roman" still in the audio) and reads the same window the same way
        again, so the last words of an utterance would be lost: call ``read_rest``."""
        overlap = seconds_to_samples(SEEK_OVERLAP_S)
        moves = self._read_end - overlap > self.window_start  # else it reads the same again
        return moves and end_sample - self._read_end > seconds_to_samples(UNREAD_AT_END_S)

    def read_rest(self, now_s: float) -> StepResult:
        """Commit what the newest reading holds and move the window to the committed end,
        so that the next step reads only the words it missed, with the rest as prompt."""
        result = self.finalize(self._read_end, now_s)
        self._seek_committed_end()
        return result

    def endpoint(
        self, end_sample: int, now_s: float, reason: EndpointReason = "silence"
    ) -> StepResult:
        """The span ended at ``end_sample``: the tentative words that end by then are
        final. After silence the next window starts after it. A max-length cut is no
        silence: the VAD decides it seconds late (at the quietest frame of the last few
        seconds), when the newest reading goes past it, so the words after the cut stay
        to be read again and the window keeps its audio (a window starting at the cut
        reads the word there badly: "Gothic" became "Catholic")."""
        cut = reason == "max_length"
        update = self.policy.force_commit(end_of_utterance=not cut, until_sample=end_sample)
        committed = self._stamp(update.newly_committed, now_s)
        if cut:
            self._cut_sample = end_sample
        else:
            self._move_window(max(end_sample, self.policy.committed_end_sample))
        return StepResult(committed, Tentative(""), end_sample, 0.0)

    def _decode(self, audio: np.ndarray) -> tuple[DecodingResult, StepWork]:
        n_frames = len(audio) // HOP_LENGTH
        padding = self.stream.encoder_padding_s
        features = self.engine.encode(audio, n_frames, padding if padding > 0 else None)
        budget = max_tokens_for(len(audio) / SAMPLE_RATE, self.options, self.engine.info.n_text_ctx)
        result = self.task.run(
            features,
            self.prompt_tokens(),
            max_new_tokens=budget,
            want_alignment=True,
            draft=self._draft,
        )
        work = StepWork(
            encoder_positions=features.shape[1],
            prefill_tokens=result.prefill_tokens,
            decoder_calls=result.decoder_calls - 1,
            fed_tokens=result.fed_tokens,
            output_tokens=len(result.tokens),
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
        if len(text_tokens) > self.options.max_tokens_per_second * duration_s + 8:
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

    def _stamp(self, words: tuple[Word, ...], now_s: float) -> tuple[CommittedWord, ...]:
        committed = tuple(CommittedWord(w.text, w.start_sample, w.end_sample, now_s) for w in words)
        self._context.extend(committed)
        return committed


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
    return words[:keep] if len(words) - keep >= CRAMMED_RUN else words


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
    words = text.lower().split()
    grams = [tuple(words[i : i + REPEAT_NGRAM]) for i in range(len(words) - REPEAT_NGRAM + 1)]
    counts: dict[tuple[str, ...], int] = {}
    for gram in grams:
        counts[gram] = counts.get(gram, 0) + 1
        if counts[gram] >= REPEAT_COUNT:
            return True
    return False

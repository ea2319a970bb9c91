"""One inference step of live transcription, without threads: window -> words -> commits.

Each step reads the current window (``WindowReader.read``: the utterance so far, at most 30 s,
decoded with the committed text that scrolled out of the window as prompt and the previous
hypothesis as a draft, its words aligned in time) and lets the commit policy decide what is
final; this module moves the window and keeps what the next reading reads with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from streamer.audio import SAMPLE_RATE, seconds_to_samples
from streamer.config import DecodeOptions, StreamConfig
from streamer.engine.transcribe import Engine
from streamer.languages import AUTO
from streamer.live.commit import LocalAgreement
from streamer.live.reading import LANGUAGE_LOCK_S, Reading, WindowReader
from streamer.live.stepcost import StepWork
from streamer.live.wordtext import words_text
from streamer.types import CommittedWord, EndpointReason, Hypothesis, Tentative, Word

UNCOVERED_S = 1.0  # a reading ending this long before its window's end missed speech
UNREAD_AT_END_S = 0.6  # at an endpoint (the span ends 150 ms after its last voiced frame)
SEEK_BACK_S = 1.0  # a moved window starts at a committed word about this far back
SEEK_OVERLAP_S = 0.3  # or, with no committed word to start at, this much before the end


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


class StreamingTranscriber(WindowReader):
    """Turns growing windows of one audio stream into committed and tentative words."""

    def __init__(
        self, engine: Engine, decode: DecodeOptions, stream: StreamConfig, pre_roll_ms: int = 0
    ):
        super().__init__(engine, decode, stream, pre_roll_ms)
        self.policy = LocalAgreement(
            n=stream.agreement,
            short_window_ms=stream.short_window_s * 1000,
            unsure_probability=stream.unsure_probability,
            unsure_settle_ms=stream.unsure_settle_ms,
            contested_wait=stream.contested_wait,
            settled_ms=stream.settled_ms,
            settled_probability=stream.settled_probability,
        )
        self._read_end = 0  # where the newest reading's words end (absolute sample)
        self._cut_sample: int | None = None  # the last max-length cut: the span goes on there
        self._reading_language = self.language or "en"  # of the newest reading
        self._held: Hypothesis | None = None  # the newest reading before the language settled

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

    # --- steps ------------------------------------------------------------------------------

    def step(self, audio: np.ndarray, now_s: float | None = None) -> StepResult:
        """Decode the window ``audio`` (it starts at ``window_start``) and commit what the
        last ``agreement`` hypotheses agree on. ``now_s`` stamps the commits (pipeline clock);
        None means: the audio end plus the compute time (the virtual clock)."""
        return self.apply(self.read(audio), now_s)

    def apply(self, reading: Reading, now_s: float | None = None) -> StepResult:
        """Let the commit policy judge ``reading`` (taken by ``read`` on the current window
        and draft) and return the step's commits and tentative tail."""
        if reading.window_start != self.window_start:
            raise ValueError("the reading was taken on a window that has moved since")
        started = time.perf_counter()
        result, rejected, words = reading.result, reading.rejected, list(reading.words)
        if reading.looped:
            self._context.clear()  # a loop feeds on its own context: the next step goes without
        self._settle_language(reading)
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
        if self.language is None:  # read in a detected but unsettled language: shown only
            return self._hold(reading, hypothesis, started)
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

    def _hold(self, reading: Reading, hypothesis: Hypothesis, started: float) -> StepResult:
        """A reading before the utterance's language is settled: its words are tentative
        and the commit policy sees it only if the speech ends before the language settles
        (``_release_held``): agreeing readings in a wrongly detected language would
        commit words in it (1.5 s of speech is detected right 59% of the time on the
        FLEURS and Common Voice clips, three seconds 93%)."""
        self._held, words = hypothesis, reading.words  # no words if it was rejected
        self._read_end = max([self.policy.committed_end_sample, *(w.end_sample for w in words)])
        compute_s = reading.compute_s + time.perf_counter() - started
        return StepResult(
            (),
            Tentative(words_text(words), words),
            reading.window_end,
            compute_s,
            hypothesis,
            reading.rejected,
            reading.work,
        )

    def _release_held(self) -> tuple[Word, ...]:
        """The speech ended before its language settled: the commit policy takes
        the newest held reading (what it commits on its own is returned)."""
        held, self._held = self._held, None
        return () if held is None else self.policy.update(held).newly_committed

    def finalize(self, at_sample: int, now_s: float) -> StepResult:
        """A pause at ``at_sample``: commit the tentative words that end by then; the
        window and its draft stay. Before the utterance's language is settled nothing is
        final yet: the reading that settles it reads these words again."""
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
        early = self._release_held()
        update = self.policy.force_commit(end_of_utterance=not cut, until_sample=end_sample)
        committed = self._stamp(early + update.newly_committed, now_s)
        if cut:
            self._cut_sample = end_sample
        else:
            self._move_window(max(end_sample, self.policy.committed_end_sample))
            if self.task.language == AUTO:  # the next utterance may be in another language
                self.language = None
        return StepResult(committed, Tentative(""), end_sample, 0.0)

    def _settle_language(self, reading: Reading) -> None:
        """An auto language is fixed by the first reading of the utterance with
        ``LANGUAGE_LOCK_S`` of speech (the readings before it detect it each time) that is
        not rejected (a reading of no speech says nothing of its language)."""
        self._reading_language = reading.result.language
        speech = reading.window_end - reading.window_start - self.pre_roll_samples
        enough = speech >= seconds_to_samples(LANGUAGE_LOCK_S) and not reading.rejected
        if self.language is None and enough:
            self.language = reading.result.language

    def _stamp(self, words: tuple[Word, ...], now_s: float) -> tuple[CommittedWord, ...]:
        language = self.language or self._reading_language
        committed = tuple(
            CommittedWord(w.text, w.start_sample, w.end_sample, now_s, language) for w in words
        )
        self._context.extend(committed)
        return committed

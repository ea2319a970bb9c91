"""Decoding one 30 s window: logit filters, greedy/beam search, and the decode task.

Follows Whisper's decoding (openai/whisper decoding.py): the prompt (previous text) and the
forced prefix are prefilled in one decoder call, then one token per call from the KV cache.
A draft (the previous reading of a streaming window) is verified in the prefill and, after the
reading leaves it, wherever the reading picks it up again (``_DraftResync``).
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from streamer.config import DecodeOptions
from streamer.engine.session import DecoderSession
from streamer.engine.tokenizer import Tokenizer


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float32 (as CTranslate2 computes it), shape preserved."""
    logits = np.asarray(logits, dtype=np.float32)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def logsumexp(logits: np.ndarray) -> np.ndarray:
    """log(sum(exp(x))) over the last axis, in float32; -inf for a row that is all -inf."""
    logits = np.asarray(logits, dtype=np.float32)
    peak = logits.max(axis=-1, keepdims=True)
    safe = np.where(np.isfinite(peak), peak, 0.0)
    total = np.exp(logits - safe).sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):  # an all -inf row: log(0) = -inf, as it should be
        return (safe + np.log(total))[..., 0]


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression (Whisper's loop detector)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


# --- logit filters -------------------------------------------------------------------------------


class LogitFilter(Protocol):
    def apply(self, logits: np.ndarray, tokens: np.ndarray) -> None:
        """Mask ``logits`` (batch, n_vocab) in place given ``tokens`` (batch, length) so far."""


class SuppressBlank:
    """At the first sampled position, forbid a lone space and end-of-text."""

    def __init__(self, blank_tokens: list[int], sample_begin: int):
        self.blank_tokens, self.sample_begin = blank_tokens, sample_begin

    def apply(self, logits: np.ndarray, tokens: np.ndarray) -> None:
        if tokens.shape[1] == self.sample_begin:
            logits[:, self.blank_tokens] = -np.inf


class SuppressTokens:
    def __init__(self, suppress: list[int]):
        self.suppress = np.asarray(sorted(set(suppress)), dtype=np.int64)

    def apply(self, logits: np.ndarray, tokens: np.ndarray) -> None:
        logits[:, self.suppress] = -np.inf


class ApplyTimestampRules:
    """Whisper's timestamp grammar: timestamps come in pairs, never decrease, the first one is
    at most ``max_initial_timestamp_index``, and a timestamp is forced when the timestamps
    together are more likely than any single text token."""

    def __init__(
        self, tokenizer: Tokenizer, sample_begin: int, max_initial_timestamp_index: int | None
    ):
        self.eot = tokenizer.special.eot
        self.no_timestamps = tokenizer.special.no_timestamps
        self.timestamp_begin = tokenizer.special.timestamp_begin
        self.sample_begin = sample_begin
        self.max_initial_timestamp_index = max_initial_timestamp_index

    def apply(self, logits: np.ndarray, tokens: np.ndarray) -> None:
        ts_begin = self.timestamp_begin
        logits[:, self.no_timestamps] = -np.inf
        for row in range(tokens.shape[0]):
            sampled = tokens[row, self.sample_begin :]
            last_was_ts = len(sampled) >= 1 and sampled[-1] >= ts_begin
            penultimate_was_ts = len(sampled) < 2 or sampled[-2] >= ts_begin
            if last_was_ts:
                if penultimate_was_ts:  # a pair just closed: text must follow
                    logits[row, ts_begin:] = -np.inf
                else:  # an open segment: close it with a timestamp (or end)
                    logits[row, : self.eot] = -np.inf
            timestamps = sampled[sampled >= ts_begin]
            if len(timestamps) > 0:  # time never goes backwards
                logits[row, ts_begin : timestamps[-1]] = -np.inf
        if tokens.shape[1] == self.sample_begin:
            logits[:, :ts_begin] = -np.inf  # the first token is a timestamp
            if self.max_initial_timestamp_index is not None:
                logits[:, ts_begin + self.max_initial_timestamp_index + 1 :] = -np.inf
        # all timestamps together against the likeliest text token; both sides of Whisper's
        # log-softmax comparison carry the same normalizer, so it is compared on the logits
        timestamp_mass = logsumexp(logits[:, ts_begin:])
        best_text = logits[:, :ts_begin].max(axis=-1)
        logits[timestamp_mass > best_text, :ts_begin] = -np.inf


# --- searches ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    tokens: tuple[int, ...]  # sampled tokens, without the initial prompt, without end-of-text
    sum_logprob: float


class TokenSearch(Protocol):
    def step(
        self, tokens: np.ndarray, logits: np.ndarray, sum_logprobs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Extend ``tokens`` (rows, length) given filtered ``logits`` (rows, n_vocab).

        Returns (new tokens (rows, length + 1), source row of each new row, finished)."""


class GreedySearch:
    """Arg-max at temperature 0, sampling above it; one row per sample (best_of)."""

    def __init__(self, temperature: float, eot: int, rng: np.random.Generator):
        self.temperature, self.eot, self.rng = temperature, eot, rng

    def step(self, tokens, logits, sum_logprobs):
        if self.temperature == 0:
            next_tokens = logits.argmax(axis=-1)
        else:
            probs = np.exp(log_softmax(logits / self.temperature))
            next_tokens = np.array([self.rng.choice(len(p), p=p / p.sum()) for p in probs])
        rows = np.arange(len(tokens))
        running = tokens[:, -1] != self.eot
        # the chosen token's log-probability: no need to normalize the whole row
        logprobs = logits[rows, next_tokens].astype(np.float32) - logsumexp(logits)
        sum_logprobs += logprobs * running
        next_tokens = np.where(running, next_tokens, self.eot)
        tokens = np.concatenate([tokens, next_tokens[:, None]], axis=1)
        return tokens, rows, bool(np.all(tokens[:, -1] == self.eot))

    def candidates(self, tokens, sum_logprobs, sample_begin) -> list[Candidate]:
        return [
            Candidate(_strip_eot(row[sample_begin:], self.eot), float(score))
            for row, score in zip(tokens, sum_logprobs)
        ]


class BeamSearch:
    """Beam search with patience, as in Whisper's BeamSearchDecoder (one audio per task)."""

    def __init__(self, beam_size: int, eot: int, patience: float = 1.0):
        self.beam_size, self.eot = beam_size, eot
        self.max_candidates = max(1, round(beam_size * patience))
        self.finished: dict[tuple[int, ...], float] = {}

    def step(self, tokens, logits, sum_logprobs):
        logprobs = log_softmax(logits)
        scores: dict[tuple[int, ...], tuple[float, int]] = {}
        for row in range(tokens.shape[0]):
            best = np.argpartition(-logprobs[row], self.beam_size)[: self.beam_size + 1]
            for token in best:
                sequence = (*tokens[row].tolist(), int(token))
                score = float(sum_logprobs[row] + logprobs[row, token])
                if sequence not in scores or scores[sequence][0] < score:
                    scores[sequence] = (score, row)
        kept_tokens, kept_rows, kept_scores = [], [], []
        for sequence, (score, row) in sorted(scores.items(), key=lambda kv: -kv[1][0]):
            if sequence[-1] == self.eot:
                if len(self.finished) < self.max_candidates:
                    self.finished.setdefault(sequence[:-1], score)
            else:
                kept_tokens.append(sequence)
                kept_rows.append(row)
                kept_scores.append(score)
            if len(kept_tokens) == self.beam_size:
                break
        finished = len(self.finished) >= self.max_candidates or not kept_tokens
        if not kept_tokens:  # every beam ended; keep shapes valid for the caller
            kept_tokens, kept_rows, kept_scores = [(*tokens[0].tolist(), self.eot)], [0], [0.0]
        while len(kept_tokens) < len(tokens):  # keep the row count: repeat the weakest beam
            kept_tokens.append(kept_tokens[-1])
            kept_rows.append(kept_rows[-1])
            kept_scores.append(kept_scores[-1])
        sum_logprobs[:] = kept_scores
        return np.array(kept_tokens), np.array(kept_rows), finished

    def candidates(self, tokens, sum_logprobs, sample_begin) -> list[Candidate]:
        if not self.finished:  # nothing reached end-of-text: take the live beams
            for row, score in zip(tokens, sum_logprobs):
                self.finished[tuple(row.tolist())] = float(score)
        return [
            Candidate(_strip_eot(np.array(seq[sample_begin:]), self.eot), score)
            for seq, score in self.finished.items()
        ]


def _strip_eot(tokens: np.ndarray, eot: int) -> tuple[int, ...]:
    ends = np.nonzero(tokens == eot)[0]
    return tuple(int(t) for t in (tokens[: ends[0]] if len(ends) else tokens))


def rank(candidates: list[Candidate], length_penalty: float | None) -> Candidate:
    """Best candidate by length-normalised log probability (Whisper's MaximumLikelihoodRanker)."""

    def score(candidate: Candidate) -> float:
        length = len(candidate.tokens)
        penalty = length if length_penalty is None else ((5 + length) / 6) ** length_penalty
        return candidate.sum_logprob / max(penalty, 1e-9)

    return max(candidates, key=score)


# --- the task -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodingResult:
    tokens: tuple[int, ...]  # sampled tokens: text and timestamps, no end-of-text
    text: str
    avg_logprob: float
    sum_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float
    prefix_length: int = 0  # tokens of ``tokens`` that were forced (teacher-forced prefix)
    cross_attentions: tuple[np.ndarray, ...] | None = None  # alignment heads, (tokens, frames)
    draft_accepted: int = 0  # draft tokens kept without a decoder call of their own
    decoder_calls: int = 0  # prefill included: what the window cost
    prefill_tokens: int = 0  # tokens of the first call (start, prompt, prefix, draft)
    fed_tokens: int = 0  # tokens fed to the calls after it (one each, plus any guesses)
    # log-probability of each token of ``tokens`` (single-row searches only, else empty)
    token_logprobs: tuple[float, ...] = ()

    def truncated(self, length: int, text: str) -> DecodingResult:
        """The reading of its first ``length`` tokens (``text``: their text); the scores
        that depend on the tokens are recomputed, from the token log-probabilities."""
        logprobs = self.token_logprobs[:length]
        sum_logprob = float(sum(logprobs)) if logprobs else self.sum_logprob
        return replace(
            self,
            tokens=self.tokens[:length],
            text=text,
            avg_logprob=average_logprob(sum_logprob, length),
            sum_logprob=sum_logprob,
            compression_ratio=compression_ratio(text),
            token_logprobs=logprobs,
        )


def average_logprob(sum_logprob: float, n_tokens: int) -> float:
    """Whisper's average: end-of-text counts as a token."""
    return sum_logprob / (n_tokens + 1)


class DecodeTask:
    """(audio features, prompt, prefix, temperature) -> DecodingResult for one window."""

    def __init__(self, decoder: DecoderSession, tokenizer: Tokenizer, options: DecodeOptions):
        self.decoder, self.tokenizer, self.options = decoder, tokenizer, options
        special = tokenizer.special
        self.sot_sequence = [special.sot]
        if decoder.info.is_multilingual:  # language and task tokens follow <|startoftranscript|>
            language = tokenizer.encode(f"<|{options.language}|>") or []
            self.sot_sequence += [*language[:1], special.transcribe]
        self.suppress = self._suppressed_tokens()
        self.rng = np.random.default_rng(0)

    def _suppressed_tokens(self) -> list[int]:
        special = self.tokenizer.special
        suppress = [t for t in self.options.suppress_tokens if t >= 0]
        if -1 in self.options.suppress_tokens:
            suppress += list(self.decoder.info.suppress_tokens)
            suppress += list(self.tokenizer.non_speech_tokens)
        suppress += [
            special.transcribe,
            special.translate,
            special.sot,
            special.sot_prev,
            special.sot_lm,
            special.no_speech,
        ]
        return sorted(set(suppress))

    def initial_tokens(self, prompt: list[int], without_timestamps: bool) -> list[int]:
        special = self.tokenizer.special
        tokens = []
        if prompt:
            tokens = [special.sot_prev, *prompt[-(self.decoder.info.n_text_ctx // 2 - 1) :]]
        tokens += self.sot_sequence
        if without_timestamps:
            tokens.append(special.no_timestamps)
        return tokens

    def _filters(self, sample_begin: int, without_timestamps: bool) -> list[LogitFilter]:
        filters: list[LogitFilter] = []
        if self.options.suppress_blank:
            blank = [*self.tokenizer.encode(" "), self.tokenizer.special.eot]
            filters.append(SuppressBlank(blank, sample_begin))
        filters.append(SuppressTokens(self.suppress))
        if not without_timestamps:
            max_index = None
            if self.options.max_initial_timestamp:
                max_index = round(self.options.max_initial_timestamp / 0.02)
            filters.append(ApplyTimestampRules(self.tokenizer, sample_begin, max_index))
        return filters

    def run(
        self,
        audio_features: np.ndarray,
        prompt: list[int] | None = None,
        prefix: list[int] | None = None,
        temperature: float = 0.0,
        max_new_tokens: int | None = None,
        want_alignment: bool = False,
        draft: list[int] | None = None,
    ) -> DecodingResult:
        """Decode one window.

        ``prefix`` tokens are forced after the start sequence. ``draft`` tokens (greedy only;
        typically the previous hypothesis of a streaming window) are prefilled together with
        the prompt and prefix in the same call and accepted while they equal what greedy
        decoding would pick; decoding resumes at the first disagreement from the cache of the
        accepted tokens, so the result is exactly the greedy result, at a fraction of the
        calls."""
        options = self.options
        without_timestamps = options.without_timestamps
        initial = self.initial_tokens(prompt or [], without_timestamps)
        prefix = list(prefix or [])
        sample_begin = len(initial) + len(prefix)
        sot_index = initial.index(self.tokenizer.special.sot)
        n_ctx = self.decoder.info.n_text_ctx
        limit = n_ctx // 2 if max_new_tokens is None else max_new_tokens
        limit = min(limit, n_ctx - sample_begin - 1)
        search, n_rows = self._search(temperature)
        draft = list(draft or [])[: max(0, limit)] if n_rows == 1 and temperature == 0 else []
        filters = self._filters(sample_begin, without_timestamps)

        first = self.decoder.prefill(
            np.array([initial + prefix + draft]), audio_features, want_attention=want_alignment
        )
        no_speech_prob = float(
            np.exp(log_softmax(first.logits[0, sot_index])[self.tokenizer.special.no_speech])
        )
        tokens = np.array([initial + prefix], dtype=np.int64)
        forced = _forced_logprobs(first.logits[0], initial, prefix)
        sum_logprobs = np.full(1, float(forced.sum()))
        if n_rows == 1:
            search = _RecordingSearch(search, forced.tolist())
        tokens = self._accept_draft(first.logits[0], tokens, draft, filters, search, sum_logprobs)
        position = tokens.shape[1] - 1  # the logits row that predicts the next token
        cache = first.cache.truncate(tokens.shape[1]) if draft else first.cache
        cache = cache.reorder(np.zeros(n_rows, dtype=np.int64))
        tokens = np.repeat(tokens, n_rows, axis=0)
        sum_logprobs = np.repeat(sum_logprobs, n_rows)
        logits = np.repeat(first.logits[:, position], n_rows, axis=0)
        attention_steps = []
        if want_alignment:  # prefill rows that predicted prefix, accepted draft and next token
            attention_steps = [
                [a[:, :, len(initial) - 1 : position + 1] for a in first.cross_attentions]
            ]
        n_accepted = tokens.shape[1] - sample_begin
        resync = _DraftResync(
            draft, self.tokenizer.special.timestamp_begin, sample_begin, logits.shape[-1]
        )
        calls, fed_tokens = 1, 0  # the prefill
        while tokens.shape[1] - sample_begin < limit:
            for logit_filter in filters:
                logit_filter.apply(logits, tokens)
            tokens, source_rows, finished = search.step(tokens, logits, sum_logprobs)
            if finished or tokens.shape[1] >= n_ctx:
                break
            cache = cache.reorder(source_rows)
            room = min(limit - (tokens.shape[1] - sample_begin), n_ctx - 1 - tokens.shape[1])
            guess = resync.guess(tokens[0], room) if n_rows == 1 else []
            fed = tokens[:, -1:]
            if guess:
                fed = np.concatenate([fed, np.array([guess], dtype=fed.dtype)], axis=1)
            out = self.decoder.step(fed, cache, want_attention=want_alignment)
            calls, fed_tokens = calls + 1, fed_tokens + fed.shape[1]
            length = tokens.shape[1]
            if guess:  # rows 1.. verify the guess like a draft: keep what greedy agrees with
                offset = length - 1
                tokens = self._accept_draft(
                    out.logits[0], tokens, guess, filters, search, sum_logprobs, offset
                )
            n_new = tokens.shape[1] - length  # accepted guess tokens
            cache = out.cache.truncate(tokens.shape[1]) if guess else out.cache
            logits = out.logits[:, n_new].copy()
            if want_alignment:
                attention_steps.append([a[:, :, : n_new + 1] for a in out.cross_attentions])
        best = rank(search.candidates(tokens, sum_logprobs, len(initial)), options.length_penalty)
        text = self.tokenizer.decode(best.tokens)
        alignment = (
            _alignment_weights(attention_steps, self.decoder.info.alignment_heads)
            if want_alignment
            else None
        )
        token_logprobs = ()
        if isinstance(search, _RecordingSearch):
            token_logprobs = tuple(search.logprobs[: len(best.tokens)])
        return DecodingResult(
            tokens=best.tokens,
            text=text,
            avg_logprob=average_logprob(best.sum_logprob, len(best.tokens)),
            sum_logprob=best.sum_logprob,
            no_speech_prob=no_speech_prob,
            compression_ratio=compression_ratio(text),
            temperature=temperature,
            prefix_length=len(prefix),
            cross_attentions=alignment,
            draft_accepted=n_accepted,
            decoder_calls=calls,
            prefill_tokens=len(initial) + len(prefix) + len(draft),
            fed_tokens=fed_tokens,
            token_logprobs=token_logprobs,
        )

    def _search(self, temperature: float) -> tuple[GreedySearch | BeamSearch, int]:
        """The token search for this temperature, and how many rows it decodes at once."""
        eot = self.tokenizer.special.eot
        if temperature > 0:
            return GreedySearch(temperature, eot, self.rng), self.options.best_of
        if self.options.beam_size > 1:
            return BeamSearch(self.options.beam_size, eot, self.options.patience), (
                self.options.beam_size
            )
        return GreedySearch(0.0, eot, self.rng), 1

    @staticmethod
    def _accept_draft(
        logits: np.ndarray,
        tokens: np.ndarray,
        draft: list[int],
        filters: list[LogitFilter],
        search,
        sum_logprobs: np.ndarray,
        offset: int = 0,
    ) -> np.ndarray:
        """Extend ``tokens`` (1, n) with the draft tokens greedy decoding agrees with.

        ``logits`` (positions, n_vocab) start at position ``offset`` (0 for the prefill's):
        row ``n - 1 - offset + i`` predicts draft[i].
        """
        for token in draft:
            row = logits[tokens.shape[1] - 1 - offset][None].copy()
            for logit_filter in filters:
                logit_filter.apply(row, tokens)
            if int(row[0].argmax()) != token:
                break
            tokens, _, finished = search.step(tokens, row, sum_logprobs)
            if finished:  # a draft never contains end-of-text; keep the invariant anyway
                return tokens[:, :-1]
        return tokens


class _DraftResync:
    """Guesses the next tokens after the reading left the draft (speculative decoding with
    the previous reading as the draft model).

    Consecutive readings of a growing window mostly differ by small edits: a comma dropped,
    a timestamp moved by 40 ms, one word read differently, and then the same words again.
    After such an edit, greedy decoding would go on one token per decoder call through text
    the draft already holds. When the newest token (with the one before it) is found again
    in the draft near the same place, the draft's following tokens are the guess: they are
    fed with the new token in one call (8 tokens cost about 2.5 one-token calls here) and
    kept only as far as greedy decoding picks them, so the result is the greedy result."""

    MAX_GUESS = 8  # longer guesses cost more per call than they save (rows of 51k logits)
    NEAR = 4  # tokens: how far the match may be from the same position in the draft

    def __init__(
        self, draft: list[int], timestamp_begin: int | None, sample_begin: int, n_vocab: int
    ):
        self.draft = draft
        self.n_vocab = n_vocab
        self.timestamp_begin = timestamp_begin
        self.sample_begin = sample_begin
        self.shift = 0  # where the reading is in the draft, minus where it is in itself

    def _is_timestamp(self, token: int) -> bool:
        return self.timestamp_begin is not None and token >= self.timestamp_begin

    def _same(self, a: int, b: int) -> bool:
        return a == b or (self._is_timestamp(a) and self._is_timestamp(b))

    def guess(self, tokens: np.ndarray, room: int) -> list[int]:
        """The draft tokens expected after ``tokens`` (one row, initial tokens included)."""
        sampled = tokens[self.sample_begin :].tolist()
        if not self.draft or room <= 0 or len(sampled) < 2:
            return []
        here = len(sampled) - 1 + self.shift  # the newest token's place in the draft
        match = self._match(sampled, here)
        if match is None:
            return []
        self.shift = match - (len(sampled) - 1)
        guess = self.draft[match + 1 : match + 1 + min(room, self.MAX_GUESS)]
        moved = sampled[-1] - self.draft[match]
        if moved and self._is_timestamp(sampled[-1]):  # a moved pause moves its pair too
            guess = [t + moved if self._is_timestamp(t) else t for t in guess]
            guess = list(itertools.takewhile(lambda t: t < self.n_vocab, guess))
        return guess

    def _match(self, sampled: list[int], here: int) -> int | None:
        """The draft position nearest ``here`` whose token and predecessor equal the newest
        two (a single token matches too often: a lone comma or pause is no place)."""
        last, before = sampled[-1], sampled[-2]
        near = range(max(1, here - self.NEAR), min(len(self.draft) - 1, here + self.NEAR + 1))
        pairs = [
            j
            for j in near
            if self._same(self.draft[j], last) and self._same(self.draft[j - 1], before)
        ]
        return min(pairs, key=lambda j: abs(j - here)) if pairs else None


def _forced_logprobs(logits: np.ndarray, initial: list[int], prefix: list[int]) -> np.ndarray:
    """Log-probability of each forced prefix token under the prefill logits."""
    if not prefix:
        return np.zeros(0)
    positions = np.arange(len(initial) - 1, len(initial) + len(prefix) - 1)
    logprobs = log_softmax(logits[positions])
    return logprobs[np.arange(len(prefix)), prefix]


class _RecordingSearch:
    """A one-row search that also keeps the log-probability of each token it picks: a word's
    probability tells the commit policy how sure the model is of it."""

    def __init__(self, search: GreedySearch | BeamSearch, forced: list[float]):
        self.search = search
        self.logprobs = list(forced)

    def step(self, tokens, logits, sum_logprobs):
        before = float(sum_logprobs[0])
        stepped = self.search.step(tokens, logits, sum_logprobs)
        self.logprobs.append(float(sum_logprobs[0]) - before)
        return stepped

    def candidates(self, tokens, sum_logprobs, sample_begin) -> list[Candidate]:
        return self.search.candidates(tokens, sum_logprobs, sample_begin)


def _alignment_weights(steps: list, heads: tuple[tuple[int, int], ...]):
    """Cross-attention of the alignment heads, row k for the query that predicted sampled
    token k (row 0 of the batch): one (n_rows, n_frames) array per head."""
    if not steps or steps[0] is None or not heads:
        return None
    per_head = []
    for layer, head in heads:
        rows = [steps[0][layer][0, head]]
        rows += [step[layer][0, head] for step in steps[1:]]
        per_head.append(np.concatenate(rows, axis=0))
    return tuple(per_head)

"""Decoding one 30 s window: the decode task and its result.

Follows Whisper's decoding (openai/whisper decoding.py): the prompt (previous text) and the
forced prefix are prefilled in one decoder call, then one token per call from the KV cache.
A draft (the previous reading of a streaming window) is verified in the prefill and, after the
reading leaves it, wherever the reading picks it up again (``draft``). The logit filters are in
``logits``, the searches in ``search``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np

from streamer.config import DecodeOptions
from streamer.engine.draft import DraftResync, accept_draft
from streamer.engine.language import (
    LanguageGuess,
    check_language,
    detect_in_features,
    model_languages,
)
from streamer.engine.logits import (
    ApplyTimestampRules,
    LogitFilter,
    SuppressBlank,
    SuppressTokens,
    log_softmax,
)
from streamer.engine.search import BeamSearch, GreedySearch, RecordingSearch, rank
from streamer.engine.session import DecoderSession
from streamer.engine.tokenizer import Tokenizer
from streamer.errors import ConfigError
from streamer.languages import AUTO


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression (Whisper's loop detector)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


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
    language: str = "en"  # the language the window was read as (its sot sequence's)

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
        multilingual = decoder.info.is_multilingual
        if options.task == "translate" and not multilingual:
            raise ConfigError("--task translate needs a multilingual model, e.g. --model base")
        # a code, or auto: each window whose caller names no language is detected first
        self.language = check_language(options.language, tokenizer, multilingual)
        self.languages = model_languages(tokenizer, multilingual)
        special = tokenizer.special
        self.task_token = special.translate if options.task == "translate" else special.transcribe
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

    def detect(self, audio_features: np.ndarray) -> LanguageGuess:
        """The language of a window (one decoder call; none on an English-only model)."""
        return detect_in_features(self.decoder, self.tokenizer, audio_features)

    def sot_sequence(self, language: str) -> list[int]:
        """<|startoftranscript|>, then on a multilingual model the language and the task."""
        if not self.decoder.info.is_multilingual:
            return [self.tokenizer.special.sot]
        return [self.tokenizer.special.sot, self.languages[language], self.task_token]

    def initial_tokens(
        self, prompt: list[int], without_timestamps: bool, language: str = "en"
    ) -> list[int]:
        special = self.tokenizer.special
        tokens = []
        if prompt:
            tokens = [special.sot_prev, *prompt[-(self.decoder.info.n_text_ctx // 2 - 1) :]]
        tokens += self.sot_sequence(language)
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
        language: str | None = None,
    ) -> DecodingResult:
        """Decode one window.

        ``prefix`` tokens are forced after the start sequence. ``draft`` tokens (greedy only;
        typically the previous hypothesis of a streaming window) are prefilled together with
        the prompt and prefix in the same call and accepted while they equal what greedy
        decoding would pick; decoding resumes at the first disagreement from the cache of the
        accepted tokens, so the result is exactly the greedy result, at a fraction of the
        calls. Without cross-attention outputs in the decoder, no alignment comes back.
        ``language`` (a code) is what the window is read as; None: the options' language,
        detected from this window when that is auto (one more decoder call)."""
        want_alignment = want_alignment and self.decoder.has_cross_attentions
        options = self.options
        without_timestamps = options.without_timestamps
        language = language or self.language
        if language == AUTO:
            language = self.detect(audio_features).language
        initial = self.initial_tokens(prompt or [], without_timestamps, language)
        prefix = list(prefix or [])
        sample_begin = len(initial) + len(prefix)
        sot_index = initial.index(self.tokenizer.special.sot)
        n_ctx = self.decoder.info.n_text_ctx
        limit = n_ctx // 2 if max_new_tokens is None else max_new_tokens
        limit = min(limit, n_ctx - sample_begin - 1)
        search, n_rows = self._search(temperature)
        draft = list(draft or [])[: max(0, limit)] if n_rows == 1 and temperature == 0 else []
        filters = self._filters(sample_begin, without_timestamps)

        # no logits for the prompt's positions: nothing reads them (where the model can)
        first = self.decoder.prefill(
            np.array([initial + prefix + draft]),
            audio_features,
            want_attention=want_alignment,
            logits_from=sot_index,
        )
        rows = first.logits[0]  # rows[i] is position first.logits_from + i
        origin = first.logits_from
        no_speech_prob = float(
            np.exp(log_softmax(rows[sot_index - origin])[self.tokenizer.special.no_speech])
        )
        tokens = np.array([initial + prefix], dtype=np.int64)
        forced = _forced_logprobs(rows, initial, prefix, origin)
        sum_logprobs = np.full(1, float(forced.sum()))
        if n_rows == 1:
            search = RecordingSearch(search, forced.tolist())
        tokens = accept_draft(rows, tokens, draft, filters, search, sum_logprobs, origin)
        position = tokens.shape[1] - 1  # the position whose logits predict the next token
        cache = first.cache.truncate(tokens.shape[1]) if draft else first.cache
        cache = cache.reorder(np.zeros(n_rows, dtype=np.int64))
        tokens = np.repeat(tokens, n_rows, axis=0)
        sum_logprobs = np.repeat(sum_logprobs, n_rows)
        logits = np.repeat(first.logits[:, position - origin], n_rows, axis=0)
        attention_steps = []
        if want_alignment:  # prefill rows that predicted prefix, accepted draft and next token
            attention_steps = [
                [_rows(a, len(initial) - 1, position + 1) for a in first.cross_attentions]
            ]
        n_accepted = tokens.shape[1] - sample_begin
        resync = DraftResync(
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
                tokens = accept_draft(
                    out.logits[0], tokens, guess, filters, search, sum_logprobs, offset
                )
            n_new = tokens.shape[1] - length  # accepted guess tokens
            cache = out.cache.truncate(tokens.shape[1]) if guess else out.cache
            logits = out.logits[:, n_new].copy()
            if want_alignment:
                attention_steps.append([_rows(a, 0, n_new + 1) for a in out.cross_attentions])
        best = rank(search.candidates(tokens, sum_logprobs, len(initial)), options.length_penalty)
        text = self.tokenizer.decode(best.tokens)
        alignment = (
            _alignment_weights(attention_steps, self.decoder.info.alignment_heads)
            if want_alignment
            else None
        )
        token_logprobs = ()
        if isinstance(search, RecordingSearch):
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
            language=language,
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


def _forced_logprobs(
    logits: np.ndarray, initial: list[int], prefix: list[int], origin: int = 0
) -> np.ndarray:
    """Log-probability of each forced prefix token under the prefill logits (whose row 0 is
    position ``origin``)."""
    if not prefix:
        return np.zeros(0)
    positions = np.arange(len(initial) - 1, len(initial) + len(prefix) - 1)
    logprobs = log_softmax(logits[positions - origin])
    return logprobs[np.arange(len(prefix)), prefix]


def _rows(attention: np.ndarray | None, start: int, stop: int) -> np.ndarray | None:
    """Query rows ``start:stop`` of one layer's cross-attention (None: a layer not fetched)."""
    return None if attention is None else attention[:, :, start:stop]


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

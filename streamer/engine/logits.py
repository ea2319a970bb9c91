"""Logits: the float32 log-softmax arithmetic the searches share, and Whisper's logit filters
(timestamp grammar, suppression) applied before each token is chosen.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

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

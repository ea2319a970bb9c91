"""Draft verification: a draft (the previous reading of a streaming window) is kept as far
as greedy decoding agrees with it, in the prefill and, after the reading leaves it, wherever the
reading picks it up again (``DraftResync``); the result is always the greedy result.
"""

from __future__ import annotations

import itertools

import numpy as np

from streamer.engine.logits import LogitFilter
from streamer.engine.search import TokenSearch


def accept_draft(
    logits: np.ndarray,
    tokens: np.ndarray,
    draft: list[int],
    filters: list[LogitFilter],
    search: TokenSearch,
    sum_logprobs: np.ndarray,
    offset: int = 0,
) -> np.ndarray:
    """Extend ``tokens`` (1, n) with the draft tokens greedy decoding agrees with.

    ``logits`` (positions, n_vocab) start at position ``offset`` (for the prefill's, the
    ``logits_from`` it was given; for a step's, the position of its first token): row
    ``n - 1 - offset + i`` predicts draft[i].
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


class DraftResync:
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

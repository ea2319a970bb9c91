"""Token searches over filtered logits, as in Whisper's decoding: greedy (sampling above
temperature 0) and beam search with patience, and the ranking of what they found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from streamer.engine.logits import log_softmax, logsumexp


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


class RecordingSearch:
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

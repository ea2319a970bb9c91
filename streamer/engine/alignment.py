"""Word timestamps from the decoder's cross-attention (Whisper's alignment heads + DTW).

The alignment heads attend to the audio frame a token is spoken at. Their attention over the
sampled text tokens, normalised and median-filtered, is aligned to time by dynamic time
warping; word boundaries fall where the warping path jumps to the next token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from streamer.audio import N_SAMPLES_PER_TOKEN
from streamer.engine.tokenizer import Tokenizer
from streamer.types import Word

MEDIAN_FILTER_WIDTH = 7


def median_filter(x: np.ndarray, width: int = MEDIAN_FILTER_WIDTH) -> np.ndarray:
    """Median over a sliding window of the last axis, reflect-padded (odd ``width``)."""
    if x.shape[-1] < width:
        return x
    pad = width // 2
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)
    # the middle of a partial sort is the median of an odd window, at 2.5x np.median's speed
    return np.partition(windows, pad, axis=-1)[..., pad]


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Monotonic alignment of rows (tokens) to columns (frames) with minimal total cost.

    Each row is solved with vector ops: with ``S`` the prefix sum of the row's costs,
    ``D[i, j] = S[j] + min_{k <= j}(min(D[i-1, k-1], D[i-1, k]) - S[k-1])``.
    Returns (row indices, column indices) of the path.
    """
    n_rows, n_cols = cost.shape
    total = np.full((n_rows + 1, n_cols + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, n_rows + 1):
        above = total[i - 1]
        best_entry = np.minimum(above[:-1], above[1:])  # from diagonal or from above
        prefix = np.concatenate([[0.0], np.cumsum(cost[i - 1])])
        total[i, 1:] = prefix[1:] + np.minimum.accumulate(best_entry - prefix[:-1])
    # trace back: at each cell the cheapest of diagonal, up, left predecessors (ties in that
    # order); on Python floats, as a per-cell argmin costs more than the whole forward pass
    table = total.tolist()
    i, j = n_rows, n_cols
    rows, cols = [], []
    while i > 0 and j > 0:
        rows.append(i - 1)
        cols.append(j - 1)
        diagonal, up, left = table[i - 1][j - 1], table[i - 1][j], table[i][j - 1]
        if diagonal <= up and diagonal <= left:
            i, j = i - 1, j - 1
        elif up <= left:
            i -= 1
        else:
            j -= 1
    return np.array(rows[::-1]), np.array(cols[::-1])


def word_timestamps(
    tokenizer: Tokenizer,
    tokens: tuple[int, ...],
    attention: tuple[np.ndarray, ...],
    n_audio_frames: int,
    window_start_sample: int,
    token_logprobs: Sequence[float] = (),
) -> list[Word]:
    """Words of ``tokens`` (text and timestamp tokens of one decode) with absolute sample times.

    ``attention``: per alignment head, (len(tokens) + 1, n_frames) cross-attention, row k for
    the query that predicted token k (the last row predicted what followed). Timestamp tokens
    are skipped; ``n_audio_frames`` limits the frames to audio actually in the window.
    ``token_logprobs`` (one per token, if known) give each word its probability: the mean of
    its tokens' probabilities, as Whisper reports it.
    """
    eot = tokenizer.special.eot
    text_rows = [k for k, token in enumerate(tokens) if token < eot]
    if not text_rows or not attention:
        return []
    # one extra row after the last text token marks where the last word ends
    rows = [*text_rows, text_rows[-1] + 1]
    n_frames = max(1, min(n_audio_frames, attention[0].shape[-1]))
    weights = np.stack([head[rows, :n_frames] for head in attention])
    std = weights.std(axis=-2, keepdims=True) + 1e-6
    weights = (weights - weights.mean(axis=-2, keepdims=True)) / std
    matrix = median_filter(weights).mean(axis=0)
    token_index, frame_index = dtw(-matrix)
    jumps = np.diff(token_index, prepend=-1).astype(bool)
    jump_frames = frame_index[jumps]  # first frame of each row on the path

    text_tokens = [tokens[k] for k in text_rows]
    # words, or characters where the text is in a spaceless script (a token may spell
    # several characters: its time is shared out among them)
    words, boundaries = tokenizer.split_to_units(text_tokens)
    probabilities = _text_token_probabilities(token_logprobs, text_rows)
    result = []
    for w, text in enumerate(words):
        start = int(_frame_at(jump_frames, boundaries[w]))
        end = int(_frame_at(jump_frames, boundaries[w + 1]))
        end = max(end, start + 1)
        first, last = math.floor(boundaries[w]), math.ceil(boundaries[w + 1])
        result.append(
            Word(
                text=text,
                start_sample=window_start_sample + start * N_SAMPLES_PER_TOKEN,
                end_sample=window_start_sample + end * N_SAMPLES_PER_TOKEN,
                probability=_mean(probabilities[first:last]),
            )
        )
    return result


def _frame_at(jump_frames: np.ndarray, position: float) -> float:
    """The frame at a token position: a token's first frame, or between two tokens' first
    frames for a position inside a token (one of several characters it spells)."""
    position = min(position, len(jump_frames) - 1)
    index = int(position)
    fraction = position - index
    if not fraction:
        return jump_frames[index]
    following = jump_frames[min(index + 1, len(jump_frames) - 1)]
    return jump_frames[index] + fraction * (following - jump_frames[index])


def _text_token_probabilities(token_logprobs: Sequence[float], text_rows: list[int]) -> np.ndarray:
    """Probability of each text token, or an empty array when they are not known."""
    if len(token_logprobs) <= text_rows[-1]:
        return np.zeros(0)
    return np.exp(np.asarray(token_logprobs, dtype=np.float64)[text_rows])


def _mean(probabilities: np.ndarray) -> float:
    return float(probabilities.mean()) if len(probabilities) else 1.0


def interpolated_word_timestamps(
    tokenizer: Tokenizer,
    tokens: tuple[int, ...],
    n_audio_frames: int,
    window_start_sample: int,
    token_logprobs: Sequence[float] = (),
) -> list[Word]:
    """Words of ``tokens`` timed without attention (exports without cross-attention outputs):
    each run of text between two timestamp tokens spans those timestamps, and its words share
    that span in proportion to their length in characters. Coarser than ``word_timestamps``;
    text before the first timestamp starts at 0, text after the last ends with the audio."""
    ts_begin, eot = tokenizer.special.timestamp_begin, tokenizer.special.eot
    n_frames = max(1, n_audio_frames)
    probabilities = np.exp(np.asarray(token_logprobs, dtype=np.float64))
    result: list[Word] = []
    start, run = 0, []  # run: (index, token) of the text since the last timestamp
    for k, token in enumerate([*tokens, None]):
        if token is not None and token < eot:
            run.append((k, token))
            continue
        if token is not None and token < ts_begin:
            continue  # end of text and other specials carry no time
        end = n_frames if token is None else min(n_frames, token - ts_begin)
        if run:
            span = (start, max(end, start + 1))
            result += _spread(tokenizer, run, span, window_start_sample, probabilities)
        run = []
        if token is not None:
            start = min(token - ts_begin, n_frames - 1)
    return _in_order(result)


def _in_order(words: list[Word]) -> list[Word]:
    """Starts that never go back: a run squeezed into an empty segment (two equal timestamps)
    is placed one frame on, and the next segment must not start before it."""
    ordered: list[Word] = []
    for word in words:
        if ordered and word.start_sample < ordered[-1].start_sample:
            start = ordered[-1].start_sample
            end = max(word.end_sample, start + N_SAMPLES_PER_TOKEN)
            word = replace(word, start_sample=start, end_sample=end)
        ordered.append(word)
    return ordered


def _spread(
    tokenizer: Tokenizer,
    run: list[tuple[int, int]],
    span: tuple[int, int],
    window_start_sample: int,
    probabilities: np.ndarray,
) -> list[Word]:
    """The words of one timestamped run, spread over the frames ``span`` by character count."""
    start, end = span
    words, word_tokens = tokenizer.split_to_word_tokens([token for _, token in run])
    lengths = np.array([max(1, len(text.strip())) for text in words], dtype=np.float64)
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(lengths)]) / lengths.sum()
    indices = [k for k, _ in run]
    boundaries = np.concatenate([[0], np.cumsum([len(t) for t in word_tokens])])
    known = len(probabilities) > indices[-1]
    result = []
    for w, text in enumerate(words):
        rows = indices[boundaries[w] : boundaries[w + 1]]
        first, last = int(round(edges[w])), int(round(edges[w + 1]))
        result.append(
            Word(
                text=text,
                start_sample=window_start_sample + first * N_SAMPLES_PER_TOKEN,
                end_sample=window_start_sample + max(last, first + 1) * N_SAMPLES_PER_TOKEN,
                probability=_mean(probabilities[rows]) if known else 1.0,
            )
        )
    return result

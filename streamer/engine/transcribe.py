"""Offline transcription of whole files: 30 s windows that seek by timestamps, as Whisper does.

``Engine`` owns the sessions and the tokenizer (loaded once, warmed up once); ``transcribe``
walks a file window by window, with temperature fallback and previous-text conditioning.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from streamer.audio import (
    HOP_LENGTH,
    N_FFT,
    N_FRAMES,
    N_SAMPLES,
    SAMPLE_RATE,
    TIME_PRECISION_S,
)
from streamer.config import DecodeOptions, ModelConfig, OfflineConfig, VadConfig
from streamer.engine.decoding import DecodeTask, DecodingResult
from streamer.engine.frontend import window_features
from streamer.engine.model_info import read_model_info
from streamer.engine.models import resolve_model_dir
from streamer.engine.regions import speech_regions
from streamer.engine.runtime import choose_precision
from streamer.engine.script import is_spaceless, is_spaceless_language
from streamer.engine.session import DecoderSession, EncoderSession
from streamer.engine.tokenizer import Tokenizer
from streamer.languages import AUTO
from streamer.types import Segment, Transcript

INPUT_STRIDE = 2  # mel frames per encoder position
WARM_UP_PADDING_S = 3.0  # as stream.encoder_padding_s: the warm-up is a first streaming step


class Engine:
    """Encoder + decoder sessions + tokenizer for one model directory and precision."""

    def __init__(self, config: ModelConfig = ModelConfig(), log: Callable[[str], None] = print):
        directory = resolve_model_dir(config.path, log=log)
        precision = choose_precision(directory, config.precision, config.device)
        self.info = read_model_info(directory, precision)
        self.tokenizer = Tokenizer(directory)
        self.encoder = EncoderSession(self.info, config)
        self.decoder = DecoderSession(self.info, config)
        self.provider = self.encoder.provider
        if not self.encoder.variable_frames:
            log(
                f"{directory.name}: its encoder takes only full 30 s windows (3000 frames); "
                "every window is encoded at full length (slower live steps)"
            )

    def describe(self) -> str:
        return f"{self.info.describe()} on {self.provider}"

    def encode(
        self, audio: np.ndarray, n_frames: int | None = None, padding_s: float | None = None
    ) -> np.ndarray:
        """Audio (<= 30 s, 16 kHz float32) -> audio features (1, positions, state).

        ``n_frames``: mel frames of real audio (the rest of ``audio`` is right context).
        ``padding_s``: if given and the encoder accepts it, the input is the audio plus this
        much silence (rounded up to whole seconds) instead of a full 30 s window; Whisper
        needs a few seconds of padding after speech, not all of it (see docs/design.md)."""
        features = window_features(audio, n_frames, self.info.n_mels)
        if padding_s is not None and self.encoder.variable_frames:
            real = len(audio) // HOP_LENGTH if n_frames is None else n_frames
            total = int(np.ceil((real + padding_s * 100) / 100)) * 100
            features = features[:, :, : min(total, features.shape[-1])]
        return self.encoder(features)

    def task(self, options: DecodeOptions) -> DecodeTask:
        return DecodeTask(self.decoder, self.tokenizer, options)

    def warm_up(self) -> None:
        """One short decode so the first real window is not slowed by lazy initialisation.

        The input is a short streaming window (1 s and ``WARM_UP_PADDING_S`` of padding) where
        the encoder accepts one: a full 30 s window raised the peak RSS by 120 MB for nothing
        the first streaming step needs (community exports still take the full window)."""
        features = self.encode(np.zeros(SAMPLE_RATE, dtype=np.float32), padding_s=WARM_UP_PADDING_S)
        self.task(DecodeOptions()).run(features, max_new_tokens=2)


def decode_with_fallback(
    task: DecodeTask,
    features: np.ndarray,
    prompt: list[int],
    options: DecodeOptions,
    max_new_tokens: int,
    language: str | None = None,
) -> DecodingResult:
    """Decode at increasing temperatures until the result is neither repetitive
    (compression ratio) nor improbable (average log-probability), or is silence."""
    results = []
    for temperature in options.temperatures:
        result = task.run(
            features,
            prompt,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            language=language,
        )
        results.append(result)
        too_repetitive = (
            options.compression_ratio_threshold is not None
            and result.compression_ratio > options.compression_ratio_threshold
        )
        too_improbable = (
            options.log_prob_threshold is not None
            and result.avg_logprob < options.log_prob_threshold
        )
        is_silence = (
            options.no_speech_threshold is not None
            and result.no_speech_prob > options.no_speech_threshold
            and too_improbable
        )
        if is_silence or not (too_repetitive or too_improbable):
            return result
    # every temperature failed: prefer non-repetitive results, then the most probable
    threshold = options.compression_ratio_threshold
    acceptable = [r for r in results if threshold is None or r.compression_ratio <= threshold]
    return max(acceptable or results, key=lambda r: r.avg_logprob)


def tokens_per_second(options: DecodeOptions, text: str | None = None) -> float:
    """The token rate above which a reading is a loop: higher for a script without spaces,
    told by the reading's ``text`` where it is known, else by the language asked for."""
    spaceless = is_spaceless(text) if text is not None else is_spaceless_language(options.language)
    return options.max_tokens_per_second_spaceless if spaceless else options.max_tokens_per_second


def max_tokens_for(duration_s: float, options: DecodeOptions, n_text_ctx: int) -> int:
    """The token budget of a window: a loop guard proportional to the audio it holds."""
    budget = int(duration_s * tokens_per_second(options)) + 24
    if options.max_new_tokens is not None:
        budget = min(budget, options.max_new_tokens)
    return min(budget, n_text_ctx // 2)


class _WindowReader:
    """Random access to a block stream for windows that only move forward in time."""

    def __init__(self, blocks: Iterator[np.ndarray]):
        self.blocks = blocks
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0  # absolute sample index of buffer[0]
        self.exhausted = False

    def window(self, start: int, n_samples: int) -> np.ndarray:
        if start > self.buffer_start:  # drop audio before the window: memory stays flat
            drop = min(start - self.buffer_start, len(self.buffer))
            self.buffer = self.buffer[drop:]
            self.buffer_start += drop
        while not self.exhausted and self.buffer_start + len(self.buffer) < start + n_samples:
            block = next(self.blocks, None)
            if block is None:
                self.exhausted = True
            else:
                self.buffer = np.concatenate([self.buffer, block])
        offset = start - self.buffer_start
        return self.buffer[offset : offset + n_samples]


def split_segments(
    tokens: tuple[int, ...], timestamp_begin: int, offset_s: float, window_frames: int
) -> tuple[list[tuple[float, float, list[int]]], int]:
    """Split a window's tokens at timestamp pairs.

    Returns ([(start_s, end_s, tokens)], frames to advance the seek by)."""
    array = np.array(tokens, dtype=np.int64)
    is_ts = array >= timestamp_begin
    single_ending = len(array) >= 2 and not is_ts[-2] and is_ts[-1]
    consecutive = (np.nonzero(is_ts[:-1] & is_ts[1:])[0] + 1).tolist() if len(array) > 1 else []
    segments = []
    if consecutive:
        slices = consecutive + ([len(array)] if single_ending else [])
        last = 0
        for current in slices:
            piece = array[last:current]
            start = offset_s + float(piece[0] - timestamp_begin) * TIME_PRECISION_S
            end = offset_s + float(piece[-1] - timestamp_begin) * TIME_PRECISION_S
            segments.append((start, end, piece.tolist()))
            last = current
        if single_ending:
            advance = window_frames
        else:
            advance = int(array[last - 1] - timestamp_begin) * INPUT_STRIDE
        return segments, advance
    duration = window_frames * HOP_LENGTH / SAMPLE_RATE
    stamps = array[is_ts]
    if len(stamps) and stamps[-1] != timestamp_begin:
        duration = float(stamps[-1] - timestamp_begin) * TIME_PRECISION_S
    segments.append((offset_s, offset_s + duration, array.tolist()))
    return segments, window_frames


def transcribe_blocks(
    engine: Engine,
    blocks: Iterator[np.ndarray],
    total_samples: int,
    options: DecodeOptions,
    progress: Callable[[float], None] | None = None,
    encoder_padding_s: float | None = None,
) -> Iterator[Segment]:
    """Yield segments of the audio in ``blocks`` (16 kHz float32), window by window; a window
    shorter than 30 s is encoded with ``encoder_padding_s`` of silence after it (None: padded
    to 30 s, as Whisper does)."""
    task = engine.task(options)
    tokenizer = engine.tokenizer
    ts_begin = tokenizer.special.timestamp_begin
    reader = _WindowReader(blocks)
    content_frames = total_samples // HOP_LENGTH
    all_tokens: list[int] = []
    if options.initial_prompt:
        all_tokens += tokenizer.encode(" " + options.initial_prompt.strip())
    prompt_reset_since = 0
    seek = 0
    language = None if task.language == AUTO else task.language  # auto: the first window's
    while seek < content_frames:
        window_frames = min(N_FRAMES, content_frames - seek)
        # a little audio past the window gives its last frames their STFT context
        audio = reader.window(seek * HOP_LENGTH, window_frames * HOP_LENGTH + N_FFT)
        features = engine.encode(audio, window_frames, encoder_padding_s)
        prompt = all_tokens[prompt_reset_since:] if options.condition_on_previous_text else []
        if not options.condition_on_previous_text and options.initial_prompt and seek == 0:
            prompt = all_tokens
        duration_s = window_frames * HOP_LENGTH / SAMPLE_RATE
        if language is None:  # the audio's language, kept for the rest of it (as Whisper)
            language = task.detect(features).language
        result = decode_with_fallback(
            task,
            features,
            prompt,
            options,
            max_tokens_for(duration_s, options, engine.info.n_text_ctx),
            language,
        )
        offset_s = seek * HOP_LENGTH / SAMPLE_RATE
        if _is_silence(result, options):
            seek += window_frames
            if progress:
                progress(min(seek, content_frames) / max(content_frames, 1))
            continue
        pieces, advance = split_segments(result.tokens, ts_begin, offset_s, window_frames)
        for start_s, end_s, piece in pieces:
            text = tokenizer.decode(piece)
            # a lone "." or "..." is what the model says to faint noise, not speech
            if not any(c.isalnum() for c in text) or end_s == start_s:
                continue
            # the prompt of the next window is the tokens of the segments kept, as in
            # faster-whisper (a trailing lone timestamp is not part of any segment)
            all_tokens.extend(piece)
            yield Segment(
                start_s=round(start_s, 3),
                end_s=round(end_s, 3),
                text=text,
                tokens=tuple(piece),
                avg_logprob=result.avg_logprob,
                no_speech_prob=result.no_speech_prob,
                compression_ratio=result.compression_ratio,
                temperature=result.temperature,
                language=result.language,
            )
        seek += max(advance, 1)
        if not options.condition_on_previous_text or (
            result.temperature > options.prompt_reset_on_temperature
        ):
            prompt_reset_since = len(all_tokens)
        if progress:
            progress(min(seek, content_frames) / max(content_frames, 1))


def _is_silence(result: DecodingResult, options: DecodeOptions) -> bool:
    """Whisper's no-speech rule: likely silence, unless the text is confidently probable."""
    if options.no_speech_threshold is None or result.no_speech_prob <= options.no_speech_threshold:
        return False
    return not (
        options.log_prob_threshold is not None and result.avg_logprob > options.log_prob_threshold
    )


@dataclass(frozen=True)
class TimedTranscript:
    transcript: Transcript
    compute_s: float


def transcribe_speech(
    engine: Engine,
    blocks: Iterator[np.ndarray],
    total_samples: int,
    options: DecodeOptions,
    offline: OfflineConfig = OfflineConfig(),
    vad: VadConfig = VadConfig(),
    progress: Callable[[float], None] | None = None,
) -> Iterator[Segment]:
    """Segments of a block stream: region by region (``offline.vad_filter``), each read as a
    recording of its own (in its own language, when the language is auto), or the whole
    stream as Whisper reads it."""
    padding = offline.encoder_padding_s if offline.encoder_padding_s > 0 else None
    if not offline.vad_filter:
        yield from transcribe_blocks(engine, blocks, total_samples, options, progress, padding)
        return
    for region in speech_regions(blocks, vad, offline):
        offset_s = region.start_sample / SAMPLE_RATE
        end_s = region.end_sample / SAMPLE_RATE
        pieces = iter((region.samples,))
        for segment in transcribe_blocks(
            engine, pieces, len(region.samples), options, encoder_padding_s=padding
        ):
            yield replace(
                segment,
                start_s=round(min(segment.start_s + offset_s, end_s), 3),
                end_s=round(min(segment.end_s + offset_s, end_s), 3),
            )
        if progress:
            progress(min(region.end_sample / max(total_samples, 1), 1.0))
    if progress:
        progress(1.0)


def transcribe_audio(
    engine: Engine,
    audio: np.ndarray,
    options: DecodeOptions = DecodeOptions(),
    offline: OfflineConfig = OfflineConfig(),
    vad: VadConfig = VadConfig(),
) -> Transcript:
    """Transcribe an in-memory waveform (16 kHz float32 mono)."""
    block = N_SAMPLES

    def blocks() -> Iterator[np.ndarray]:
        for start in range(0, len(audio), block):
            yield audio[start : start + block]

    segments = tuple(transcribe_speech(engine, blocks(), len(audio), options, offline, vad))
    return Transcript(segments=segments, duration_s=len(audio) / SAMPLE_RATE)


def transcribe_file(
    engine: Engine,
    path,
    options: DecodeOptions = DecodeOptions(),
    progress: Callable[[float], None] | None = None,
    offline: OfflineConfig = OfflineConfig(),
    vad: VadConfig = VadConfig(),
) -> TimedTranscript:
    """Transcribe a file of any format/rate/channels, streamed from disk in blocks."""
    from streamer.audiofile import audio_info, stream_audio

    info = audio_info(path)
    total = int(round(info.duration_s * SAMPLE_RATE))
    started = time.perf_counter()
    blocks = stream_audio(path, N_SAMPLES)
    segments = tuple(transcribe_speech(engine, blocks, total, options, offline, vad, progress))
    transcript = Transcript(segments=segments, duration_s=info.duration_s)
    return TimedTranscript(transcript, time.perf_counter() - started)


def greedy(options: DecodeOptions) -> DecodeOptions:
    return replace(options, beam_size=1)

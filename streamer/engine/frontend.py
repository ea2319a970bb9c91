"""Whisper's log-mel spectrogram in numpy.

Same recipe as openai/whisper ``log_mel_spectrogram``: centred STFT with reflect padding, a
periodic Hann window of N_FFT, power spectrum without the last frame, Slaney-style mel filters,
log10 clamped to 1e-10, floor at (max - 8), then (x + 4) / 4.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from streamer.audio import HOP_LENGTH, N_FFT, N_FRAMES, N_MELS, SAMPLE_RATE

STFT_BLOCK_FRAMES = 256  # frames per FFT call in power_spectrum


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    freq = np.asarray(freq, dtype=np.float64)
    mels = freq / f_sp
    log_region = freq >= min_log_hz
    mels[log_region] = min_log_mel + np.log(freq[log_region] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mels = np.asarray(mels, dtype=np.float64)
    freqs = f_sp * mels
    log_region = mels >= min_log_mel
    freqs[log_region] = min_log_hz * np.exp(logstep * (mels[log_region] - min_log_mel))
    return freqs


@lru_cache(maxsize=4)
def mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE):
    """Slaney-normalised triangular filters, shape (n_mels, n_fft // 2 + 1), float32."""
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_points = _mel_to_hz(
        np.linspace(
            _hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([sample_rate / 2]))[0], n_mels + 2
        )
    )
    widths = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2 : n_mels + 2] - mel_points[:n_mels]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=1)
def _hann_window() -> np.ndarray:
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)  # periodic


def power_spectrum(audio: np.ndarray) -> np.ndarray:
    """|STFT|^2 of ``audio`` (float32, 16 kHz), shape (N_FFT // 2 + 1, len(audio) // HOP).

    Transformed ``STFT_BLOCK_FRAMES`` frames at a time into one array: the whole window at
    once held its windowed frames, the complex spectrum and three power-sized temporaries
    (14 MB for 30 s); each frame's transform does not depend on the others, so the values
    are the same to the bit."""
    padded = np.pad(audio.astype(np.float32), N_FFT // 2, mode="reflect")
    n_frames = 1 + (len(padded) - N_FFT) // HOP_LENGTH - 1  # Whisper drops the last frame
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, N_FFT), strides=(padded.strides[0] * HOP_LENGTH, padded.strides[0])
    )
    power = np.empty((n_frames, N_FFT // 2 + 1), dtype=np.float32)
    for start in range(0, n_frames, STFT_BLOCK_FRAMES):
        spectrum = np.fft.rfft(frames[start : start + STFT_BLOCK_FRAMES] * _hann_window(), axis=-1)
        power[start : start + len(spectrum)] = spectrum.real**2 + spectrum.imag**2
    return power.T


def log_mel_spectrogram(audio: np.ndarray, n_mels: int = N_MELS) -> np.ndarray:
    """Log-mel features of ``audio``: shape (n_mels, len(audio) // HOP_LENGTH), float32."""
    if len(audio) < N_FFT:
        audio = np.pad(audio, (0, N_FFT - len(audio)))
    mel = mel_filters(n_mels) @ power_spectrum(audio)
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def window_features(
    audio: np.ndarray, n_frames: int | None = None, n_mels: int = N_MELS
) -> np.ndarray:
    """Encoder input for one window of at most 30 s.

    The first ``n_frames`` frames (default: all whole frames of ``audio``, at most 3000) are
    real log-mel; the rest is padded with 0.0 *in mel space*, which is what Whisper's
    ``transcribe`` feeds the encoder (it slices the content frames and pads with zeros), so
    the model sees the padding it was trained on. ``audio`` may extend past the window to give
    the last frames their right-hand STFT context; without it, zeros are used.

    Returns (1, n_mels, N_FRAMES) float32, the ``input_features`` of the encoder.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if n_frames is None:
        n_frames = len(audio) // HOP_LENGTH
    n_frames = min(n_frames, N_FRAMES)
    needed = n_frames * HOP_LENGTH + N_FFT
    if len(audio) < needed:
        audio = np.concatenate([audio, np.zeros(needed - len(audio), dtype=np.float32)])
    mel = log_mel_spectrogram(audio[:needed], n_mels)[:, :n_frames]
    return pad_or_trim(mel)[None]


def pad_or_trim(mel: np.ndarray, n_frames: int = N_FRAMES) -> np.ndarray:
    """Pad (with the padding value of silence) or trim the frame axis to ``n_frames``."""
    if mel.shape[-1] >= n_frames:
        return mel[..., :n_frames]
    return np.pad(mel, [(0, 0)] * (mel.ndim - 1) + [(0, n_frames - mel.shape[-1])])

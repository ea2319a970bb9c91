"""Audio files -> float32 mono 16 kHz, whole (``read_audio``) or in blocks (``stream_audio``).

Any format libsndfile reads (wav, flac, ogg, mp3, aiff, ...), any sample rate, any channel count,
integer or float samples. Channels are down-mixed by their mean and the result is resampled with
soxr at high quality. ``stream_audio`` uses a streaming soxr resampler whose output is identical
to the one-shot resampler's, so a multi-hour file is never held in memory.

Every problem with the file becomes an ``AudioFileError`` with a one-line message; no soundfile
or libsndfile exception escapes. Float files may hold values beyond +-1; they are not clipped
here (the VAD clips its own int16 copy).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from streamer.audio import SAMPLE_RATE
from streamer.errors import AudioFileError

RESAMPLE_QUALITY = "HQ"  # soxr "high quality": 20-bit precision, flat to 0.91 of Nyquist
_SUPPORTED = "wav, flac, ogg, mp3, aiff, au, w64, caf"


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says, before any down-mixing or resampling."""

    sample_rate: int  # Hz, as stored
    channels: int
    frames: int  # samples per channel, as stored
    format: str  # libsndfile container name, e.g. "WAV", "FLAC", "MP3"
    subtype: str  # sample encoding, e.g. "PCM_16", "FLOAT", "VORBIS"

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Header facts of an audio file; raises ``AudioFileError`` for anything that is not audio."""
    with _open(path) as sound:
        return _info(sound)


def read_audio(path: str | os.PathLike[str]) -> np.ndarray:
    """The whole file as float32 mono at 16 kHz, shape (n,)."""
    with _open(path) as sound:
        info = _info(sound)
        frames = _read_frames(sound, path, info.frames)
    mono = _downmix(frames)
    if info.sample_rate == SAMPLE_RATE:
        return mono
    return soxr.resample(mono, info.sample_rate, SAMPLE_RATE, quality=RESAMPLE_QUALITY).astype(
        np.float32, copy=False
    )


def stream_audio(path: str | os.PathLike[str], block_samples: int) -> Iterator[np.ndarray]:
    """Float32 mono 16 kHz blocks of exactly ``block_samples`` (the last one may be shorter).

    The file is opened and checked now, so a bad file raises here rather than on the first
    ``next()``; it is closed when the iterator is exhausted or closed. The concatenated blocks
    equal ``read_audio(path)``.
    """
    if block_samples <= 0:
        raise ValueError(f"block_samples must be positive, got {block_samples}")
    sound = _open(path)
    try:
        info = _info(sound)
    except BaseException:
        sound.close()
        raise
    return _stream_blocks(sound, path, info, block_samples)


def _stream_blocks(
    sound: soundfile.SoundFile, path: str | os.PathLike[str], info: AudioInfo, block_samples: int
) -> Iterator[np.ndarray]:
    resampler = None
    if info.sample_rate != SAMPLE_RATE:
        resampler = soxr.ResampleStream(
            info.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality=RESAMPLE_QUALITY
        )
    # Read about one output block's worth of input at a time (at least 1 frame).
    read_frames = max(1, -(-block_samples * info.sample_rate // SAMPLE_RATE))
    pending = np.zeros(0, dtype=np.float32)
    try:
        while True:
            frames = _read_frames(sound, path, read_frames)
            last = len(frames) < read_frames
            mono = _downmix(frames)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            pending = np.concatenate([pending, mono]) if len(pending) else mono
            while len(pending) >= block_samples:
                yield pending[:block_samples].copy()
                pending = pending[block_samples:]
            if last:
                break
        if len(pending):
            yield pending.copy()
    finally:
        sound.close()


def _open(path: str | os.PathLike[str]) -> soundfile.SoundFile:
    """Open for reading after checking the cheap failure cases, so each gets its own message."""
    where = Path(path)
    try:
        mode = where.stat().st_mode
    except FileNotFoundError:
        raise AudioFileError(f"audio file not found: {where}; check the path") from None
    except PermissionError:
        raise AudioFileError(
            f"cannot reach {where}: permission denied on a parent folder; check its permissions"
        ) from None
    except OSError as error:
        raise AudioFileError(f"cannot read {where}: {error.strerror}") from None
    if stat.S_ISDIR(mode):
        raise AudioFileError(f"{where} is a folder, not an audio file; pass a file inside it")
    if not stat.S_ISREG(mode):
        raise AudioFileError(f"{where} is not a regular file; pass a wav/flac/ogg/mp3 file")
    try:
        with open(where, "rb") as handle:
            head = handle.read(1)
    except PermissionError:
        raise AudioFileError(
            f"cannot read {where}: permission denied; fix it with 'chmod +r {where}'"
        ) from None
    except OSError as error:
        raise AudioFileError(f"cannot read {where}: {error.strerror}") from None
    if not head:
        raise AudioFileError(f"{where} is empty (0 bytes); re-record or re-export it")
    try:
        sound = soundfile.SoundFile(where)
    except (soundfile.SoundFileError, RuntimeError) as error:
        raise AudioFileError(
            f"{where} is not a readable audio file ({_reason(error)}); "
            f"supported formats: {_SUPPORTED}"
        ) from None
    if sound.frames == 0 or sound.samplerate <= 0 or sound.channels <= 0:
        sound.close()
        raise AudioFileError(f"{where} contains no audio (0 samples); re-record or re-export it")
    return sound


def _info(sound: soundfile.SoundFile) -> AudioInfo:
    return AudioInfo(
        sample_rate=int(sound.samplerate),
        channels=int(sound.channels),
        frames=int(sound.frames),
        format=str(sound.format),
        subtype=str(sound.subtype),
    )


def _read_frames(sound: soundfile.SoundFile, path: str | os.PathLike[str], n: int) -> np.ndarray:
    """Up to ``n`` frames as float32 (frames, channels); decode errors become AudioFileError."""
    try:
        return sound.read(n, dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError) as error:
        raise AudioFileError(
            f"{path} is corrupt: decoding failed part way ({_reason(error)}); re-export it"
        ) from None


def _downmix(frames: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,) float32 by the mean of the channels."""
    if frames.shape[1] == 1:
        return np.ascontiguousarray(frames[:, 0])
    return frames.mean(axis=1, dtype=np.float32)


def _reason(error: Exception) -> str:
    """libsndfile's own words, without the path it repeats, on one line."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if ": " in text and text.startswith("Error opening"):
        text = text.split(": ", 1)[1]
    # libsndfile says this for any undecodable MP3, though the file exists and is regular.
    if "does not exist or is not a regular file" in text:
        text = "unrecognised or corrupt data"
    return text.rstrip(".").lower() or "unknown error"

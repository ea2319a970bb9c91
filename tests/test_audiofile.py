"""Audio files of every common shape -> float32 mono 16 kHz; a bad file -> one AudioFileError."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from audio_fixtures import tone

from streamer.audio import SAMPLE_RATE
from streamer.audiofile import audio_info, read_audio, stream_audio
from streamer.errors import AudioFileError

REPO = Path(__file__).resolve().parent.parent


def _chirp(seconds: float, rate: int) -> np.ndarray:
    """A 100 Hz -> 3 kHz sweep: every resampling error shows up somewhere along it."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * (100 * t + (2900 / (2 * seconds)) * t**2))).astype(np.float32)


def _snr_db(reference: np.ndarray, actual: np.ndarray) -> float:
    error = np.sum((reference - actual) ** 2) + 1e-20
    return float(10 * np.log10(np.sum(reference**2) / error))


FORMATS = [
    ("wav", "PCM_16", 16000, 1),
    ("wav", "PCM_U8", 8000, 1),
    ("wav", "PCM_24", 44100, 2),
    ("wav", "FLOAT", 96000, 2),
    ("wav", "PCM_16", 48000, 6),
    ("flac", "PCM_24", 22050, 8),
    ("flac", "PCM_16", 192000, 1),
    ("ogg", "VORBIS", 48000, 2),
    ("mp3", "MPEG_LAYER_III", 44100, 2),
]


@pytest.mark.parametrize(
    ("extension", "subtype", "rate", "channels"),
    FORMATS,
    ids=[f"{e}-{s}-{r}Hz-{c}ch" for e, s, r, c in FORMATS],
)
def test_read_audio_returns_the_same_signal_as_float32_mono_16k(
    tmp_path, extension, subtype, rate, channels
):
    """The sweep survives container, encoding, rate and channel count (down-mix by the mean)."""
    seconds = 1.5
    mono = _chirp(seconds, rate)
    # Channel k carries the sweep scaled by (k + 1) / channels: the mean is a known gain.
    gains = (np.arange(channels) + 1) / channels
    frames = mono[:, None] * gains[None, :]
    path = tmp_path / f"sweep.{extension}"
    soundfile.write(path, frames, rate, subtype=subtype)

    audio = read_audio(path)
    expected = soxr.resample(mono * gains.mean(), rate, SAMPLE_RATE, quality="HQ")
    info = audio_info(path)

    assert audio.dtype == np.float32 and audio.ndim == 1
    assert (info.sample_rate, info.channels) == (rate, channels)
    assert info.duration_s == pytest.approx(seconds, abs=0.06)
    assert len(audio) == pytest.approx(seconds * SAMPLE_RATE, abs=0.06 * SAMPLE_RATE)
    lossy = extension in ("ogg", "mp3")
    if lossy:
        # Codecs add delay and change the waveform; the level and length are what must hold.
        assert np.std(audio) == pytest.approx(np.std(expected), rel=0.15)
    else:
        min_snr = {"PCM_U8": 30, "PCM_16": 60}.get(subtype, 80)
        assert _snr_db(expected, audio[: len(expected)]) > min_snr


@pytest.mark.parametrize("block_samples", [1, 160, 480, 4096, 100_000], ids=str)
@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000], ids=lambda r: f"{r}Hz")
def test_stream_audio_matches_read_audio(tmp_path, rate, block_samples):
    """Streaming resampling gives the one-shot result, in blocks of exactly the asked size."""
    if block_samples == 1 and rate != 16000:
        block_samples = 7  # one-sample blocks at 44.1 kHz are correct but needlessly slow
    path = tmp_path / "sweep.wav"
    soundfile.write(path, np.stack([_chirp(2.0, rate), 0.3 * _chirp(2.0, rate)], axis=1), rate)
    blocks = list(stream_audio(path, block_samples))
    whole = read_audio(path)
    assert all(len(block) == block_samples for block in blocks[:-1])
    assert 0 < len(blocks[-1]) <= block_samples
    assert all(block.dtype == np.float32 for block in blocks)
    streamed = np.concatenate(blocks)
    assert len(streamed) == len(whole)
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def test_stream_audio_never_holds_the_whole_file(tmp_path):
    """A minute of 48 kHz audio (11 MB as float32) streams within a small, bounded memory."""
    path = tmp_path / "long.wav"
    with soundfile.SoundFile(path, "w", 48000, 1, "PCM_16") as sound:
        for _ in range(60):  # one minute in one-second writes
            sound.write(tone(1.0, 440, -20, rate=48000))
    tracemalloc.start()
    try:
        n_samples = sum(len(block) for block in stream_audio(path, 1600))
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n_samples == pytest.approx(60 * SAMPLE_RATE, abs=2)
    assert peak_bytes < 1_000_000, f"peak {peak_bytes / 1e6:.1f} MB while streaming"


def test_stream_audio_rejects_a_bad_file_before_iteration(tmp_path):
    with pytest.raises(AudioFileError, match="not found"):
        stream_audio(tmp_path / "missing.wav", 480)  # raises without next()


def test_stream_audio_rejects_a_non_positive_block(tmp_path):
    path = tmp_path / "a.wav"
    soundfile.write(path, tone(0.1), SAMPLE_RATE)
    with pytest.raises(ValueError, match="positive"):
        stream_audio(path, 0)


def _write_valid(path: Path) -> Path:
    soundfile.write(path, tone(0.5), SAMPLE_RATE, subtype="PCM_16")
    return path


def _bad_file(kind: str, folder: Path) -> Path:
    path = folder / f"{kind}.wav"
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated-header":
        path.write_bytes(_write_valid(folder / "valid.wav").read_bytes()[:20])
    elif kind == "header-only":
        path.write_bytes(_write_valid(folder / "valid.wav").read_bytes()[:44])
    elif kind == "random-bytes":
        path.write_bytes(np.random.default_rng(1).bytes(5000))
    elif kind == "random-mp3":
        path = folder / "random.mp3"
        path.write_bytes(np.random.default_rng(2).bytes(5000))
    elif kind == "text":
        path.write_text("this is not audio\n" * 100)
    elif kind == "zero-length-audio":
        soundfile.write(path, np.zeros((0, 2), np.float32), SAMPLE_RATE)
    return path


BAD = {
    "missing": "not found",
    "directory": "is a folder",
    "empty": r"is empty \(0 bytes\)",
    "truncated-header": "not a readable audio file",
    "header-only": "contains no audio",
    "random-bytes": "not a readable audio file",
    "random-mp3": "not a readable audio file",
    "text": "not a readable audio file",
    "zero-length-audio": "contains no audio",
}


@pytest.mark.parametrize("reader", ["read_audio", "audio_info", "stream_audio"])
@pytest.mark.parametrize("kind", list(BAD), ids=list(BAD))
def test_bad_files_raise_one_line_audio_file_errors(tmp_path, kind, reader):
    path = _bad_file(kind, tmp_path)
    call = {
        "read_audio": read_audio,
        "audio_info": audio_info,
        "stream_audio": lambda p: stream_audio(p, 480),
    }[reader]
    with pytest.raises(AudioFileError, match=BAD[kind]) as caught:
        call(path)
    message = str(caught.value)
    assert "\n" not in message and str(path.name) in message
    assert caught.value.__cause__ is None  # no libsndfile chain for the CLI to print


def test_unreadable_file_says_permission_denied(tmp_path):
    """Permissions are checked as a user who lacks them (root reads anything, so drop to nobody)."""
    folder = Path(tempfile.mkdtemp())
    try:
        folder.chmod(0o755)
        path = _write_valid(folder / "locked.wav")
        path.chmod(0o000)
        code = (
            "from streamer.audiofile import read_audio\n"
            "from streamer.errors import AudioFileError\n"
            f"try:\n    read_audio({str(path)!r})\n"
            "except AudioFileError as e:\n    print('ERR', e)\n"
        )
        command = [sys.executable, "-c", code]
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv: cannot test permissions")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
        assert result.stdout.startswith("ERR"), result.stderr
        assert "permission denied" in result.stdout and "chmod" in result.stdout
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_file_cut_short_mid_data_still_reads_what_is_there(tmp_path):
    """A recording whose writer crashed: the header promises more than the file holds."""
    full = _write_valid(tmp_path / "full.wav")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[: 44 + 2 * 4000])
    audio = read_audio(cut)
    np.testing.assert_allclose(audio, read_audio(full)[:4000], atol=1e-4)

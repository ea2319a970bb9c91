"""Test audio made on the spot: espeak-ng speech, tones, noise, silence, and a virtual microphone.

Nothing here downloads data. Tests that need a missing tool call ``require_espeak()`` or
``require_pulseaudio()`` (or use the ``needs_*`` markers) and are skipped with the reason.

    from audio_fixtures import speech_samples, silence, virtual_microphone

(tests/conftest.py puts tests/ on sys.path.)
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from streamer.audio import SAMPLE_RATE

ESPEAK = shutil.which("espeak-ng")
PULSEAUDIO = shutil.which("pulseaudio")
PACTL = shutil.which("pactl")
PAPLAY = shutil.which("paplay")

needs_espeak = pytest.mark.skipif(
    ESPEAK is None, reason="espeak-ng not installed (apt-get install espeak-ng)"
)
needs_pulseaudio = pytest.mark.skipif(
    not (PULSEAUDIO and PACTL and PAPLAY),
    reason="pulseaudio/pactl/paplay not installed (apt-get install pulseaudio pulseaudio-utils)",
)


def take_ctrl_c() -> None:
    """``preexec_fn`` for a streamer child that a test interrupts with SIGINT.

    A shell starts background jobs with SIGINT ignored and children inherit that, so under a
    test run started with ``&`` the child would never see the signal (Python installs its
    Ctrl-C handler only where SIGINT is at its default)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def require_espeak() -> None:
    """Skip the calling test when espeak-ng is missing."""
    if ESPEAK is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")


def require_pulseaudio() -> None:
    """Skip the calling test when the PulseAudio server or its tools are missing."""
    if not (PULSEAUDIO and PACTL and PAPLAY):
        pytest.skip("pulseaudio/pactl/paplay not installed (apt-get install pulseaudio-utils)")


# --- signals -----------------------------------------------------------------------------------


def db_to_amplitude(level_db: float) -> float:
    return float(10 ** (level_db / 20))


def rms_db(samples: np.ndarray) -> float:
    """RMS level in dBFS (full scale = 1.0); -120 for digital silence."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    return 20 * np.log10(max(rms, 1e-6))


def silence(seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Digital silence, float32, shape (round(seconds * rate),)."""
    return np.zeros(int(round(seconds * rate)), dtype=np.float32)


def tone(
    seconds: float, frequency_hz: float = 440.0, level_db: float = -12.0, rate: int = SAMPLE_RATE
) -> np.ndarray:
    """A sine whose RMS is ``level_db`` dBFS, float32."""
    t = np.arange(int(round(seconds * rate))) / rate
    peak = db_to_amplitude(level_db) * np.sqrt(2)
    return (peak * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


def white_noise(
    seconds: float, level_db: float = -40.0, seed: int = 0, rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Gaussian white noise whose RMS is ``level_db`` dBFS, float32, reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(int(round(seconds * rate)))
    return (noise * db_to_amplitude(level_db)).astype(np.float32)


# --- speech ------------------------------------------------------------------------------------


def espeak_wav(
    text: str, path: str | os.PathLike[str], rate: int = SAMPLE_RATE, voice: str = "en-us"
) -> Path:
    """Speak ``text`` with espeak-ng into a 16-bit mono wav at ``rate`` Hz; returns the path."""
    require_espeak()
    path = Path(path)
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "espeak.wav"
        subprocess.run(
            [ESPEAK, "-v", voice, "-w", str(raw), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        samples, native_rate = soundfile.read(raw, dtype="float32")
    if native_rate != rate:
        samples = soxr.resample(samples, native_rate, rate, quality="HQ")
    soundfile.write(path, np.clip(samples, -1, 1), rate, subtype="PCM_16")
    return path


@functools.lru_cache(maxsize=32)
def _speech_cached(text: str, voice: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        path = espeak_wav(text, Path(folder) / "speech.wav", SAMPLE_RATE, voice)
        samples, _ = soundfile.read(path, dtype="float32")
    samples.setflags(write=False)
    return samples


def speech_samples(text: str, voice: str = "en-us") -> np.ndarray:
    """espeak-ng speech of ``text``, float32 mono 16 kHz, shape (n,); cached, read-only."""
    require_espeak()
    return _speech_cached(text, voice)


def voiced_extent(
    samples: np.ndarray, threshold_db: float = -40.0, frame: int = 160
) -> tuple[int, int]:
    """[first, last) sample of the 10 ms frames louder than ``threshold_db`` (the words)."""
    n_frames = len(samples) // frame
    levels = [rms_db(samples[i * frame : (i + 1) * frame]) for i in range(n_frames)]
    loud = [i for i, level in enumerate(levels) if level > threshold_db]
    if not loud:
        return (0, 0)
    return (loud[0] * frame, (loud[-1] + 1) * frame)


# --- a microphone without a sound card -----------------------------------------------------------


def _pactl(*args: str, timeout: float = 10.0) -> str:
    result = subprocess.run(
        [PACTL, *args], check=True, capture_output=True, text=True, timeout=timeout
    )
    return result.stdout


def _server_running() -> bool:
    try:
        subprocess.run([PACTL, "info"], check=True, capture_output=True, timeout=5)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False
    return True


@dataclass
class VirtualMicrophone:
    """A PulseAudio null sink: what is played into ``sink`` is heard on ``monitor``."""

    sink: str  # sink name, for paplay --device
    monitor: str  # source name ("<sink>.monitor"), for PULSE_SOURCE or MicSource(device=...)
    module_id: int | None  # None while unloaded

    def play(self, wav_path: str | os.PathLike[str], wait: bool = True) -> subprocess.Popen:
        """Play a file into the sink with paplay; waits for the end unless ``wait=False``."""
        process = subprocess.Popen(
            [PAPLAY, f"--device={self.sink}", str(wav_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if wait:
            _, stderr = process.communicate(timeout=120)
            if process.returncode != 0:
                raise RuntimeError(f"paplay failed: {stderr.decode(errors='replace').strip()}")
        return process

    def unload(self) -> None:
        """Remove the sink and its monitor: to a capturing program, the device is gone."""
        if self.module_id is not None:
            _pactl("unload-module", str(self.module_id))
            self.module_id = None

    def load(self) -> None:
        """(Re)create the sink under the same name: the device comes back."""
        if self.module_id is None:
            output = _pactl(
                "load-module",
                "module-null-sink",
                f"sink_name={self.sink}",
                f"sink_properties=device.description={self.sink}",
            )
            self.module_id = int(output.strip())


@contextlib.contextmanager
def virtual_microphone() -> Iterator[VirtualMicrophone]:
    """Start PulseAudio if needed, load a uniquely named null sink, clean up both on exit.

    Only a server started here is stopped here, by its own pid; a server that was already
    running (another test, the desktop) is left alone, as are other programs' sinks.
    """
    require_pulseaudio()
    server = None if _server_running() else _start_server()
    mic = VirtualMicrophone(
        sink=f"streamer_test_{uuid.uuid4().hex[:8]}", monitor="", module_id=None
    )
    mic.monitor = f"{mic.sink}.monitor"
    try:
        mic.load()
        yield mic
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            mic.unload()
        if server is not None:
            _stop_server(server)


def _start_server() -> subprocess.Popen | None:
    """Run ``pulseaudio`` in the foreground as our child, so that we know its pid for sure.

    Returns None when another server won the race to start (a parallel test): that one is used
    and is not ours to stop.
    """
    # As root it warns "not intended to be run as root" and works; --disallow-exit and no idle
    # exit keep it up for the whole test even when no client is connected.
    server = subprocess.Popen(
        [
            PULSEAUDIO,
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--log-target=stderr",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if server.poll() is not None:
            if _server_running():
                return None
            pytest.skip(f"pulseaudio could not start (exit status {server.returncode})")
        if _server_running():
            return server
        time.sleep(0.1)
    _stop_server(server)
    pytest.skip("pulseaudio did not answer within 15 s")


def _stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of one reading of generated speech, after Whisper's English normalizer
    (an empty reading is all errors)."""
    from streamer.bench.wer import word_errors

    return word_errors([reference], [hypothesis]).wer

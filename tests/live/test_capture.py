"""FileSource pacing and clocks, the AudioSource contract, and MicSource's one-line errors.

The microphone path itself, with a real PulseAudio device, is in test_virtual_mic.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from audio_fixtures import tone

from streamer.audio import SAMPLE_RATE, ms_to_samples
from streamer.audiofile import read_audio
from streamer.errors import AudioDeviceError, AudioFileError
from streamer.live.capture import AudioSource
from streamer.live.filesource import FileSource
from streamer.live.mic import MicSource

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def stereo_wav(tmp_path) -> Path:
    """1.2 s of a 44.1 kHz stereo tone: the file has to be down-mixed and resampled."""
    path = tmp_path / "tone.wav"
    left, right = tone(1.2, 440, -12, rate=44100), tone(1.2, 660, -18, rate=44100)
    soundfile.write(path, np.stack([left, right], axis=1), 44100, subtype="PCM_16")
    return path


def _drain(source, timeout_s: float = 0.5, limit_s: float = 30.0) -> list:
    blocks, deadline = [], time.monotonic() + limit_s
    while not source.closed and time.monotonic() < deadline:
        block = source.read(timeout_s)
        if block is not None:
            blocks.append(block)
    return blocks


def test_both_sources_satisfy_the_audio_source_protocol(stereo_wav):
    assert isinstance(FileSource(stereo_wav), AudioSource)
    assert isinstance(MicSource("anything"), AudioSource)  # constructing opens nothing


def test_fast_file_source_plays_the_whole_file_on_a_virtual_clock(stereo_wav):
    source = FileSource(stereo_wav, pace="fast", block_ms=30)
    assert (source.native_rate, source.channels, source.name) == (44100, 2, "tone.wav")
    started = time.monotonic()
    with source:
        blocks = _drain(source)
    assert time.monotonic() - started < 1.0, "fast pace does not wait for the wall clock"
    assert source.closed and source.read(0.1) is None
    assert all(len(block.samples) == ms_to_samples(30) for block in blocks[:-1])
    for before, after in zip(blocks[:-1], blocks[1:], strict=True):
        assert after.start_sample == before.end_sample
    assert [block.captured_at_s for block in blocks] == [
        block.end_sample / SAMPLE_RATE for block in blocks
    ]
    np.testing.assert_allclose(
        np.concatenate([block.samples for block in blocks]), read_audio(stereo_wav), atol=1e-6
    )


def test_realtime_file_source_delivers_blocks_at_wall_clock_pace(stereo_wav):
    source = FileSource(stereo_wav, pace="realtime", block_ms=100)
    with source:
        started = time.monotonic()
        assert source.read(0.01) is None, "the first 100 ms block is not due after 10 ms"
        blocks = _drain(source, timeout_s=0.2)
        elapsed = time.monotonic() - started
    assert elapsed == pytest.approx(1.2, abs=0.2)
    for block in blocks:
        due = started + block.end_sample / SAMPLE_RATE
        assert block.captured_at_s == pytest.approx(due, abs=0.1)


def test_file_source_stop_ends_the_stream_early(stereo_wav):
    source = FileSource(stereo_wav, pace="fast")
    source.start()
    assert source.read(0.1) is not None
    source.stop()
    assert source.closed and source.read(0.1) is None
    source.stop()  # idempotent


def test_file_source_rejects_a_bad_file_at_construction(tmp_path):
    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(AudioFileError, match="not a readable audio file"):
        FileSource(tmp_path / "notes.wav")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"pace": "slow"}, "pace must be"), ({"block_ms": 0}, "block_ms")],
    ids=["pace", "block"],
)
def test_file_source_rejects_bad_arguments(stereo_wav, kwargs, message):
    with pytest.raises(ValueError, match=message):
        FileSource(stereo_wav, **kwargs)


def _run_python(code: str, extra_env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter (PortAudio state is per process); return stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(extra_env or {})}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_missing_portaudio_is_a_one_line_dependency_error_only_when_a_mic_is_used():
    """Simulates a system without libportaudio2: importing and file input still work."""
    code = (
        "import ctypes.util\n"
        "real = ctypes.util.find_library\n"
        "ctypes.util.find_library = lambda name: None if 'portaudio' in name else real(name)\n"
        "import streamer.live.mic\n"
        "from streamer.errors import DependencyError\n"
        "try:\n"
        "    streamer.live.mic.MicSource('').start()\n"
        "except DependencyError as error:\n"
        "    print('ERR', error)\n"
    )
    output = _run_python(code)
    assert output.startswith("ERR") and "\n" not in output
    assert "apt-get install libportaudio2" in output


def test_no_input_device_at_all_is_a_one_line_device_error():
    """No sound server and no card: PortAudio lists nothing (skipped where a card exists)."""
    code = (
        "import sounddevice\n"
        "if any(d['max_input_channels'] > 0 for d in sounddevice.query_devices()):\n"
        "    print('HAS-DEVICES')\n"
        "else:\n"
        "    from streamer.live.mic import MicSource\n"
        "    from streamer.errors import AudioDeviceError\n"
        "    try:\n"
        "        MicSource('').start()\n"
        "    except AudioDeviceError as error:\n"
        "        print('ERR', error)\n"
    )
    output = _run_python(code, {"PULSE_SERVER": "unix:/nonexistent/socket"})
    if output == "HAS-DEVICES":
        pytest.skip("this machine has a sound card, so 'no device at all' cannot be produced")
    assert output.startswith("ERR no audio input device found")
    assert "libasound2-plugins" in output


def _device_names() -> list[str]:
    try:
        from streamer.live.devices import list_input_devices

        return [device.name for device in list_input_devices()]
    except Exception as error:  # no PortAudio here: the device-name tests do not apply
        pytest.skip(f"no usable PortAudio: {error}")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no-such-microphone-xyz", "no input device matches 'no-such-microphone-xyz'"),
        ("987", "no input device with index 987"),
    ],
    ids=["name", "index"],
)
def test_unknown_devices_are_one_line_errors_listing_the_choices(spec, message):
    names = _device_names()
    if not names:  # no sound server running: that is the error then
        message = "no audio input device found"
    with pytest.raises(AudioDeviceError, match=message) as caught:
        MicSource(spec).start()
    text = str(caught.value)
    assert "\n" not in text
    assert all(repr(name) in text for name in names[:2])
    assert not names or "streamer devices" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"block_ms": 2}, "block_ms"), ({"queue_blocks": 0}, "queue_blocks")],
    ids=["block", "queue"],
)
def test_mic_source_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MicSource("", **kwargs)

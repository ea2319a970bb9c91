"""The microphone path end to end, as a user runs it: ``streamer live --device <monitor>``.

A PulseAudio null sink is the microphone (``virtual_microphone()``): espeak-ng speech is played
into it with paplay and ``streamer live`` records its monitor through PortAudio -> ALSA -> the
pulse plugin, runs the real model and prints committed lines. Unloading the sink's module while
recording is a real device loss; loading it again brings the device back.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from audio_fixtures import (
    needs_espeak,
    needs_pulseaudio,
    speech_samples,
    take_ctrl_c,
    virtual_microphone,
    wer,
)

from streamer.live.devices import list_input_devices, refresh_portaudio

ROOT = Path(__file__).resolve().parents[2]
FIRST = "Open the window and let the fresh air in."
SECOND = "Please call me tomorrow morning at nine."
LEAD_IN_S = 1.0  # silence before the words: a fresh monitor stream takes ~2 s to flow
SETTLE_S = 2.5  # after "listening on": the monitor's first block arrives

pytestmark = [needs_pulseaudio, needs_espeak, pytest.mark.slow]


class LiveProcess:
    """``streamer live ARGS`` with stdout and stderr collected line by line as they come."""

    def __init__(self, *args) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamer", "live", *map(str, args)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=take_ctrl_c,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._pump, args=(stream, lines), daemon=True)
            for stream, lines in (
                (self.process.stdout, self.stdout),
                (self.process.stderr, self.stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _pump(stream, lines: list[str]) -> None:
        for line in iter(stream.readline, ""):
            lines.append(line)

    def wait_line(self, lines: list[str], predicate, timeout_s: float, what: str) -> str:
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            fresh = lines[seen:]  # a snapshot: the reader thread keeps appending
            for line in fresh:
                if predicate(line):
                    return line
            seen += len(fresh)
            time.sleep(0.05)
        self.stop()
        pytest.fail(
            f"{what} not seen within {timeout_s} s; stdout={self.stdout} stderr={self.stderr}"
        )

    def finish(self, sig=signal.SIGINT, timeout_s: float = 20) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout_s)
        for reader in self._readers:
            reader.join(5)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="module")
def mic():
    with virtual_microphone() as virtual:
        refresh_portaudio()
        if not any(device.pulse_source == virtual.monitor for device in list_input_devices()):
            pytest.skip("PortAudio has no 'pulse' device (apt-get install libasound2-plugins)")
        yield virtual


def _played_file(path: Path, sentence: str) -> Path:
    """espeak speech after a second of silence, 44.1 kHz stereo (PulseAudio's native rate)."""
    audio = np.concatenate([np.zeros(int(16000 * LEAD_IN_S), np.float32), speech_samples(sentence)])
    stereo = np.repeat(soxr.resample(audio, 16000, 44100)[:, None], 2, axis=1)
    soundfile.write(path, stereo, 44100, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def played(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("played")
    return {
        sentence: _played_file(folder / f"sentence{number}.wav", sentence)
        for number, sentence in enumerate((FIRST, SECOND))
    }


def _transcript_text(folder: Path) -> str:
    (jsonl,) = folder.glob("*.jsonl")
    return "".join(json.loads(line)["text"] for line in jsonl.read_text().splitlines())


def _start(mic, transcript: Path) -> LiveProcess:
    live = LiveProcess("--device", mic.monitor, "--plain", "--transcript", transcript)
    live.wait_line(live.stderr, lambda line: "listening on" in line, 60, "the model loading")
    time.sleep(SETTLE_S)
    assert live.process.poll() is None, live.stderr
    return live


def test_spoken_sentence_is_transcribed_from_the_microphone(mic, played, tmp_path, model_dir):
    live = _start(mic, tmp_path / "transcript")
    try:
        mic.play(played[FIRST])
        played_at = time.monotonic()
        line = live.wait_line(live.stdout, lambda line: line.strip(), 20, "a committed line")
        print(f"line {time.monotonic() - played_at:.2f} s after paplay returned: {line!r}")
        assert wer(FIRST, line) < 0.4, line
        assert live.finish(signal.SIGINT) == 0, live.stderr
    finally:
        live.stop()
    assert not any("Traceback" in line for line in live.stderr), live.stderr
    assert "".join(live.stdout).split() == _transcript_text(tmp_path / "transcript").split()


def test_plain_mode_names_the_device_it_records(mic, tmp_path, model_dir):
    live = LiveProcess("--device", mic.monitor, "--plain")
    try:
        line = live.wait_line(live.stderr, lambda line: "listening on" in line, 60, "the banner")
        assert live.finish(signal.SIGINT) == 0
    finally:
        live.stop()
    assert line.rstrip().endswith(f"listening on {mic.monitor}"), line


def test_device_loss_keeps_the_transcript_and_says_so_in_one_line(mic, played, tmp_path, model_dir):
    """Unplugging the microphone mid-session: no traceback, one line on stderr that names the
    device, and every caption so far is on stdout and in the transcript on disk."""
    transcript = tmp_path / "transcript"
    live = _start(mic, transcript)
    try:
        mic.play(played[FIRST])
        line = live.wait_line(live.stdout, lambda line: line.strip(), 20, "a committed line")
        assert wer(FIRST, line) < 0.4, line
        before = len(live.stderr)
        mic.unload()
        unplugged = time.monotonic()
        notice = live.wait_line(
            live.stderr, lambda line: mic.monitor in line, 10, "a notice about the lost device"
        )
        noticed_s = time.monotonic() - unplugged
        print(f"loss reported {noticed_s:.2f} s after the unload: {notice!r}")
        time.sleep(1.5)  # anything else it prints about the loss
        new_lines = [x for x in live.stderr[before:] if x.strip()]
        assert len(new_lines) == 1, new_lines
        assert noticed_s < 5, f"the loss was reported {noticed_s:.1f} s after it happened"
        assert "Traceback" not in notice
    finally:
        mic.load()
        live.stop()
    assert wer(FIRST, _transcript_text(transcript)) < 0.4
    assert "".join(live.stdout).split() == _transcript_text(transcript).split()


def test_device_loss_then_return_resumes_capture(mic, played, tmp_path, model_dir):
    """The microphone comes back: the same process carries on and transcribes what is said
    next; the loss and the return are each one line on stderr; Ctrl-C then exits 0."""
    transcript = tmp_path / "transcript"
    live = _start(mic, transcript)
    try:
        mic.play(played[FIRST])
        live.wait_line(live.stdout, lambda line: line.strip(), 20, "the first line")
        before = len(live.stderr)
        mic.unload()
        live.wait_line(live.stderr, lambda line: mic.monitor in line, 10, "the loss notice")
        time.sleep(3)
        assert live.process.poll() is None, f"exited on device loss: {live.stderr[before:]}"
        mic.load()
        live.wait_line(
            live.stderr, lambda line: "back" in line or "resumed" in line, 15, "the return notice"
        )
        time.sleep(SETTLE_S)
        mic.play(played[SECOND])
        second = live.wait_line(
            live.stdout, lambda line: wer(SECOND, line) < 0.4, 20, "the second sentence"
        )
        assert second
        assert live.finish(signal.SIGINT) == 0
        new_lines = [x for x in live.stderr[before:] if x.strip()]
        assert len(new_lines) == 2, new_lines  # lost, back
        assert not any("Traceback" in x for x in live.stderr)
    finally:
        if mic.module_id is None:
            mic.load()
        live.stop()
    text = _transcript_text(transcript)
    assert wer(f"{FIRST} {SECOND}", text) < 0.4, text

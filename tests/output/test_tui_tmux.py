"""The full-screen TUI in a real terminal: ``streamer live`` inside a detached tmux session.

What a person sees is read back with ``tmux capture-pane -p`` (plain text, no escape codes):
captions appear, the status bar names the input, the provider, the VAD state, lag and RTF,
on one row even at 80 columns; the layout follows a window resize; ``q`` quits with exit
status 0 and leaves the committed text on the normal screen. The tmux server runs on its own
socket (``tmux -L <unique>``) and only that server is killed afterwards.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile
from audio_fixtures import require_espeak, speech_samples

ROOT = Path(__file__).resolve().parents[2]
TMUX = shutil.which("tmux")
SENTENCES = [
    "Open the window and let the fresh air in.",
    "The train leaves the station at noon.",
]
SPEECH, SILENCE = "\u25cf speech", "\u25cb silence"  # the status bar's VAD field
TRAILING_SILENCE_S = 40.0  # the file outlasts the test: only `q` ends the run

pytestmark = [
    pytest.mark.skipif(TMUX is None, reason="tmux not installed (apt-get install tmux)"),
    pytest.mark.slow,
]


class Tmux:
    """One detached tmux server on a private socket, one session ``main``."""

    def __init__(self) -> None:
        self.socket = f"streamer-test-{uuid.uuid4().hex[:10]}"

    def __call__(self, *args: str) -> str:
        result = subprocess.run(
            [TMUX, "-L", self.socket, *args], capture_output=True, text=True, timeout=20
        )
        if result.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def start(self, command: str, width: int, height: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX")}
        subprocess.run(
            [
                TMUX,
                "-L",
                self.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "main",
                "-x",
                str(width),
                "-y",
                str(height),
                command,
            ],
            check=True,
            env=env,
            timeout=20,
        )

    def screen(self) -> list[str]:
        return self("capture-pane", "-p", "-t", "main").split("\n")[:-1]

    def size(self) -> tuple[int, int]:
        answer = self("display-message", "-p", "-t", "main", "#{pane_width} #{pane_height}")
        width, height = answer.split()
        return int(width), int(height)

    def kill(self) -> None:
        """Stop this server (and the streamer in it) and remove its socket file."""
        try:
            socket_path = self("display-message", "-p", "#{socket_path}").strip()
        except RuntimeError:
            return  # never started, or already gone
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, timeout=20)
        Path(socket_path).unlink(missing_ok=True)


@pytest.fixture
def tmux():
    server = Tmux()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def speech_file(tmp_path_factory) -> Path:
    require_espeak()
    gap = np.zeros(int(16000 * 1.5), np.float32)
    parts = [np.zeros(8000, np.float32)]
    for sentence in SENTENCES:
        parts += [speech_samples(sentence), gap]
    parts.append(np.zeros(int(16000 * TRAILING_SILENCE_S), np.float32))
    path = tmp_path_factory.mktemp("tui") / "talk.wav"
    soundfile.write(path, np.concatenate(parts), 16000)
    return path


def wait_for(tmux: Tmux, predicate, timeout_s: float, what: str) -> list[str]:
    """Poll the screen until ``predicate(rows)`` holds; fail with the last screen otherwise."""
    deadline = time.monotonic() + timeout_s
    rows: list[str] = []
    while time.monotonic() < deadline:
        rows = tmux.screen()
        if predicate(rows):
            return rows
        time.sleep(0.2)
    pytest.fail(f"{what} not seen within {timeout_s} s; screen:\n" + "\n".join(rows))


def status_text(rows: list[str]) -> str:
    """The status bar: the bottom row (it never wraps onto a second one)."""
    return rows[-1] if rows else ""


def laid_out(height: int):
    """A frame drawn for ``height`` rows: the status bar is on the bottom row."""
    return lambda rows: len(rows) == height and "RTF " in rows[-1]


def assert_layout(rows: list[str], width: int, height: int) -> None:
    """One frame that fits the window: ``height`` rows, none wider than ``width``, the status
    bar on the bottom row and present once (no leftovers of an older frame)."""
    assert len(rows) == height, rows
    assert all(len(row) <= width for row in rows)
    status = status_text(rows)
    assert "lag " in status and "RTF " in status, "\n".join(rows)
    screen = "\n".join(rows)
    assert screen.count("RTF ") == 1 and screen.count("lag ") == 1, screen
    assert_one_status_row(rows)
    # the captions sit above the status bar, the newest text kept
    assert "station" in screen or "window" in screen, screen


STATUS_WORDS = ("lag ", "RTF ", "commit ", "dropped ", "xruns ", " Hz", SPEECH, SILENCE)


def assert_one_status_row(rows: list[str]) -> None:
    """The status fields are all on the bottom row: none spill onto the row above it."""
    assert any(word in rows[-1] for word in STATUS_WORDS), "\n".join(rows)
    spilled = [row for row in rows[:-1] if "\u2502" in row or any(w in row for w in STATUS_WORDS)]
    assert not spilled, "\n".join(rows)


def live_command(speech_file: Path) -> str:
    command = " ".join(
        [
            shlex.quote(sys.executable),
            "-m",
            "streamer",
            "live",
            "--input",
            shlex.quote(str(speech_file)),
            "--pace",
            "realtime",
            "--model-device",
            "cpu",
        ]
    )
    return f"cd {shlex.quote(str(ROOT))} && {command}; echo EXIT=$?; sleep 120"


def test_tui_captions_status_resize_and_quit(tmux, speech_file, model_dir):
    tmux.start(live_command(speech_file), 100, 30)

    # captions appear while the file plays; the VAD state follows the speech
    vad_states = set()

    def shown(words: str):
        def predicate(rows: list[str]) -> bool:
            status = status_text(rows)
            vad_states.update(s for s in (SPEECH, SILENCE) if s in status)
            return words in "\n".join(rows[:-1])

        return predicate

    rows = wait_for(tmux, shown("fresh air"), 40, "the first caption")
    assert tmux.size() == (100, 30)
    assert_layout(rows, 100, 30)
    status = status_text(rows)
    assert "talk.wav" in status  # at 100 columns the rate may give way to the commit latency
    assert "CPU" in status
    assert re.search(r"lag \d+\.\d s", status) and re.search(r"RTF \d+\.\d\d", status), status
    assert SPEECH in status or SILENCE in status, status
    wait_for(tmux, shown("station"), 30, "the second caption")
    assert vad_states == {SPEECH, SILENCE}, "the VAD state never changed on the status bar"

    # a smaller window: the next frame is laid out for it
    tmux("resize-window", "-t", "main", "-x", "72", "-y", "18")
    assert tmux.size() == (72, 18)
    rows = wait_for(tmux, laid_out(18), 10, "a frame at 72x18")
    time.sleep(0.3)  # a few refreshes later it must still be right
    assert_layout(tmux.screen(), 72, 18)

    # and a larger one
    tmux("resize-window", "-t", "main", "-x", "120", "-y", "40")
    assert tmux.size() == (120, 40)
    rows = wait_for(tmux, laid_out(40), 10, "a frame at 120x40")
    time.sleep(0.3)
    rows = tmux.screen()
    assert_layout(rows, 120, 40)
    assert "talk.wav @ 16000 Hz" in status_text(rows)

    # q quits: exit status 0, and the transcript stays on the normal screen
    pressed = time.monotonic()
    tmux("send-keys", "-t", "main", "q")
    rows = wait_for(tmux, lambda rows: any(r.startswith("EXIT=") for r in rows), 20, "the exit")
    print(f"q -> shell prompt in {time.monotonic() - pressed:.2f} s")
    assert time.monotonic() - pressed < 12
    screen = "\n".join(rows)
    assert "EXIT=0" in screen, screen
    assert "RTF " not in screen, "the TUI frame was left behind on the normal screen"
    before_exit = screen.split("EXIT=")[0]
    assert "Open the window" in before_exit and "station" in before_exit, screen


def test_tui_status_bar_is_one_row_at_80_columns(tmux, speech_file, model_dir):
    """At 80 columns the status bar stays on one row: the least useful fields give way."""
    tmux.start(live_command(speech_file), 80, 24)
    rows = wait_for(tmux, lambda rows: "fresh air" in "\n".join(rows[:-1]), 40, "the first caption")
    assert tmux.size() == (80, 24)
    seen = set()
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # several frames, with the values changing
        rows = tmux.screen()
        assert len(rows) == 24 and all(len(row) <= 80 for row in rows), "\n".join(rows)
        assert_one_status_row(rows)
        status = status_text(rows)
        for field in ("lag ", "RTF ", "commit "):
            assert field in status, status  # the most useful fields survive at 80 columns
        assert SPEECH in status or SILENCE in status, status
        seen.add(status.rstrip())
        time.sleep(0.25)
    print("status bar at 80 columns:", *sorted(seen), sep="\n")
    tmux("send-keys", "-t", "main", "q")
    rows = wait_for(tmux, lambda rows: any(r.startswith("EXIT=") for r in rows), 20, "the exit")
    assert "EXIT=0" in "\n".join(rows)

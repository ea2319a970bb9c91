"""What happens when the run itself goes wrong: signals must flush, kill -9 must not lose a
caption that was shown, a reader going away stops plain output, and a slow decoder must never
stall capture. Real processes, the real model, real files; the overload test throttles the
real inference step with a sleep and nothing else. docs/reliability.md lists every case."""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

import pytest
import soundfile
from audio_fixtures import take_ctrl_c, wer
from reliability_fixtures import ROOT, SENTENCES, speech_file, words_of_jsonl

from streamer.config import load_config
from streamer.live.filesource import FileSource
from streamer.live.pipeline import Finished, Pipeline
from streamer.types import Committed

# --- signals ---------------------------------------------------------------------------------


class Streaming:
    """``streamer live`` with its stdout read in raw chunks as they come (partial lines too)."""

    def __init__(self, *args) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamer", "live", *map(str, args)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=take_ctrl_c,
        )
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while chunk := os.read(self.process.stdout.fileno(), 65536):
            self.chunks.append(chunk)

    @property
    def stdout(self) -> str:
        return b"".join(self.chunks).decode()

    def wait_words(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.stdout.split()) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill()
                pytest.fail(f"{count} words not printed in {timeout_s} s: {self.stdout!r}")
            time.sleep(0.01)

    def finish(self, sig: int, timeout_s: float = 15) -> tuple[int, str, float]:
        """Send ``sig``; returns (exit status, stderr, seconds to exit)."""
        sent = time.monotonic()
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout_s)
        finally:
            self.kill()
        elapsed = time.monotonic() - sent
        self.reader.join(5)
        return code, self.process.stderr.read().decode(), elapsed

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_flushes_everything(tmp_path, speech_wav, model_dir, sig):
    """Ctrl-C or SIGTERM mid-sentence: exit 0 at once, the tentative tail is committed, and
    stdout and the transcript hold the same words; SRT/VTT are written."""
    transcript = tmp_path / "transcript"
    live = Streaming(
        "--input", speech_wav, "--pace", "realtime", "--plain", "--transcript", transcript
    )
    live.wait_words(4, 60)  # the first sentence is still being spoken
    code, stderr, elapsed = live.finish(sig)
    assert code == 0, stderr
    assert elapsed < 5, f"took {elapsed:.1f} s to stop"
    assert "Traceback" not in stderr
    (jsonl,) = transcript.glob("*.jsonl")
    assert words_of_jsonl(jsonl) == live.stdout.split()
    assert live.stdout.endswith("\n")
    for extension in (".md", ".srt", ".vtt"):
        assert jsonl.with_suffix(extension).stat().st_size > 0
    cues = re.findall(r"(?m)^\d+\n\d\d:\d\d:\d\d,\d{3} --> ", jsonl.with_suffix(".srt").read_text())
    assert len(cues) == len(live.stdout.splitlines())


@pytest.mark.slow
@pytest.mark.parametrize("after_words", [1, 9], ids=["first-words", "second-sentence"])
def test_kill_9_loses_no_caption_that_was_shown(tmp_path, speech_wav, model_dir, after_words):
    """The meeting-mode guarantee: a word on the screen is already on disk (JSONL and
    Markdown, fsynced before the screen sink runs), whenever the process dies."""
    transcript = tmp_path / "transcript"
    live = Streaming(
        "--input", speech_wav, "--pace", "realtime", "--plain", "--transcript", transcript
    )
    live.wait_words(after_words, 60)
    code, _, _ = live.finish(signal.SIGKILL)
    assert code == -signal.SIGKILL
    shown = live.stdout.split()
    (jsonl,) = transcript.glob("*.jsonl")
    saved = words_of_jsonl(jsonl)
    assert shown and saved[: len(shown)] == shown, (shown, saved)
    markdown = re.sub(r"\[\d\d:\d\d:\d\d\]", " ", jsonl.with_suffix(".md").read_text())
    assert markdown.split()[3:] == saved  # after "# Transcript <stem>"


@pytest.mark.slow
def test_reader_going_away_stops_plain_output(tmp_path, model_dir):
    """``streamer live --plain | head -n 1``: once the reader has gone, streamer stops soon
    after its next write, quietly."""
    path = speech_file(tmp_path / "talk.wav", SENTENCES[:3], 1.2, tail_s=20.0)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamer",
            "live",
            "--input",
            path,
            "--pace",
            "realtime",
            "--plain",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        first = process.stdout.readline()
        assert first.strip(), "no first line"
        process.stdout.close()  # like `head -n 1` exiting
        closed = time.monotonic()
        try:
            process.wait(6)  # the second sentence is committed ~2.5 s after the first
        except subprocess.TimeoutExpired:
            pytest.fail("still running 6 s after its reader went away")
        assert time.monotonic() - closed < 6
        stderr = process.stderr.read().decode()
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


# --- overload --------------------------------------------------------------------------------

THROTTLE_S = 1.0  # added to every inference step while throttled
THROTTLED_UNTIL_S = 10.0  # wall seconds since start
OVERLOAD_SENTENCES = [
    "Please call me tomorrow morning at nine.",
    "We are going to the market to buy some fresh bread.",
    "Open the window and let the fresh air in.",
    "She sells sea shells by the sea shore.",
    "The train leaves the station at noon.",
    "I would like a cup of hot coffee please.",
]


@pytest.fixture(scope="module")
def overload_run(tmp_path_factory, engine):
    """20 s of speech at wall-clock pace through the real pipeline; for the first 10 s every
    inference step sleeps 1 s first (about 4x slower than real time on 2 cores).

    Records, from the caller's thread: (wall s, captured s, decoded s) ~10 times a second, and
    (arrival wall s, CommittedWord) for every commit."""
    path = speech_file(tmp_path_factory.mktemp("overload") / "twenty.wav", OVERLOAD_SENTENCES, 0.8)
    pipeline = Pipeline(FileSource(path, pace="realtime"), engine, load_config("captions"))
    decode = pipeline.transcriber.read
    throttled = threading.Event()
    throttled.set()

    def slow_read(*args, **kwargs):
        if throttled.is_set():
            time.sleep(THROTTLE_S)
        return decode(*args, **kwargs)

    pipeline.transcriber.read = slow_read
    samples, words = [], []
    finished_s = None
    started = time.monotonic()
    pipeline.start()
    try:
        while time.monotonic() - started < 60:
            event = pipeline.next_event(0.05)
            now = time.monotonic() - started
            if now > THROTTLED_UNTIL_S:
                throttled.clear()
            stats = pipeline.stats()
            samples.append((now, stats.captured_samples / 16000, stats.decoded_samples / 16000))
            if isinstance(event, Committed):
                words += [(now, word) for word in event.words]
            if isinstance(event, Finished):
                finished_s = now
                break
    finally:
        pipeline.stop()
    return {
        "duration_s": soundfile.info(path).duration,
        "finished_s": finished_s,
        "samples": samples,
        "words": words,
        "dropped_samples": pipeline.stats().dropped_samples,
        "alive": pipeline.alive_threads(),
    }


def _latencies(words, since_s: float = 0.0, until_s: float = 1e9) -> list[float]:
    """Arrival minus the end of the word in the audio, for words ending in [since, until)."""
    return [
        arrival - word.end_sample / 16000
        for arrival, word in words
        if since_s <= word.end_sample / 16000 < until_s
    ]


@pytest.mark.slow
def test_overload_capture_never_waits_for_inference(overload_run):
    run = overload_run
    behind = [now - captured for now, captured, _ in run["samples"] if captured > 0]
    print(
        f"capture behind wall clock: max {max(behind):.3f} s over {len(behind)} samples; "
        f"finished {run['finished_s']:.2f} s for {run['duration_s']:.2f} s of audio"
    )
    assert max(behind) < 0.5, f"capture fell {max(behind):.2f} s behind the wall clock"
    assert run["dropped_samples"] == 0
    assert run["finished_s"] is not None and run["alive"] == []
    assert run["finished_s"] < run["duration_s"] + 5, "the run did not finish soon after the file"


@pytest.mark.slow
def test_overload_is_felt_then_latency_recovers(overload_run):
    run = overload_run
    lag_throttled = [c - d for now, c, d in run["samples"] if 2 < now < THROTTLED_UNTIL_S]
    lag_after = [c - d for now, c, d in run["samples"] if now > THROTTLED_UNTIL_S + 3]
    during = _latencies(run["words"], until_s=THROTTLED_UNTIL_S - 1)
    after = _latencies(run["words"], since_s=THROTTLED_UNTIL_S + 3)
    print(
        f"lag max {max(lag_throttled):.2f} s throttled, "
        f"median {statistics.median(lag_after):.2f} s after; "
        f"commit latency median {statistics.median(during):.2f} s throttled "
        f"({len(during)} words), {statistics.median(after):.2f} s after ({len(after)} words), "
        f"max {max(after):.2f} s"
    )
    assert max(lag_throttled) > 1.0, "the throttle had no effect: nothing is measured"
    assert during and statistics.median(during) > 1.5
    assert after, "nothing was committed after the throttle was lifted"
    assert statistics.median(after) < 1.5, after
    assert statistics.median(after) < 0.6 * statistics.median(during), (during, after)
    assert statistics.median(lag_after) < 1.0, lag_after
    text = "".join(word.text for _, word in run["words"])
    # a sanity check of the text only (espeak speech, decoded in 1 s+ steps while throttled);
    # accuracy is measured by the benchmarks, recovery is what this test is about
    assert wer(" ".join(OVERLOAD_SENTENCES), text) < 0.5, text


@pytest.mark.slow
def test_emitted_at_is_when_the_word_was_emitted(overload_run):
    early = [arrival - word.emitted_at_s for arrival, word in overload_run["words"]]
    print(
        f"arrival - emitted_at_s: median {statistics.median(early):.2f} s, max {max(early):.2f} s"
    )
    assert max(early) < 0.3, f"words arrived up to {max(early):.2f} s after their emit time"

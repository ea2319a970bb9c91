"""What happens when things go wrong: bad input, bad models, signals, kill -9, overload.

Every bad input must end in one line on stderr that says what is wrong and what to do, a
non-zero exit status, and no traceback. Signals must flush; ``kill -9`` must not lose a caption
that was shown; a slow decoder must never stall capture. Real processes, the real model, real
files; the overload test throttles the real inference step with a sleep and nothing else.
docs/reliability.md lists every case with what was observed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from audio_fixtures import (
    needs_pulseaudio,
    require_espeak,
    speech_samples,
    take_ctrl_c,
    virtual_microphone,
)

from streamer.cli import build_parser
from streamer.config import load_config
from streamer.engine.models import DEFAULT_MODEL
from streamer.live.filesource import FileSource
from streamer.live.pipeline import Finished, Pipeline
from streamer.types import Committed

ROOT = Path(__file__).resolve().parent.parent
SENTENCES = [
    "Please call me tomorrow morning at nine.",
    "Open the window and let the fresh air in.",
    "The train leaves the station at noon.",
    "I would like a cup of hot coffee please.",
]
NO_SOUND_SERVER = {"PULSE_SERVER": "unix:/nonexistent/streamer-test-socket"}
INT8_ENCODER, INT8_DECODER = "encoder_model_quantized.onnx", "decoder_model_merged_quantized.onnx"


def streamer(*args, timeout: float = 120, env=None, prefix=()) -> subprocess.CompletedProcess:
    """``python -m streamer ARGS`` from the repository root, run to completion."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "streamer", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def wer(reference: str, hypothesis: str) -> float:
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    normalize = EnglishTextNormalizer()
    return jiwer.wer(normalize(reference), normalize(hypothesis) or "<empty>")


def known_options(parser: argparse.ArgumentParser | None = None) -> set[str]:
    """Every ``--option`` of every streamer command and subcommand."""
    parser = parser or build_parser()
    options = set()
    for action in parser._actions:
        options.update(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                options |= known_options(command)
    return options


def assert_one_line_error(result: subprocess.CompletedProcess, advice: str) -> str:
    """Non-zero exit, no traceback, exactly one non-empty stderr line, which matches ``advice``
    (what to do); any ``--option`` it recommends exists."""
    assert result.returncode != 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    (line,) = lines
    assert re.match(r"streamer( \w+)?: error: ", line), line
    assert re.search(advice, line, re.IGNORECASE), f"no advice /{advice}/ in: {line}"
    unknown = set(re.findall(r"--[a-z][a-z-]*", line)) - known_options()
    assert not unknown, f"the message recommends options that do not exist: {unknown}: {line}"
    return line


def words_of_jsonl(path: Path) -> list[str]:
    return "".join(json.loads(line)["text"] for line in path.read_text().splitlines()).split()


def _speech_file(path: Path, sentences: list[str], gap_s: float, tail_s: float = 0.0) -> Path:
    require_espeak()
    gap = np.zeros(int(16000 * gap_s), np.float32)
    parts = [np.zeros(8000, np.float32)]
    for sentence in sentences:
        parts += [speech_samples(sentence), gap]
    parts.append(np.zeros(int(16000 * tail_s), np.float32))
    soundfile.write(path, np.concatenate(parts), 16000)
    return path


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    """Four sentences with 1.2 s pauses (~14 s), 16 kHz mono."""
    return _speech_file(tmp_path_factory.mktemp("speech") / "four.wav", SENTENCES, 1.2)


# --- bad audio files -------------------------------------------------------------------------

BAD_FILE_ADVICE = {
    "missing": r"not found.*check the path",
    "empty": r"empty.*re-(record|export)",
    "header-only": r"no audio.*re-(record|export)",
    "truncated-header": r"not a readable audio file.*supported formats",
    "random-bytes": r"not a readable audio file.*supported formats",
    "directory": r"folder.*pass a file",
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, speech_wav) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    good = speech_wav.read_bytes()
    files = {case: folder / f"{case}.wav" for case in BAD_FILE_ADVICE}
    files["empty"].write_bytes(b"")
    files["header-only"].write_bytes(good[:44])  # a whole RIFF header that declares 0 frames
    files["truncated-header"].write_bytes(good[:20])
    files["random-bytes"].write_bytes(np.random.default_rng(7).bytes(30_000))
    files["directory"].mkdir()
    return files


@pytest.mark.parametrize("case", list(BAD_FILE_ADVICE))
def test_bad_audio_file_live(bad_files, model_dir, case):
    result = streamer("live", "--input", bad_files[case], "--plain")
    assert_one_line_error(result, BAD_FILE_ADVICE[case])


@pytest.mark.parametrize("case", ["missing", "random-bytes"])
def test_bad_audio_file_transcribe(bad_files, model_dir, case):
    result = streamer("transcribe", bad_files[case])
    assert_one_line_error(result, BAD_FILE_ADVICE[case])


@pytest.fixture
def unreadable(speech_wav):
    """A copy of the speech that cannot be read: as root it is opened as ``nobody`` (setpriv),
    otherwise it is chmod 000. Yields (path, command prefix, extra environment)."""
    folder = Path(tempfile.mkdtemp(prefix="streamer-unreadable-"))
    try:
        folder.chmod(0o755)  # nobody may reach the file, just not read it
        path = folder / "locked.wav"
        shutil.copy(speech_wav, path)
        path.chmod(0o000)
        if os.geteuid() != 0:
            yield path, (), {}
            return
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot drop privileges")
        home = folder / "home"  # a writable HOME, as a real user has one
        home.mkdir()
        os.chown(home, 65534, 65534)
        prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
        yield path, prefix, {"HOME": str(home)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_unreadable_audio_file(unreadable, model_dir):
    path, prefix, env = unreadable
    result = streamer("live", "--input", path, "--plain", prefix=prefix, env=env)
    assert_one_line_error(result, r"permission denied.*chmod")


@pytest.fixture(scope="module")
def cut_flac_run(tmp_path_factory, speech_wav, model_dir):
    """``live --pace fast`` on a FLAC cut at 80 % (sentences 1-3 are before the cut)."""
    folder = tmp_path_factory.mktemp("cut")
    audio, rate = soundfile.read(speech_wav, dtype="float32")
    whole = folder / "whole.flac"
    soundfile.write(whole, audio, rate)
    cut = folder / "cut.flac"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.8)])
    transcript = folder / "transcript"
    started = time.monotonic()
    result = streamer(
        "live", "--input", cut, "--pace", "fast", "--plain", "--transcript", transcript
    )
    return result, transcript, time.monotonic() - started


def test_file_corrupt_part_way_gives_one_error_line(cut_flac_run):
    result, _, _ = cut_flac_run
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and re.search(r"corrupt.*re-export", errors[0]), result.stderr


def test_file_corrupt_part_way_keeps_what_came_before(cut_flac_run):
    result, transcript, _ = cut_flac_run
    lines = result.stdout.splitlines()
    assert len(lines) >= 2, f"3 sentences precede the cut; stdout was {result.stdout!r}"
    assert wer(" ".join(SENTENCES[:2]), " ".join(lines[:2])) < 0.4, lines
    assert words_of_jsonl(next(transcript.glob("*.jsonl"))) == result.stdout.split()


# --- devices ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mic():
    with virtual_microphone() as virtual:
        yield virtual


@needs_pulseaudio
@pytest.mark.parametrize(
    ("device", "advice"),
    [
        ("nosuchdevice", r"no input device matches 'nosuchdevice'.*streamer devices"),
        ("99", r"no input device with index 99.*streamer devices"),
    ],
    ids=["unknown-name", "unknown-index"],
)
def test_unknown_device(mic, model_dir, device, advice):
    result = streamer("live", "--device", device, "--plain")
    line = assert_one_line_error(result, advice)
    assert mic.monitor in line, "the message lists the devices there are"


def test_no_sound_server_live(model_dir):
    result = streamer("live", "--plain", env=NO_SOUND_SERVER)
    assert_one_line_error(result, r"no audio input device.*(pactl|libasound2-plugins)")


def test_no_sound_server_devices():
    result = streamer("devices", env=NO_SOUND_SERVER)
    if "no audio input devices found" not in result.stdout + result.stderr:
        pytest.skip("this machine has input devices without a sound server")
    assert_one_line_error(result, r"(pactl|libasound2-plugins|PulseAudio)")


# --- configuration ---------------------------------------------------------------------------


CONFIG_CASES = [
    pytest.param(
        "[vad]\nfoo = 1\n",
        [],
        r"unknown config key 'vad.foo'.*valid keys.*hangover_ms",
        id="unknown-key",
    ),
    pytest.param(
        "[nosection]\nx = 1\n", [], r"unknown config key.*valid keys", id="unknown-section"
    ),
    pytest.param(
        '[stream]\nmin_step_ms = "fast"\n', [], r"min_step_ms must be an integer", id="wrong-type"
    ),
    pytest.param(
        '[vad]\naggressiveness = "high"\n',
        [],
        r"aggressiveness.*valid values: 0, 1, 2, 3",
        id="wrong-choice",
    ),
    pytest.param("[vad\nx =", [], r"not valid TOML.*line 1", id="not-toml"),
    pytest.param(None, ["--vad-aggressiveness", "9"], r"valid values: 0, 1, 2, 3", id="vad-9"),
    pytest.param(
        None, ["--min-step-ms", "5"], r"min_step_ms.*between 50 and 10000", id="out-of-range"
    ),
    pytest.param(
        None,
        ["--config", "/nonexistent/streamer.toml"],
        r"not found.*/nonexistent/streamer.toml",
        id="missing-config",
    ),
    pytest.param(
        None,
        ["--mode", "nosuchmode"],
        r"nosuchmode.*captions.*dictation.*meeting.*low-latency",
        id="unknown-mode",
    ),
]


@pytest.mark.parametrize(("toml", "flags", "advice"), CONFIG_CASES)
def test_bad_configuration(tmp_path, speech_wav, toml, flags, advice):
    args = ["live", "--input", speech_wav, "--plain", *flags]
    if toml:
        config = tmp_path / "bad.toml"
        config.write_text(toml)
        args += ["--config", config]
    started = time.monotonic()
    result = streamer(*args)
    assert_one_line_error(result, advice)
    assert result.returncode == 2, "configuration errors exit 2, like usage errors"
    assert time.monotonic() - started < 10, "a config error is found before the model loads"


def test_bad_transcribe_format():
    result = streamer("transcribe", "x.wav", "--format", "xml")
    assert_one_line_error(result, r"xml.*txt.*srt.*vtt.*jsonl")


# --- models ----------------------------------------------------------------------------------


def _model_copy(source: Path, target: Path, replace: dict[str, bytes | None]) -> Path:
    """``target`` holds symlinks to ``source``'s files, except those in ``replace``: written
    with the given bytes, or left out (None)."""
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.name in replace:
            if replace[path.name] is not None:
                (target / path.name).write_bytes(replace[path.name])
        else:
            (target / path.name).symlink_to(path.resolve())
    return target


def _flipped(data: bytes, start: int, length: int) -> bytes:
    """``data`` with ``length`` bytes from ``start`` inverted (size unchanged)."""
    flipped = bytes(b ^ 0xFF for b in data[start : start + length])
    return data[:start] + flipped + data[start + length :]


@pytest.fixture(scope="module")
def damaged_models(tmp_path_factory, model_dir) -> dict[str, Path]:
    import onnx

    root = tmp_path_factory.mktemp("models")
    # the encoder with its weights inside (as a community export has them), so that it loads
    # under the decoder's name without its own .onnx_data beside it
    embedded = onnx.load(model_dir / INT8_ENCODER).SerializeToString()
    encoder = (model_dir / INT8_ENCODER).read_bytes()
    decoder = (model_dir / INT8_DECODER).read_bytes()
    weights = (model_dir / f"{INT8_ENCODER}_data").read_bytes()
    return {
        "partial": _model_copy(
            model_dir, root / "partial", {INT8_DECODER: decoder[: len(decoder) // 3]}
        ),
        "corrupt": _model_copy(
            model_dir, root / "corrupt", {INT8_ENCODER: _flipped(encoder, len(encoder) // 2, 4096)}
        ),
        "wrong-signature": _model_copy(
            model_dir, root / "wrong-signature", {INT8_DECODER: embedded}
        ),
        "wrong-signature-no-manifest": _model_copy(
            model_dir,
            root / "wrong-signature-no-manifest",
            {INT8_DECODER: embedded, "manifest.json": None},
        ),
        "missing-file": _model_copy(model_dir, root / "missing-file", {INT8_ENCODER: None}),
        "corrupt-weights": _model_copy(
            model_dir,
            root / "corrupt-weights",
            {f"{INT8_ENCODER}_data": _flipped(weights, len(weights) // 2, 4096)},
        ),
    }


MODEL_CASES = [
    pytest.param("nonexistent", r"does not exist.*omit --model", id="nonexistent"),
    pytest.param(
        "partial", r"partial \(\d+ of \d+ bytes\).*streamer models build --force", id="partial"
    ),
    # the manifest's size check catches it first and calls it "partial"
    pytest.param(
        "wrong-signature", r"(partial|size|signature).*streamer models build", id="wrong-signature"
    ),
    pytest.param(
        "wrong-signature-no-manifest",
        r"does not have the Whisper signature.*models build",
        id="wrong-signature-no-manifest",
    ),
    pytest.param("missing-file", r"missing.*streamer models build", id="missing-file"),
    pytest.param(
        "corrupt",
        r"corrupt.*SHA256.*streamer models build --force",
        id="corrupt",
    ),
    pytest.param(
        "corrupt-weights",
        r"onnx_data is corrupt.*SHA256.*streamer models build --force",
        id="corrupt-weights",
    ),
]


@pytest.mark.parametrize(("case", "advice"), MODEL_CASES)
def test_bad_model_directory(damaged_models, speech_wav, case, advice):
    path = "/nonexistent/model" if case == "nonexistent" else damaged_models[case]
    result = streamer("transcribe", speech_wav, "--model", path)
    assert_one_line_error(result, advice)


def test_models_build_detects_a_corrupt_file(tmp_path, model_dir):
    """The build path hashes every file against the manifest and refuses a damaged one."""
    encoder = (model_dir / INT8_ENCODER).read_bytes()
    _model_copy(
        model_dir,
        tmp_path / DEFAULT_MODEL,
        {INT8_ENCODER: _flipped(encoder, len(encoder) // 2, 4096)},
    )
    result = streamer("models", "build", env={"STREAMER_MODELS": str(tmp_path)})
    line = assert_one_line_error(result, r"corrupt \(SHA256 mismatch\).*models build --force")
    assert INT8_ENCODER in line


def test_a_model_built_by_an_older_recipe_is_rebuilt(tmp_path, model_dir):
    """Files built by an earlier recipe (full-range int8 weights saturate on CPUs without
    VNNI) are rebuilt on the next build instead of being trusted for their intact hashes."""
    from streamer.engine.export import RECIPE

    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest.pop("recipe", None)
    old = _model_copy(
        model_dir, tmp_path / DEFAULT_MODEL, {"manifest.json": json.dumps(manifest).encode()}
    )
    result = streamer("models", "build", env={"STREAMER_MODELS": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "older recipe" in result.stdout + result.stderr
    rebuilt = json.loads((old / "manifest.json").read_text())
    assert rebuilt["recipe"] == RECIPE
    assert not (old / INT8_ENCODER).is_symlink()  # a new file, not the old one


# --- outputs ---------------------------------------------------------------------------------


@pytest.fixture
def regular_file(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder\n")
    return path


OUTPUT_CASES = [
    pytest.param(
        "live",
        "--transcript",
        "sub",
        r"cannot create transcript directory .*: Not a directory; .*writable",
        id="transcript-dir",
    ),
    pytest.param(
        "live",
        "--emit-log",
        "sub/words.jsonl",
        r"cannot open emit log .*: Not a directory; .*writable",
        id="emit-log",
    ),
    pytest.param(
        "transcribe",
        "--output",
        "sub",
        r"cannot create output directory .*: Not a directory; .*(choose|writable|pass)",
        id="transcribe-output",
    ),
]


@pytest.mark.parametrize(("command", "option", "under", "advice"), OUTPUT_CASES)
def test_output_under_a_regular_file(
    regular_file, speech_wav, model_dir, command, option, under, advice
):
    if command == "live":
        args = ["live", "--input", speech_wav, "--pace", "fast", "--plain"]
    else:
        args = ["transcribe", speech_wav]
    result = streamer(*args, option, regular_file / under)
    assert_one_line_error(result, advice)
    assert result.stdout == "", "nothing is transcribed when the output cannot be written"


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
    path = _speech_file(tmp_path / "talk.wav", SENTENCES[:3], 1.2, tail_s=20.0)
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
    path = _speech_file(tmp_path_factory.mktemp("overload") / "twenty.wav", OVERLOAD_SENTENCES, 0.8)
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

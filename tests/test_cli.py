"""The command line as a user runs it: real processes, the real model, espeak-ng speech.

``streamer transcribe`` on files of every common container, rate, channel count and sample
encoding; ``streamer models list``, ``streamer devices`` and ``--help`` (with an example under
every command); ``streamer live --plain`` piped into another program, with the word-level
``--emit-log``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from audio_fixtures import needs_pulseaudio, require_espeak, speech_samples, virtual_microphone, wer

from streamer import cli

ROOT = Path(__file__).resolve().parent.parent
SENTENCE = "Open the window and let the fresh air in."
UTTERANCES = [
    "Please call me tomorrow morning at nine.",
    "Open the window and let the fresh air in.",
    "The train leaves the station at noon.",
]
SRT_TIME = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"
VTT_TIME = r"(\d\d):(\d\d):(\d\d)\.(\d\d\d)"

# name, container, rate (Hz), channels, subtype: every rate, channel count and encoding asked of
# the reader at least once, in each container that can hold it
FILE_MATRIX = [
    ("m01", "wav", 8000, 1, "PCM_U8"),
    ("m02", "wav", 22050, 2, "PCM_24"),
    ("m03", "wav", 44100, 6, "FLOAT"),
    ("m04", "wav", 96000, 1, "PCM_24"),
    ("m05", "wav", 48000, 2, "PCM_16"),
    ("m06", "flac", 8000, 1, "PCM_S8"),
    ("m07", "flac", 48000, 2, "PCM_24"),
    ("m08", "flac", 96000, 6, "PCM_16"),
    ("m09", "ogg", 22050, 1, "VORBIS"),
    ("m10", "ogg", 44100, 2, "VORBIS"),
    ("m11", "ogg", 48000, 6, "VORBIS"),
]


def streamer(*args, timeout: float = 180, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m streamer ARGS`` from the repository root; stdout/stderr as text."""
    return subprocess.run(
        [sys.executable, "-m", "streamer", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        **kwargs,
    )


def write_audio(path: Path, mono_16k: np.ndarray, rate: int, channels: int, subtype: str) -> Path:
    """Resample 16 kHz mono speech to ``rate`` and spread it over ``channels``.

    Channel 0 always carries the speech; the others carry it at -6 dB, or (from the third on)
    faint noise, so a down-mix that drops or mangles channels shows in the transcript.
    """
    audio = soxr.resample(mono_16k, 16000, rate, quality="HQ") if rate != 16000 else mono_16k
    audio = 0.7 * audio / max(1e-6, float(np.max(np.abs(audio))))
    columns = [audio]
    rng = np.random.default_rng(channels)
    for index in range(1, channels):
        if index == 1:
            columns.append(0.5 * audio)
        else:
            columns.append(0.003 * rng.standard_normal(len(audio)).astype(np.float32))
    frames = np.stack(columns, axis=1).astype(np.float32)
    soundfile.write(path, frames, rate, subtype=subtype)
    info = soundfile.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (rate, channels, subtype)
    return path


@pytest.fixture(scope="module")
def sentence_audio() -> np.ndarray:
    require_espeak()
    pad = np.zeros(8000, np.float32)
    return np.concatenate([pad, speech_samples(SENTENCE), pad])


@pytest.fixture(scope="module")
def matrix_files(tmp_path_factory, sentence_audio) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("matrix")
    return {
        name: write_audio(folder / f"{name}.{ext}", sentence_audio, rate, channels, subtype)
        for name, ext, rate, channels, subtype in FILE_MATRIX
    }


@pytest.fixture(scope="module")
def transcribed_dir(tmp_path_factory, matrix_files, model_dir) -> tuple[Path, object]:
    """One ``transcribe --output`` run over the whole matrix (the model loads once)."""
    out = tmp_path_factory.mktemp("transcribed") / "out"  # created by the command
    result = streamer("transcribe", *matrix_files.values(), "--output", out)
    return out, result


@pytest.fixture(scope="module")
def three_utterances(tmp_path_factory) -> Path:
    """Three sentences separated by 1.2 s pauses, 16 kHz mono wav (~11 s)."""
    require_espeak()
    gap = np.zeros(int(16000 * 1.2), np.float32)
    parts = [np.zeros(8000, np.float32)]
    for sentence in UTTERANCES:
        parts += [speech_samples(sentence), gap]
    path = tmp_path_factory.mktemp("live") / "three.wav"
    soundfile.write(path, np.concatenate(parts), 16000)
    return path


# --- transcribe ------------------------------------------------------------------------------


def test_transcribe_output_dir_writes_one_file_per_input(transcribed_dir, matrix_files):
    out, result = transcribed_dir
    assert result.returncode == 0, result.stderr
    assert result.stdout == "", "with --output nothing goes to stdout"
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.txt" for n in matrix_files)
    for name in matrix_files:
        assert f"{name}.txt" in result.stderr  # "m01.wav -> DIR/m01.txt (3.6 s audio, RTF ...)"


@pytest.mark.parametrize(
    ("name", "rate"),
    [(row[0], row[2]) for row in FILE_MATRIX],
    ids=[f"{r[0]}-{r[1]}-{r[2]}-{r[3]}ch-{r[4]}" for r in FILE_MATRIX],
)
def test_transcribe_recognizes_every_rate_channel_count_and_encoding(transcribed_dir, name, rate):
    """A file read wrongly (rate, channels, sample format) transcribes as garbage (WER ~1).

    8 kHz is telephone band: one word in eight may go ("fresh air" -> "pressure" was seen on
    the 8-bit wav), so it gets a looser bound."""
    out, result = transcribed_dir
    assert result.returncode == 0, result.stderr
    text = (out / f"{name}.txt").read_text()
    assert wer(SENTENCE, text) < (0.4 if rate == 8000 else 0.2), text


@pytest.mark.parametrize("fmt", ["txt", "srt", "vtt", "jsonl"])
def test_transcribe_formats_on_stdout(matrix_files, model_dir, fmt):
    """Each format is well formed, its times lie inside the audio, and the text is right."""
    path = matrix_files["m07"]  # 48 kHz stereo flac, 3.6 s
    duration_s = soundfile.info(path).duration
    result = streamer("transcribe", path, "--format", fmt)
    assert result.returncode == 0, result.stderr
    output = result.stdout
    if fmt == "txt":
        text, spans = output, []
    elif fmt == "jsonl":
        records = [json.loads(line) for line in output.splitlines()]
        assert records and all({"start_s", "end_s", "text"} <= set(r) for r in records)
        assert {r["language"] for r in records} == {"en"}  # the English-only default model
        text = " ".join(r["text"] for r in records)
        spans = [(r["start_s"], r["end_s"]) for r in records]
    else:
        pattern = SRT_TIME if fmt == "srt" else VTT_TIME
        if fmt == "vtt":
            assert output.startswith("WEBVTT\n\n")
        cues = re.findall(rf"{pattern} --> {pattern}\n(.+)\n", output)
        assert cues, output
        if fmt == "srt":
            numbers = re.findall(r"(?m)^(\d+)\n\d\d:", output)
            assert numbers == [str(i) for i in range(1, len(cues) + 1)]
        spans = [(_seconds(cue[0:4]), _seconds(cue[4:8])) for cue in cues]
        text = " ".join(cue[8] for cue in cues)
    assert wer(SENTENCE, text) < 0.25, output
    for start_s, end_s in spans:
        assert 0 <= start_s <= end_s <= duration_s + 0.5
    assert [s for s, _ in spans] == sorted(s for s, _ in spans)


def _seconds(parts) -> float:
    hours, minutes, seconds, millis = map(int, parts)
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def test_transcribe_same_stem_twice_does_not_silently_overwrite(tmp_path, model_dir):
    """Two inputs named alike (a/talk.wav, b/talk.flac) must not collapse into one output file:
    either both transcripts are kept or the command refuses with one line, writing nothing."""
    require_espeak()
    pad = np.zeros(8000, np.float32)
    sentences = {"a": UTTERANCES[0], "b": UTTERANCES[2]}
    inputs = []
    for folder, ext in (("a", "wav"), ("b", "flac")):
        (tmp_path / folder).mkdir()
        inputs.append(tmp_path / folder / f"talk.{ext}")
        audio = np.concatenate([pad, speech_samples(sentences[folder]), pad])
        soundfile.write(inputs[-1], audio, 16000)
    out = tmp_path / "out"
    result = streamer("transcribe", *inputs, "--output", out)
    assert "Traceback" not in result.stderr
    if result.returncode != 0:
        assert len(result.stderr.strip().splitlines()) == 1 and "talk" in result.stderr
        assert not out.exists() or not list(out.iterdir())
        return
    texts = [p.read_text() for p in sorted(out.iterdir())]
    assert len(texts) == 2, f"one transcript was overwritten: {texts}"
    for sentence in sentences.values():
        assert min(wer(sentence, text) for text in texts) < 0.4, texts


# --- models, devices, help -------------------------------------------------------------------


def test_models_list_shows_the_default_model(model_dir):
    result = streamer("models", "list")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith(model_dir.name))
    assert "fp32,int8" in line and str(model_dir) in line
    size_mb = float(re.search(r"([\d.]+) MB", line).group(1))
    assert size_mb == pytest.approx(sum(f.stat().st_size for f in model_dir.iterdir()) / 1e6, 0.01)


def test_models_list_on_an_empty_models_root_says_how_to_build(tmp_path):
    result = streamer("models", "list", env={**os.environ, "STREAMER_MODELS": str(tmp_path)})
    assert result.returncode == 0
    assert "streamer models build" in result.stdout


def test_devices_without_the_virtual_microphone():
    """Without a sound server (none reachable) the command still answers, never a traceback."""
    env = {**os.environ, "PULSE_SERVER": "unix:/nonexistent/streamer-test-socket"}
    result = streamer("devices", env=env, timeout=60)
    assert "Traceback" not in result.stderr
    assert "streamer_test_" not in result.stdout
    if result.returncode == 0:
        assert re.search(r"(?m)^\s*\d+ [* ][M ] \S", result.stdout), result.stdout
        assert "* default   M monitor" in result.stdout
    else:
        assert "no audio input devices found" in result.stdout + result.stderr


@needs_pulseaudio
def test_devices_lists_the_virtual_microphone_monitor():
    with virtual_microphone() as mic:
        result = streamer("devices", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next((x for x in result.stdout.splitlines() if mic.monitor in x), None)
    assert line is not None, result.stdout
    assert re.match(r"\s*\d+ [* ]M ", line), line  # marked as a monitor
    assert "PulseAudio" in line and "Hz" in line


def test_help_lists_commands_and_live_options():
    top = streamer("--help")
    assert top.returncode == 0
    for command in ("live", "transcribe", "models", "devices", "bench"):
        assert command in top.stdout
    live = streamer("live", "--help")
    assert live.returncode == 0
    for option in ("--input", "--device", "--pace", "--plain", "--emit-log", "--transcript"):
        assert option in live.stdout
    for mode in ("captions", "dictation", "meeting", "low-latency"):
        assert mode in live.stdout
    transcribe = streamer("transcribe", "--help")
    assert "{txt,srt,vtt,jsonl}" in transcribe.stdout and "--output" in transcribe.stdout


HELP_COMMANDS = [
    "",
    "live",
    "transcribe",
    "models",
    "models build",
    "models list",
    "devices",
    "bench",
    "bench offline",
    "bench stream",
    "bench soak",
]


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    """Every command path under ``parser`` ("models build", ...), the parser itself first."""
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += subcommands(sub, f"{prefix} {name}".strip())
    return paths


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=[c or "streamer" for c in HELP_COMMANDS])
def test_every_help_ends_with_a_runnable_example(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command.split(), "--help"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert "example:" in lines, lines
    example = lines[lines.index("example:") + 1].strip()
    assert example.startswith(" ".join(["streamer", *command.split()])), example
    # the example is a valid command line: it parses (without running) as main would parse it
    argv = shlex.split(example, comments=True)[1:]
    if not argv or argv[0].startswith("-"):
        argv = ["live", *argv]
    args = cli.build_parser().parse_args(argv)
    assert args.command == (command.split() or ["live"])[0]


def test_the_help_examples_cover_every_command():
    assert subcommands(cli.build_parser()) == HELP_COMMANDS


# --- live, piped -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_plain(three_utterances, tmp_path_factory, model_dir):
    emit_log = tmp_path_factory.mktemp("emit") / "words.jsonl"
    result = streamer(
        "live", "--input", three_utterances, "--pace", "fast", "--plain", "--emit-log", emit_log
    )
    return result, emit_log


def test_live_plain_prints_one_line_per_utterance(live_plain):
    result, _ = live_plain
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(UTTERANCES), result.stdout
    for sentence, line in zip(UTTERANCES, lines):
        assert line == line.strip() and line
        assert wer(sentence, line) < 0.4, (sentence, line)
    assert result.stdout.endswith("\n")
    # stderr says what is running and from where, and nothing else
    assert result.stderr.strip().endswith("listening on three.wav")


def test_live_emit_log_has_monotonic_word_times(live_plain, three_utterances):
    result, emit_log = live_plain
    records = [json.loads(line) for line in emit_log.read_text().splitlines()]
    assert records and all(
        set(r) == {"emit_s", "start_s", "end_s", "text", "language"} for r in records
    )
    duration_s = soundfile.info(three_utterances).duration
    for before, after in zip(records, records[1:]):
        assert after["emit_s"] >= before["emit_s"]
        assert after["start_s"] >= before["start_s"]
        assert after["start_s"] >= before["end_s"] - 0.02  # words do not overlap
    for record in records:
        assert 0 <= record["start_s"] <= record["end_s"] <= duration_s + 0.1
        assert record["emit_s"] >= record["end_s"], "a word was emitted before it was spoken"
    # the same words, in the same order, as the text on stdout
    assert "".join(r["text"] for r in records).split() == result.stdout.split()


def test_live_without_plain_into_a_pipe_prints_plain_text(matrix_files, model_dir):
    """stdout is not a terminal: no TUI and no escape codes, just the committed line (here from
    a 48 kHz stereo file, resampled on the live path)."""
    result = streamer("live", "--input", matrix_files["m05"], "--pace", "fast")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and wer(SENTENCE, lines[0]) < 0.2, result.stdout

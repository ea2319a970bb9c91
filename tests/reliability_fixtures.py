"""Running streamer as a user does and judging what it says: shared by the reliability tests."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile
from audio_fixtures import (
    require_espeak,
    speech_samples,
)

from streamer.cli import build_parser

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


def speech_file(path: Path, sentences: list[str], gap_s: float, tail_s: float = 0.0) -> Path:
    require_espeak()
    gap = np.zeros(int(16000 * gap_s), np.float32)
    parts = [np.zeros(8000, np.float32)]
    for sentence in sentences:
        parts += [speech_samples(sentence), gap]
    parts.append(np.zeros(int(16000 * tail_s), np.float32))
    soundfile.write(path, np.concatenate(parts), 16000)
    return path

"""Benchmarks: ``streamer bench offline|stream|soak``, each printing its figures beside a
reference measured in the same run.

Each command lives in its own module, imported on demand, which provides a function named
after the command (``offline(args) -> int``, ``stream(args) -> int``, ``soak(args) -> int``).
Its pieces sit beside it as ``<command>_*.py`` (items, run, metrics, report); ``common`` holds
what the three share (the manifest, the machine and code lines, the table and JSON output).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from streamer.config import MODES
from streamer.errors import ConfigError, StreamerError

# command -> module that provides a function of the same name; imported only when asked for
COMMANDS = {
    "offline": "streamer.bench.offline",
    "stream": "streamer.bench.stream",
    "soak": "streamer.bench.soak",
}


def main(args: argparse.Namespace) -> int:
    """Run ``args.bench_command`` (offline, stream, soak)."""
    command = args.bench_command
    if command not in COMMANDS:
        raise ConfigError(f"unknown bench command {command!r}; valid: {', '.join(COMMANDS)}")
    module_name = COMMANDS[command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:  # the module exists but lacks a dependency of its own
            raise
        raise StreamerError(f"bench {command} is not available yet") from error
    return getattr(module, command)(args)


def bench_arguments(
    bench_sub: argparse._SubParsersAction,
    virtual_cpu_arg: Callable[[argparse.ArgumentParser], None],
) -> None:
    """The parsers of ``streamer bench offline|stream|soak`` under ``bench_sub``;
    ``virtual_cpu_arg`` adds ``--virtual-cpu`` as ``streamer live`` has it."""
    offline = bench_sub.add_parser("offline", help="WER and speed vs faster-whisper")
    _model_args(offline)
    offline.add_argument("--threads", type=int, default=2)
    offline.add_argument("--limit", type=int, help="first N items of each set (each language)")
    offline.add_argument(
        "--sets",
        help="comma-separated (default: librispeech,longform,session, "
        "and multilingual when --model is multilingual)",
    )
    offline.add_argument("--no-reference", action="store_true", help="skip faster-whisper")
    offline.add_argument("--model-device", choices=("auto", "cpu", "cuda"), default="cpu")
    offline.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    stream = bench_sub.add_parser("stream", help="streaming latency and WER")
    _model_args(stream)
    stream.add_argument("--pace", choices=("realtime", "fast"), default="realtime")
    virtual_cpu_arg(stream)
    stream.add_argument("--limit", type=int)
    stream.add_argument("--mode", choices=MODES, default="captions")
    stream.add_argument("--config", help="TOML file over the preset (to compare settings)")
    stream.add_argument(
        "--set",
        choices=("longform", "session", "chapters", "multilingual", "all"),
        default="longform",
        help="which recordings to play (default: longform; all: the English ones)",
    )
    stream.add_argument("--chapters", action="store_true", help="the same as --set chapters")
    stream.add_argument("--no-reference", action="store_true", help="skip faster-whisper")
    stream.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    soak = bench_sub.add_parser("soak", help="hours of audio on the virtual clock")
    soak.add_argument("--model", help="model name or directory (default: tiny.en)")
    soak.add_argument("--minutes", type=float, default=60.0)
    soak.add_argument("--manifest", help="speech to loop (default: generated)")
    soak.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")


def _model_args(parser: argparse.ArgumentParser) -> None:
    """What ``bench offline`` and ``bench stream`` read and compare against."""
    parser.add_argument(
        "--manifest", help="evaluation manifest.jsonl (default: ../shared/eval/manifest.jsonl)"
    )
    parser.add_argument("--model", help="model directory or name (default: tiny.en)")
    parser.add_argument(
        "--reference-model",
        metavar="DIR",
        help="CTranslate2 directory of the same weights for faster-whisper "
        "(default: found from the model)",
    )

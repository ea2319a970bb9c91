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

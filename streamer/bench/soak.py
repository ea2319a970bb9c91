"""``streamer bench soak``: an hour of speech and silence through the live pipeline, on the
virtual clock, watching memory, threads and latency drift.

The audio is made on the fly and never held whole: speech turns (one to three clips from the
manifest's LibriSpeech and long-form files with ``--manifest``, otherwise sentences spoken by
espeak-ng) alternate with silences of ``SILENCE_RANGE_S`` drawn by a seeded generator.
``SoakSource`` hands them to the pipeline block by block, as a microphone would, stamped with the
virtual clock. The run opens with ``WARM_UP_SPEECH_S`` of clips joined by pauses shorter than
the VAD hangover, so that the longest window (cut at ``vad.max_utterance_s``) and its buffers are
most likely allocated before the memory baseline is taken.

Reported: RSS after warm-up, in the middle and at the end, and the growth (target below
``RSS_GROWTH_TARGET_MB``); OS threads at the same three points (constant); commit latency in the
first and the last ``PHASE_S`` of audio (the last no worse; the last phase replays the audio of
the first, so the two differ only in what the process carries); words committed, words committed
inside a silence, dropped audio.

The pieces: ``soak_source`` (the audio), ``soak_run`` (the run and its figures) and
``soak_report`` (the table and the JSON).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from streamer.bench.common import code_state, err
from streamer.bench.soak_report import print_report, write_json
from streamer.bench.soak_run import Checkpoint, run_soak
from streamer.bench.soak_source import SEED, SoakSource, speech_clips
from streamer.config import load_config

PROGRESS_EVERY_S = 300.0  # a line on stderr every five minutes of audio


def soak(args: argparse.Namespace) -> int:
    """``streamer bench soak``: run, print the table, optionally write JSON."""
    from streamer.engine.transcribe import Engine

    minutes = float(getattr(args, "minutes", 60.0))
    clips = speech_clips(getattr(args, "manifest", None))
    if clips is None:
        err(
            "bench soak skipped: no speech to play; espeak-ng is not installed "
            "(apt-get install espeak-ng) and no --manifest was given"
        )
        return 0
    mode = getattr(args, "mode", "captions")
    model = {"path": args.model} if getattr(args, "model", None) else {}
    config = load_config(mode, None, {"stream": {"pace": "fast"}, "model": model})
    engine = Engine(config.model, log=err)
    engine.warm_up()
    source = SoakSource(clips, minutes * 60, block_ms=config.audio.block_ms)
    code = code_state()
    header = [
        f"soak: {minutes:g} min of speech ({clips.name}) and silence, seed {SEED}",
        f"model: {engine.describe()}; mode {mode}, virtual clock",
        *([code] if code else []),
    ]
    err(header[0])
    result = run_soak(engine, config, source, _progress_printer())
    print_report(result, header)
    json_path = getattr(args, "json", None)
    if json_path:
        write_json(Path(json_path), result, header)
        err(f"numbers written to {json_path}")
    return 0


def _progress_printer() -> Callable[[Checkpoint], None]:
    """A line on stderr every ``PROGRESS_EVERY_S`` of audio."""
    state = {"next": 0.0}

    def report(checkpoint: Checkpoint) -> None:
        if checkpoint.audio_s >= state["next"]:
            err(
                f"  {checkpoint.audio_s / 60:5.1f} min audio, {checkpoint.wall_s:6.0f} s wall, "
                f"RSS {checkpoint.rss_bytes / 2**20:.1f} MB, {checkpoint.threads} threads"
            )
            state["next"] = checkpoint.audio_s + PROGRESS_EVERY_S

    return report

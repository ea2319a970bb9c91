"""Command line: parse arguments and configs, run a command, turn errors into one line.

This is the only module that calls ``sys.exit``; everything below raises ``StreamerError``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from streamer.bench import bench_arguments
from streamer.config import MODES, Config, load_config
from streamer.errors import ConfigError, StreamerError


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- argument parsing ----------------------------------------------------------------------


def _model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        help="catalog name (tiny.en, the default, or base; built on first use) or a model "
        "directory (ours, or a Xenova/onnx-community/optimum Whisper export)",
    )
    group.add_argument(
        "--precision",
        choices=("auto", "fp32", "int8"),
        help="which ONNX files to run (default auto: fp32 on CUDA, int8 on the CPU)",
    )
    group.add_argument(
        "--model-device",
        choices=("auto", "cpu", "cuda"),
        help="execution provider (default auto: CUDA when it loads)",
    )
    group.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads")
    group.add_argument("--beam-size", type=int, help="1 = greedy (default)")
    group.add_argument("--language", help="de, german, ... or auto (default: detect it)")
    tasks = ("transcribe", "translate")  # translate: English text of any language
    group.add_argument("--task", choices=tasks, help="translate: into English")


def _live_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="captions",
        help="preset from configs/<mode>.toml (default captions)",
    )
    parser.add_argument("--config", help="a TOML file overriding the preset")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", help="play a file through the live pipeline")
    source.add_argument(
        "--device",
        help="input device: index or name substring, or 'monitor' for what this machine plays",
    )
    parser.add_argument(
        "--pace",
        choices=("realtime", "fast"),
        help="file input: wall-clock pace or as fast as possible",
    )
    _virtual_cpu_arg(parser)
    parser.add_argument("--plain", action="store_true", help="committed text only, no TUI")
    parser.add_argument("--emit-log", help="write one JSON line per committed word here")
    parser.add_argument("--transcript", help="meeting transcript directory (JSONL, MD, SRT, VTT)")
    parser.add_argument(
        "--type",
        dest="type_text",
        action="store_true",
        help="type committed text into the focused window",
    )
    parser.add_argument("--vad-aggressiveness", type=int, help="0-3 (webrtcvad)")
    parser.add_argument("--min-step-ms", type=int, help="least new audio between decodes")
    _model_args(parser)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


MANIFEST = "--manifest ../shared/eval/manifest.jsonl"
# one example at the end of each command's --help, keyed by the command's words after "streamer"
EXAMPLES = {
    "": "streamer --mode dictation    # no command means live, from the default microphone",
    "live": "streamer live --input talk.mp3 --plain --emit-log words.jsonl",
    "transcribe": "streamer transcribe talk.mp3 --format srt --output subs/",
    "models": "streamer models list",
    "models build": "streamer models build base    # or: --from ~/faster-whisper-small",
    "models list": "streamer models list",
    "devices": "streamer devices    # then: streamer live --device <index or name>",
    "bench": "streamer bench soak --minutes 5",
    "bench offline": f"streamer bench offline {MANIFEST} --limit 20 --no-reference",
    "bench stream": f"streamer bench stream {MANIFEST} --pace fast --virtual-cpu 2.5",
    "bench soak": "streamer bench soak --minutes 60",
}


def _add_examples(parser: argparse.ArgumentParser, command: str = "") -> None:
    """Put ``EXAMPLES[command]`` under ``parser``'s --help, and so on down its subcommands."""
    parser.epilog = f"example:\n  {EXAMPLES[command]}"
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keeps the epilog's lines
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                _add_examples(subparser, f"{command} {name}".strip())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="streamer", description="Real-time transcription with Whisper on ONNX Runtime."
    )
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    _live_args(commands.add_parser("live", help="live captions (the default command)"))

    transcribe = commands.add_parser("transcribe", help="transcribe audio files")
    transcribe.add_argument("files", nargs="+", metavar="FILE")
    transcribe.add_argument("--format", choices=("txt", "srt", "vtt", "jsonl"), default="txt")
    transcribe.add_argument("--output", help="directory for one output file per input")
    transcribe.add_argument("--initial-prompt", help="text that primes the vocabulary")
    transcribe.add_argument(
        "--no-vad-filter",
        action="store_true",
        help="read the whole file window by window, silence included (default: speech regions)",
    )
    _model_args(transcribe)

    models = commands.add_parser("models", help="build or list models")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    build = models_sub.add_parser(
        "build", help="build a catalog model (default tiny.en) or convert a CTranslate2 directory"
    )
    build.add_argument("name", nargs="?", help="catalog name: tiny.en (default) or base")
    build.add_argument("--from", dest="from_dir", metavar="DIR", help="a CTranslate2 directory")
    build.add_argument("--name", dest="as_name", help="with --from: the new model's name")
    build.add_argument("--force", action="store_true", help="rebuild even if present")
    models_sub.add_parser("list", help="show the catalog and the model directories")

    commands.add_parser("devices", help="list audio input devices")

    bench = commands.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    bench_arguments(bench_sub, _virtual_cpu_arg)
    _add_examples(parser)
    return parser


def _virtual_cpu_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--virtual-cpu",
        type=float,
        metavar="SPEED",
        help="fast pace: model each step's cost on a CPU SPEED times the reference's, "
        "so runs repeat exactly (default: measured)",
    )


def _model_overrides(args: argparse.Namespace) -> dict:
    model, decode = {}, {}
    if getattr(args, "model", None):
        model["path"] = args.model
    if getattr(args, "precision", None):
        model["precision"] = args.precision
    if getattr(args, "model_device", None):
        model["device"] = args.model_device
    if getattr(args, "threads", None) is not None:
        model["intra_op_threads"] = args.threads
    if getattr(args, "beam_size", None) is not None:
        decode["beam_size"] = args.beam_size
    if getattr(args, "language", None):
        decode["language"] = args.language
    if getattr(args, "task", None):
        decode["task"] = args.task
    return {key: value for key, value in (("model", model), ("decode", decode)) if value}


def live_config(args: argparse.Namespace) -> Config:
    """Preset <- --config <- flags."""
    overrides = _model_overrides(args)
    if args.vad_aggressiveness is not None:
        overrides.setdefault("vad", {})["aggressiveness"] = args.vad_aggressiveness
    if args.min_step_ms is not None:
        overrides.setdefault("stream", {})["min_step_ms"] = args.min_step_ms
    if args.pace:
        overrides.setdefault("stream", {})["pace"] = args.pace
    if args.virtual_cpu is not None:
        overrides.setdefault("stream", {})["virtual_cpu_speed"] = args.virtual_cpu
    if args.device:
        overrides.setdefault("audio", {})["device"] = args.device
    if args.plain or not sys.stdout.isatty():
        overrides.setdefault("ui", {})["plain"] = True
    output = {}
    if args.emit_log:
        output["emit_log"] = args.emit_log
    if args.transcript:
        output["transcript_dir"] = args.transcript
    if args.type_text:
        output["type_text"] = True
    if output:
        overrides["output"] = output
    return load_config(args.mode, args.config, overrides)


# --- commands --------------------------------------------------------------------------------


def cmd_transcribe(args: argparse.Namespace) -> int:
    from streamer.audiofile import audio_info
    from streamer.engine.transcribe import Engine, transcribe_file
    from streamer.output.formats import render

    config = load_config("captions", None, _model_overrides(args))
    for path in args.files:
        audio_info(path)  # a bad input fails now, before the model loads
    stems = [Path(path).stem for path in args.files]
    if args.output and len(set(stems)) < len(stems):
        twice = sorted({stem for stem in stems if stems.count(stem) > 1})
        raise ConfigError(
            f"several inputs are named {', '.join(twice)}: their outputs would overwrite each "
            "other in --output; rename them or run them separately"
        )
    decode = config.decode
    if args.initial_prompt:
        decode = replace(decode, initial_prompt=args.initial_prompt)
    if args.output:
        out_dir = Path(args.output)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"cannot create output directory {out_dir}: {error.strerror}; "
                "choose a writable --output"
            ) from error
    offline = replace(
        config.offline, vad_filter=config.offline.vad_filter and not args.no_vad_filter
    )
    engine = Engine(config.model, log=_err)
    engine.task(decode)  # a language the model lacks fails now, in one line
    _err(f"model: {engine.describe()}")
    for path in args.files:
        with _progress(Path(path).name) as progress:
            result = transcribe_file(engine, path, decode, progress, offline, config.vad)
        text = render(result.transcript, args.format)
        rtf = result.compute_s / max(result.transcript.duration_s, 1e-9)
        if args.output:
            target = Path(args.output) / f"{Path(path).stem}.{args.format}"
            _write_text(target, text)
            _err(f"{path} -> {target} ({result.transcript.duration_s:.1f} s audio, RTF {rtf:.3f})")
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    return 0


def _write_text(target: Path, text: str) -> None:
    from streamer.errors import SinkError

    try:
        target.write_text(text, encoding="utf-8")
    except OSError as error:
        raise SinkError(
            f"cannot write {target}: {error.strerror}; choose another --output"
        ) from error


class _progress:
    """A rich progress bar on a terminal's stderr; nothing otherwise."""

    def __init__(self, label: str):
        self.label, self.bar, self.task = label, None, None

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TimeRemainingColumn

            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                "[progress.percentage]{task.percentage:>3.0f}%",
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=1.0)
            return lambda fraction: self.bar.update(self.task, completed=fraction)
        return None

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def cmd_models(args: argparse.Namespace) -> int:
    from streamer.engine.models import build_command, model_table

    if args.models_command == "build":
        path, name = build_command(args.name, args.from_dir, args.as_name, args.force, log=_err)
        _err(f"model ready: {path} (use it with --model {name})")
    else:
        print("\n".join(model_table()))
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from streamer.live.devices import list_input_devices

    devices = list_input_devices()
    if not devices:
        from streamer.errors import AudioDeviceError

        raise AudioDeviceError(
            "no audio input devices found; on Linux install libasound2-plugins and check "
            "that PulseAudio or PipeWire is running (pactl info)"
        )
    for device in devices:
        marks = ("*" if device.is_default else " ") + ("M" if device.is_monitor else " ")
        print(
            f"{device.index:3d} {marks} {device.name}  ({device.host_api}, "
            f"{device.default_samplerate:.0f} Hz, {device.max_input_channels} ch)"
        )
    print("* default   M monitor (records what this machine plays)")
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    from streamer.app import run_live

    return run_live(live_config(args), input_path=args.input)


def cmd_bench(args: argparse.Namespace) -> int:
    from streamer import bench

    return bench.main(args)


COMMANDS = {
    "live": cmd_live,
    "transcribe": cmd_transcribe,
    "models": cmd_models,
    "devices": cmd_devices,
    "bench": cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["live", *argv]  # live captions are the default command
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except StreamerError as error:
        _err(f"streamer: error: {error}")
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0

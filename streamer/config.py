"""Configuration: one frozen dataclass per stage, loaded from ``configs/<mode>.toml``.

Precedence (lowest first): dataclass defaults, ``configs/<mode>.toml``, ``--config FILE``,
command-line flags. Every TOML table maps one-to-one onto a dataclass below; an unknown key or
a bad value is a ``ConfigError`` whose message names the valid values.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from streamer.errors import ConfigError
from streamer.languages import language_code

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
MODES = ("captions", "dictation", "meeting", "low-latency")

Precision = Literal["auto", "fp32", "int8"]
Pace = Literal["realtime", "fast"]
Mode = Literal["captions", "dictation", "meeting", "low-latency"]


@dataclass(frozen=True)
class ModelConfig:
    # which model directory and which of its files
    path: str = ""  # empty: models/whisper-tiny.en under the project (built on first use)
    # auto: fp32 on CUDA (its int8 files run their quantized matmuls on the CPU), int8 on CPU
    precision: Precision = "auto"
    # ONNX Runtime sessions
    device: Literal["auto", "cpu", "cuda"] = "auto"
    intra_op_threads: int = 0  # 0: one per physical core, at most 4
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"


@dataclass(frozen=True)
class AudioConfig:
    device: str = ""  # input device: index or name substring; "" = system default
    block_ms: int = 30  # capture block length
    queue_blocks: int = 200  # callback -> capture thread queue (drops counted when full)
    ring_seconds: float = 120.0  # ring buffer capacity


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: Literal[0, 1, 2, 3] = 2
    frame_ms: Literal[10, 20, 30] = 30
    # onset: `onset_frames` voiced frames within the last `onset_window_frames`
    onset_frames: int = 3
    onset_window_frames: int = 5
    pre_roll_ms: int = 360  # kept before the onset so first syllables survive
    pause_ms: int = 150  # silence inside a span after which the words so far are final
    pause_onset_ms: int = 60  # silence after which they are read ahead of the pause (0: off)
    hangover_ms: int = 600  # silence that ends a span (and resets the decoding window)
    max_utterance_s: float = 20.0  # longer spans are cut at the quietest frame


@dataclass(frozen=True)
class DecodeOptions:
    # search
    beam_size: int = 1  # 1 = greedy
    best_of: int = 5  # samples at temperature > 0
    patience: float = 1.0
    length_penalty: float | None = None
    # a code (de), a name (german) or auto: detected per speech region / utterance
    # (English-only models read English whatever this says, and reject another code)
    language: str = "auto"
    task: Literal["transcribe", "translate"] = "transcribe"  # translate: into English
    # fallback (Whisper's rules)
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    # context
    initial_prompt: str = ""
    condition_on_previous_text: bool = True
    prompt_reset_on_temperature: float = 0.5
    # logit filters
    suppress_blank: bool = True
    suppress_tokens: tuple[int, ...] = (-1,)  # -1: the model's own list
    without_timestamps: bool = False
    max_initial_timestamp: float = 1.0
    # guards
    max_tokens_per_second: float = 12.0  # a decode longer than this per audio second is a loop
    # ...in a script written without spaces (Chinese, Japanese, Thai...): a character is a
    # token or two, so speech reads at about twice the tokens per second (Moonshine's
    # guard: 13 against 6.5)
    max_tokens_per_second_spaceless: float = 24.0
    max_new_tokens: int | None = None

    def __post_init__(self):
        # a name becomes its code here, so everything after reads codes only
        object.__setattr__(self, "language", language_code(self.language))


@dataclass(frozen=True)
class StreamConfig:
    min_step_ms: int = 450  # at least this much new audio between inference steps (fewer,
    # longer steps commit fewer premature readings: 300 ms measured 11.2% WER, 450 ms 9.4%)
    first_step_ms: int = 800  # speech after the onset before the first decode (short
    # windows are where Whisper hallucinates whole phrases)
    max_window_s: float = 30.0
    trim_after_s: float = 15.0  # a window longer than this is cut at a committed sentence end
    encoder_padding_s: float = 3.0  # silence after the window's audio (<= 0: full 30 s)
    agreement: int = 2  # LocalAgreement-n
    short_window_s: float = 0.0  # windows shorter than this need agreement + 1 readings
    unsure_probability: float = 0.6  # an agreed word less likely than this (0: off) waits...
    unsure_settle_ms: int = 1000  # ...until this much audio follows it, or a pause (the gate:
    # long-form WER 8.1% -> 7.5%, chapters 16.4% -> 15.6%, at an earlier fast pace; 800 ->
    # 1000 ms: 7.04% -> 6.81% and 15.20% -> 14.86% on the modelled clock at 4, 0.08 s more
    # mean commit latency)
    contested_wait: bool = False  # an agreed word the reading before read otherwise waits
    # for one more agreeing reading
    settled_ms: int = 0  # a new word this far from the window's end, and sure (below),
    # commits on one reading (0: off; every word waits for ``agreement`` readings)
    settled_probability: float = 0.8
    prompt_chars: int = 200  # committed text that scrolled out of the window, used as prompt
    prompt_max_gap_ms: int = 5000  # ...unless this much silence lies between it and the window
    endpoint_commit: bool = True  # a VAD endpoint force-commits the tentative tail
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    pace: Pace = "realtime"
    # fast pace: 0 advances the virtual clock by each step's measured compute time; a speed
    # > 0 by the step's modelled cost on the reference CPU over this speed, so runs repeat
    # exactly (streamer/live/stepcost.py; 1 = the 2-core AMD EPYC it was fitted on, 2.5 ~ a Xeon)
    virtual_cpu_speed: float = 0.0


@dataclass(frozen=True)
class UiConfig:
    plain: bool = False
    history_lines: int = 200  # on screen; the full history lives on disk
    refresh_per_second: float = 12.0
    show_tentative: bool = True


@dataclass(frozen=True)
class OfflineConfig:
    """``streamer transcribe``: how a recording is cut into speech regions before decoding."""

    vad_filter: bool = True  # skip silence; each region starts its own windows and prompt
    # (10-voice sessions 18.02% -> 14.56% WER, long-form and LibriSpeech unchanged or better)
    gap_ms: int = 1000  # a pause at least this long starts a new region
    pad_ms: int = 200  # audio kept on each side of a VAD span
    # a window shorter than 30 s (a short region, the end of a recording) is encoded with this
    # much silence after it instead of padded to 30 s (0: to 30 s). Measured on every set
    # against 30 s: the 46 multilingual clips 20.88% -> 19.16% mean WER/CER (all six
    # languages better) in half the CPU time; English errors summed over LibriSpeech,
    # long-form and sessions 655.5 -> 655.2 (3 s: 667)
    encoder_padding_s: float = 8.0


@dataclass(frozen=True)
class OutputConfig:
    transcript_dir: str = ""  # meeting mode: JSONL + Markdown + SRT + VTT here
    emit_log: str = ""  # one JSON line per committed word
    type_text: bool = False  # dictation: type committed text into the focused window


@dataclass(frozen=True)
class Config:
    mode: Mode = "captions"
    model: ModelConfig = field(default_factory=ModelConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    stream: StreamConfig = field(default_factory=StreamConfig)
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


# --- loading and validation ------------------------------------------------------------------


def _describe(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(where: str, tp: Any, value: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; return it in the field's own type."""
    origin = get_origin(tp)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
            valid = ", ".join(str(v) for v in allowed)
            raise ConfigError(f"{where} = {value!r} is not valid; valid values: {valid}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(where, option, value)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        item_type = get_args(tp)[0]
        return tuple(_coerce(f"{where}[]", item_type, item) for item in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: cannot check values of type {_describe(tp)}")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def merge(base: Any, overrides: dict[str, Any], where: str = "") -> Any:
    """Return ``base`` (a config dataclass) with ``overrides`` (nested dicts) applied."""
    hints = _hints(type(base))
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        path = f"{where}{key}"
        if key not in hints:
            valid = ", ".join(f.name for f in dataclasses.fields(base))
            raise ConfigError(f"unknown config key {path!r}; valid keys here: {valid}")
        current = getattr(base, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{path} must be a table ([{path}]), got {value!r}")
            changes[key] = merge(current, value, f"{path}.")
        else:
            changes[key] = _coerce(path, hints[key], value)
    result = dataclasses.replace(base, **changes)
    _validate_ranges(result)
    return result


def _validate_ranges(config: Any) -> None:
    """Numeric ranges the type alone cannot express."""
    checks: dict[type, list[tuple[str, Any, str]]] = {
        AudioConfig: [
            ("block_ms", lambda v: 5 <= v <= 500, "between 5 and 500"),
            ("queue_blocks", lambda v: v >= 1, "at least 1"),
            ("ring_seconds", lambda v: 5 <= v <= 3600, "between 5 and 3600"),
        ],
        VadConfig: [
            ("onset_frames", lambda v: v >= 1, "at least 1"),
            ("pre_roll_ms", lambda v: 0 <= v <= 2000, "between 0 and 2000"),
            ("hangover_ms", lambda v: 30 <= v <= 5000, "between 30 and 5000"),
            ("pause_ms", lambda v: 0 <= v <= 5000, "between 0 (off) and 5000"),
            ("pause_onset_ms", lambda v: 0 <= v <= 5000, "between 0 (off) and 5000"),
            ("max_utterance_s", lambda v: 2 <= v <= 30, "between 2 and 30"),
        ],
        DecodeOptions: [
            ("beam_size", lambda v: 1 <= v <= 16, "between 1 and 16"),
            ("best_of", lambda v: 1 <= v <= 16, "between 1 and 16"),
            ("max_tokens_per_second", lambda v: v > 0, "above 0"),
            ("max_tokens_per_second_spaceless", lambda v: v > 0, "above 0"),
            (
                "temperatures",
                lambda v: len(v) > 0 and all(0 <= t <= 2 for t in v),
                "a non-empty list of numbers between 0 and 2",
            ),
        ],
        StreamConfig: [
            ("min_step_ms", lambda v: 50 <= v <= 10_000, "between 50 and 10000"),
            ("first_step_ms", lambda v: 0 <= v <= 5_000, "between 0 and 5000"),
            ("max_window_s", lambda v: 2 <= v <= 30, "between 2 and 30"),
            ("trim_after_s", lambda v: 1 <= v <= 30, "between 1 and 30"),
            ("encoder_padding_s", lambda v: v <= 30, "at most 30"),
            ("agreement", lambda v: 1 <= v <= 5, "between 1 and 5"),
            ("short_window_s", lambda v: 0 <= v <= 30, "between 0 and 30"),
            ("settled_ms", lambda v: 0 <= v <= 10000, "between 0 (off) and 10000"),
            ("settled_probability", lambda v: 0 <= v <= 1, "between 0 and 1"),
            ("prompt_chars", lambda v: 0 <= v <= 1000, "between 0 and 1000"),
            ("prompt_max_gap_ms", lambda v: 0 <= v <= 60_000, "between 0 and 60000"),
            ("unsure_probability", lambda v: 0 <= v <= 1, "between 0 and 1"),
            ("unsure_settle_ms", lambda v: 0 <= v <= 10000, "between 0 and 10000"),
            ("virtual_cpu_speed", lambda v: 0 <= v <= 1000, "between 0 (measured) and 1000"),
        ],
        OfflineConfig: [
            ("gap_ms", lambda v: 0 <= v <= 60_000, "between 0 and 60000"),
            ("pad_ms", lambda v: 0 <= v <= 2000, "between 0 and 2000"),
            ("encoder_padding_s", lambda v: 0 <= v <= 30, "between 0 (to 30 s) and 30"),
        ],
        ModelConfig: [("intra_op_threads", lambda v: 0 <= v <= 256, "between 0 and 256")],
        UiConfig: [("history_lines", lambda v: v >= 1, "at least 1")],
    }
    vad_onset = isinstance(config, VadConfig) and config.onset_frames > config.onset_window_frames
    if vad_onset:
        raise ConfigError("vad.onset_frames must not exceed vad.onset_window_frames")
    tables = {
        AudioConfig: "audio",
        VadConfig: "vad",
        DecodeOptions: "decode",
        StreamConfig: "stream",
        OfflineConfig: "offline",
        ModelConfig: "model",
        UiConfig: "ui",
    }
    for name, ok, valid in checks.get(type(config), []):
        value = getattr(config, name)
        if not ok(value):
            section = tables[type(config)]  # the TOML table, as the user writes it
            raise ConfigError(f"{section}.{name} = {value!r} is out of range; must be {valid}")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file into nested dicts, with a one-line error on failure."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as error:
        raise ConfigError(f"config file not found: {path}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from error
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from error


def load_config(
    mode: str = "captions",
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Defaults <- configs/<mode>.toml <- config_file <- overrides (nested dicts)."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    config = Config(mode=mode)  # type: ignore[arg-type]
    preset = CONFIG_DIR / f"{mode}.toml"
    if preset.exists():
        config = merge(config, read_toml(preset))
    if config_file:
        config = merge(config, read_toml(Path(config_file)))
    if overrides:
        config = merge(config, overrides)
    if config.stream.virtual_cpu_speed > 0 and config.stream.pace != "fast":
        raise ConfigError(
            'stream.virtual_cpu_speed models the clock of pace = "fast"; set the pace to fast '
            "(--pace fast) or the speed to 0"
        )
    return config

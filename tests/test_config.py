"""The four presets and the configuration rules: precedence, validation, immutability."""

from __future__ import annotations

import dataclasses
import re

import pytest

from streamer.config import (
    CONFIG_DIR,
    MODES,
    Config,
    ConfigError,
    load_config,
    read_toml,
)

DEFAULTS = Config()


def write(tmp_path, text: str):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return path


def assert_one_line(error: ConfigError, *needles: str) -> None:
    message = str(error)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


# --- presets --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_every_preset_loads_and_names_its_mode(mode):
    config = load_config(mode)
    assert config.mode == mode
    assert (CONFIG_DIR / f"{mode}.toml").is_file()


@pytest.mark.parametrize("mode", MODES)
def test_preset_tables_and_keys_exist_in_config(mode):
    preset = read_toml(CONFIG_DIR / f"{mode}.toml")
    for table, values in preset.items():
        section = getattr(DEFAULTS, table)  # an unknown table fails here
        assert dataclasses.is_dataclass(section) and isinstance(values, dict)
        names = {field.name for field in dataclasses.fields(section)}
        assert set(values) <= names, f"{mode}: unknown keys in [{table}]: {set(values) - names}"


@pytest.mark.parametrize("mode", MODES)
def test_every_value_that_differs_from_the_default_says_why(mode):
    preset = read_toml(CONFIG_DIR / f"{mode}.toml")
    lines = (CONFIG_DIR / f"{mode}.toml").read_text().splitlines()
    for table, values in preset.items():
        for key, value in values.items():
            default = getattr(getattr(DEFAULTS, table), key)
            if value == default or (isinstance(default, tuple) and tuple(value) == default):
                continue
            line = next(line for line in lines if re.match(rf"{key}\s*=", line))
            assert "#" in line, f"{mode}: [{table}] {key} differs from the default without a why"


def test_presets_differ_where_their_modes_need_it():
    captions = load_config("captions")
    dictation = load_config("dictation")
    meeting = load_config("meeting")
    low_latency = load_config("low-latency")
    assert dictation.ui.plain and not dictation.ui.show_tentative and not captions.ui.plain
    assert meeting.vad.max_utterance_s > captions.vad.max_utterance_s
    assert meeting.ui.history_lines > captions.ui.history_lines
    assert meeting.output.transcript_dir
    assert low_latency.stream.min_step_ms < captions.stream.min_step_ms
    assert low_latency.vad.hangover_ms < captions.vad.hangover_ms
    assert low_latency.stream.agreement >= 2  # agreement of one would commit flicker


# --- precedence -----------------------------------------------------------------------------


def test_precedence_is_defaults_then_preset_then_file_then_overrides(tmp_path):
    preset = load_config("low-latency")
    assert preset.stream.min_step_ms == 150 != DEFAULTS.stream.min_step_ms  # preset > default
    assert preset.decode.beam_size == DEFAULTS.decode.beam_size  # untouched: the default

    file = write(tmp_path, "[stream]\nmin_step_ms = 700\n\n[ui]\nhistory_lines = 42\n")
    from_file = load_config("low-latency", config_file=file)
    assert from_file.stream.min_step_ms == 700  # file > preset
    assert from_file.vad.hangover_ms == preset.vad.hangover_ms  # preset kept where file is silent

    overridden = load_config(
        "low-latency", config_file=file, overrides={"stream": {"min_step_ms": 900}}
    )
    assert overridden.stream.min_step_ms == 900  # overrides > file
    assert overridden.ui.history_lines == 42  # file kept where overrides are silent
    assert overridden.stream.max_window_s == preset.stream.max_window_s


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        ({"stream": {"min_stpe_ms": 100}}, ("stream.min_stpe_ms", "min_step_ms", "agreement")),
        ({"sream": {"min_step_ms": 100}}, ("sream", "stream", "model", "output")),
        ({"vad": {"hangover_ms": "300"}}, ("vad.hangover_ms", "integer")),
        ({"ui": {"plain": "yes"}}, ("ui.plain", "true or false")),
        ({"vad": {"aggressiveness": 9}}, ("vad.aggressiveness", "valid values: 0, 1, 2, 3")),
        ({"model": {"precision": "fp16"}}, ("model.precision", "auto, fp32, int8")),
        ({"vad": {"frame_ms": True}}, ("vad.frame_ms", "10, 20, 30")),
        ({"stream": {"agreement": 9}}, ("agreement", "between 1 and 5")),
        ({"vad": {"hangover_ms": 10}}, ("hangover_ms", "between 30 and 5000")),
        ({"decode": {"temperatures": []}}, ("temperatures", "non-empty list")),
        ({"stream": 5}, ("stream", "table")),
    ],
    ids=[
        "unknown-key",
        "unknown-table",
        "int-as-string",
        "bool-as-string",
        "aggressiveness-9",
        "precision-fp16",
        "bool-for-literal",
        "agreement-range",
        "hangover-range",
        "empty-list",
        "scalar-for-table",
    ],
)
def test_bad_values_are_one_line_errors_naming_the_valid_values(overrides, needles):
    with pytest.raises(ConfigError) as caught:
        load_config("captions", overrides=overrides)
    assert_one_line(caught.value, *needles)


def test_bad_values_in_a_config_file_are_caught_too(tmp_path):
    file = write(tmp_path, "[vad]\naggressiveness = 9\n")
    with pytest.raises(ConfigError) as caught:
        load_config("meeting", config_file=file)
    assert_one_line(caught.value, "valid values: 0, 1, 2, 3")


def test_broken_and_missing_files_and_unknown_modes(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(config_file=write(tmp_path, "[stream\nmin_step_ms = 1\n"))
    assert_one_line(caught.value, "not valid TOML", "mine.toml")
    with pytest.raises(ConfigError) as caught:
        load_config(config_file=tmp_path / "absent.toml")
    assert_one_line(caught.value, "not found", "absent.toml")
    with pytest.raises(ConfigError) as caught:
        load_config("karaoke")
    assert_one_line(caught.value, "karaoke", *MODES)


def test_config_errors_are_value_errors_with_exit_code_2():
    with pytest.raises(ValueError) as caught:
        load_config(overrides={"vad": {"aggressiveness": 9}})
    assert caught.value.exit_code == 2


# --- immutability ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_configs_are_frozen(mode):
    config = load_config(mode)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.mode = "captions"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.stream.min_step_ms = 1  # type: ignore[misc]
    assert isinstance(config.decode.temperatures, tuple)  # no list to mutate behind the scenes
    changed = dataclasses.replace(config, stream=dataclasses.replace(config.stream, agreement=3))
    assert changed.stream.agreement == 3 and config.stream.agreement != 3


def test_a_modelled_step_cost_needs_the_fast_pace():
    assert load_config("captions", None, {"stream": {"pace": "fast", "virtual_cpu_speed": 2.5}})
    with pytest.raises(ConfigError, match="virtual_cpu_speed.*--pace fast"):
        load_config("captions", None, {"stream": {"virtual_cpu_speed": 2.5}})
    with pytest.raises(ConfigError, match="between 0 \\(measured\\) and 1000"):
        load_config("captions", None, {"stream": {"pace": "fast", "virtual_cpu_speed": -1}})

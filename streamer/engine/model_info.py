"""A Whisper model directory as the runtime reads it: the file names of each precision (the
Xenova/onnx-community names, which our build writes too) and the model's facts, read from
config.json and generation_config.json.

Two layouts load: our build's (everything at the top) and the Hugging Face hub's, where the ONNX
files sit in an ``onnx/`` subfolder and the json files at the top. int8 files are named as
transformers.js names them: ``*_quantized.onnx`` first, then ``*_int8`` and ``*_uint8``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from streamer.engine.manifest import listed_files, verify_files
from streamer.errors import ModelLoadError

ENCODER_FILES = {"fp32": "encoder_model.onnx", "int8": "encoder_model_quantized.onnx"}
DECODER_FILES = {"fp32": "decoder_model_merged.onnx", "int8": "decoder_model_merged_quantized.onnx"}
SUFFIXES = {"fp32": ("",), "int8": ("_quantized", "_int8", "_uint8")}
ONNX_FOLDERS = ("", "onnx")  # our build's layout, then the hub's


def find_onnx_files(directory: Path, precision: str) -> tuple[str, str] | None:
    """(encoder, decoder) paths relative to ``directory`` for ``precision``, or None."""
    for folder in ONNX_FOLDERS:
        for suffix in SUFFIXES[precision]:
            names = tuple(
                str(Path(folder) / f"{stem}{suffix}.onnx")
                for stem in ("encoder_model", "decoder_model_merged")
            )
            if all((directory / name).is_file() for name in names):
                return names  # type: ignore[return-value]
    return None


def missing_files(directory: Path, precision: str) -> str:
    """What a directory lacks for ``precision``, in words, for the error that says so."""
    suffix = SUFFIXES[precision][0]
    wanted = [f"{stem}{suffix}.onnx" for stem in ("encoder_model", "decoder_model_merged")]
    for folder in ONNX_FOLDERS:
        present = [n for n in wanted if (directory / folder / n).is_file()]
        if present:
            absent = [str(Path(folder) / n) for n in wanted if n not in present]
            return ", ".join(absent)
    merged_note = ""
    if any(directory.glob("**/decoder_with_past_model*.onnx")):
        merged_note = " (it has a non-merged decoder: export with the merged decoder)"
    return f"{' and '.join(wanted)}, at the top or under onnx/{merged_note}"


# an optional decoder input of our builds: the first position given logits (see
# export/decoder_graph.select_logit_rows)
LOGITS_FROM = "logits_from"


def data_file(model_file: str) -> str:
    """The external weights of ``model_file`` (``encoder_model.onnx_data``), where it has them."""
    return model_file + "_data"


@dataclass(frozen=True)
class ModelInfo:
    """What the runtime needs to know about a Whisper model directory."""

    directory: Path
    encoder_path: Path
    decoder_path: Path
    precision: str
    n_mels: int
    n_audio_ctx: int
    n_text_ctx: int
    n_text_layer: int
    n_text_head: int
    n_text_state: int
    n_vocab: int
    is_multilingual: bool
    suppress_tokens: tuple[int, ...]
    begin_suppress_tokens: tuple[int, ...]
    alignment_heads: tuple[tuple[int, int], ...]

    def describe(self) -> str:
        return f"{self.directory.name} ({self.encoder_path.name} + {self.decoder_path.name})"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ModelLoadError(f"{path} is missing; the model directory is incomplete") from error
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path} is damaged ({error}); rebuild the model") from error


def _onnx_files(directory: Path, precision: str) -> tuple[str, str]:
    found = find_onnx_files(directory, precision)
    if found is not None:
        return found
    if (directory / "manifest.json").exists():  # our build: names are fixed, a gap is damage
        return ENCODER_FILES[precision], DECODER_FILES[precision]
    raise ModelLoadError(
        f"{directory} has no {precision} model: missing {missing_files(directory, precision)}"
    )


def read_model_info(directory: Path, precision: str, verify: bool = True) -> ModelInfo:
    """Pick the encoder/decoder files for ``precision`` and read the model's facts."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelLoadError(
            f"model directory {directory} does not exist; build it with: streamer models build"
        )
    if precision not in ENCODER_FILES:
        raise ModelLoadError(f"unknown precision {precision!r}; valid: fp32, int8")
    encoder, decoder = _onnx_files(directory, precision)
    if verify:
        # the weights beside a graph file (our builds; large community exports) are checked too
        weights = [
            data_file(name)
            for name in (encoder, decoder)
            if (directory / data_file(name)).exists() or data_file(name) in listed_files(directory)
        ]
        files = [encoder, decoder, *weights, "tokenizer.json", "config.json"]
        verify_files(directory, files, full=True)
    config = _read_json(directory / "config.json")
    generation_path = directory / "generation_config.json"
    generation = _read_json(generation_path) if generation_path.exists() else {}
    heads = generation.get("alignment_heads") or []
    return ModelInfo(
        directory=directory,
        encoder_path=directory / encoder,
        decoder_path=directory / decoder,
        precision=precision,
        n_mels=int(config.get("num_mel_bins", 80)),
        n_audio_ctx=int(config.get("max_source_positions", 1500)),
        n_text_ctx=int(config.get("max_target_positions", 448)),
        n_text_layer=int(config["decoder_layers"]),
        n_text_head=int(config["decoder_attention_heads"]),
        n_text_state=int(config["d_model"]),
        n_vocab=int(config["vocab_size"]),
        is_multilingual=int(config["vocab_size"]) >= 51865,
        suppress_tokens=tuple(generation.get("suppress_tokens", config.get("suppress_tokens", []))),
        begin_suppress_tokens=tuple(generation.get("begin_suppress_tokens", [220, 50256])),
        alignment_heads=tuple((int(layer), int(head)) for layer, head in heads),
    )

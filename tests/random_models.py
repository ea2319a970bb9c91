"""Small Whisper models with random weights, for tests of the plumbing (never of accuracy).

``write_ct2_model`` is the inverse of ``streamer.engine.export.ct2.read_ct2_model`` (CTranslate2
``model.bin``, version 6); ``random_ct2_dir`` writes a faster-whisper style directory with it,
which ``streamer models build --from`` converts like a real one. ``export_variant`` then turns a
built directory into the layouts other exporters write: the hub's ``onnx/`` subfolder, a decoder
without cross-attention outputs, an encoder that takes only the full 3000 frames.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import onnx

DTYPES = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2}
DTYPES |= {np.dtype(np.int32): 3, np.dtype(np.float16): 4}


def _string(text: str) -> bytes:
    data = text.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def write_ct2_model(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str]) -> None:
    """``model.bin`` version 6: the variables (any rank, CT2's dtypes) and the aliases."""
    out = [struct.pack("<I", 6), _string("WhisperSpec"), struct.pack("<II", 1, len(variables))]
    for name, array in variables.items():
        array = np.asarray(array)  # tobytes() is C order; ascontiguousarray would make 0-d 1-d
        out += [_string(name), struct.pack("<B", array.ndim)]
        out += [struct.pack("<I", d) for d in array.shape]
        out += [struct.pack("<BI", DTYPES[array.dtype], array.nbytes), array.tobytes()]
    out.append(struct.pack("<I", len(aliases)))
    out += [_string(alias) + _string(target) for alias, target in aliases.items()]
    Path(path).write_bytes(b"".join(out))


def random_whisper_weights(
    n_vocab: int, n_mels: int = 128, d_model: int = 64, n_head: int = 2, n_layer: int = 2
) -> dict[str, np.ndarray]:
    """Every variable CTranslate2's WhisperSpec has, shaped for these dimensions, float16."""
    rng = np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float16)

    def norm(scope: str) -> dict[str, np.ndarray]:
        return {f"{scope}/gamma": np.ones(d_model, np.float16), f"{scope}/beta": w(d_model)}

    def linear(scope: str, rows: int, cols: int = d_model) -> dict[str, np.ndarray]:
        return {f"{scope}/weight": w(rows, cols), f"{scope}/bias": w(rows)}

    def ffn(scope: str) -> dict[str, np.ndarray]:
        hidden = 4 * d_model
        return {
            **norm(f"{scope}/layer_norm"),
            **linear(f"{scope}/linear_0", hidden),
            **linear(f"{scope}/linear_1", d_model, hidden),
        }

    def self_attention(scope: str) -> dict[str, np.ndarray]:
        return {
            **norm(f"{scope}/layer_norm"),
            **linear(f"{scope}/linear_0", 3 * d_model),
            **linear(f"{scope}/linear_1", d_model),
        }

    weights = {
        "encoder/num_heads": np.array(n_head, np.int16),
        "encoder/conv1/weight": w(d_model, n_mels, 3),
        "encoder/conv1/bias": w(d_model),
        "encoder/conv2/weight": w(d_model, d_model, 3),
        "encoder/conv2/bias": w(d_model),
        "encoder/position_encodings/encodings": w(1500, d_model),
        **norm("encoder/layer_norm"),
        "decoder/num_heads": np.array(n_head, np.int16),
        "decoder/embeddings/weight": w(n_vocab, d_model),
        "decoder/position_encodings/encodings": w(448, d_model),
        **norm("decoder/layer_norm"),
    }
    for i in range(n_layer):
        weights |= self_attention(f"encoder/layer_{i}/self_attention")
        weights |= ffn(f"encoder/layer_{i}/ffn")
        scope = f"decoder/layer_{i}"
        weights |= self_attention(f"{scope}/self_attention")
        weights |= norm(f"{scope}/attention/layer_norm")
        weights |= linear(f"{scope}/attention/linear_0", d_model)
        weights |= linear(f"{scope}/attention/linear_1", 2 * d_model)
        weights |= linear(f"{scope}/attention/linear_2", d_model)
        weights |= ffn(f"{scope}/ffn")
    return weights


def random_ct2_dir(target: Path, tokenizer_json: Path, n_mels: int = 128) -> Path:
    """A faster-whisper style directory: model.bin (random), config.json, tokenizer.json."""
    from tokenizers import Tokenizer

    # the text and special tokens, then 1501 timestamps (0.00 to 30.00 s), as in Whisper
    no_timestamps = Tokenizer.from_file(str(tokenizer_json)).token_to_id("<|notimestamps|>")
    n_vocab = no_timestamps + 1 + 1501
    target.mkdir(parents=True, exist_ok=True)
    write_ct2_model(
        target / "model.bin",
        random_whisper_weights(n_vocab, n_mels),
        {"decoder/projection/weight": "decoder/embeddings/weight"},
    )
    config = {"alignment_heads": [[1, 0], [1, 1]], "suppress_ids": [], "suppress_ids_begin": []}
    (target / "config.json").write_text(json.dumps(config))
    shutil.copyfile(tokenizer_json, target / "tokenizer.json")
    return target


# --- the layouts of other exporters --------------------------------------------------------


def export_variant(built: Path, target: Path, variant: str) -> Path:
    """A copy of our built directory as another exporter lays it out (no manifest.json).

    ``flat``: as is; ``hub``: ONNX files under ``onnx/``, and the encoders do not say that they
    take any number of frames; ``no-attention``: the decoders without ``cross_attentions.*``
    outputs (a plain optimum export); ``fixed-frames``: the encoders add all 1500 positions
    (they refuse anything but 3000 frames) and do not say."""
    target.mkdir(parents=True)
    for path in built.iterdir():
        if path.name == "manifest.json" or path.suffix == ".onnx_data":
            continue  # onnx.load reads external weights in; the copies hold them inline
        folder = target / "onnx" if variant == "hub" and path.suffix == ".onnx" else target
        folder.mkdir(exist_ok=True)
        if path.suffix != ".onnx":
            shutil.copyfile(path, folder / path.name)
            continue
        model = onnx.load(str(path))
        if variant == "no-attention" and path.name.startswith("decoder"):
            _drop_outputs(model, "cross_attentions.")
        if variant == "fixed-frames" and path.name.startswith("encoder"):
            _fix_frames(model)
        if variant in ("hub", "fixed-frames") and path.name.startswith("encoder"):
            kept = [p for p in model.metadata_props if p.key != "whisper.encoder_variable_frames"]
            del model.metadata_props[:]
            model.metadata_props.extend(kept)
        onnx.save(model, folder / path.name)
    return target


def _drop_outputs(model: onnx.ModelProto, prefix: str) -> None:
    kept = [o for o in model.graph.output if not o.name.startswith(prefix)]
    del model.graph.output[:]
    model.graph.output.extend(kept)


def _fix_frames(model: onnx.ModelProto) -> None:
    """The positions added whole, as optimum's encoder adds them."""
    graph = model.graph
    sliced = next(n for n in graph.node if n.op_type == "Slice" and "encoder.positions" in n.input)
    for node in graph.node:
        node.input[:] = ["encoder.positions" if i == sliced.output[0] else i for i in node.input]
    graph.node.remove(sliced)

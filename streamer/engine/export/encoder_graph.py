"""The Whisper encoder as an ONNX graph: ``input_features`` -> ``last_hidden_state``."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from streamer.engine.export.graph import (
    LAYER_NORM_EPS,
    GraphBuilder,
    Layers,
    WhisperDims,
    as_float32,
    whisper_model,
)

# queries per attention chunk: the scores of 250 queries over 1500 keys are 9 MB; a 30 s window
# measured 185 ms unchunked, 155 ms in chunks of 250 or 500, 187 ms in chunks of 100
ATTENTION_CHUNK = 250


def build_encoder(
    weights: dict[str, np.ndarray], dims: WhisperDims, metadata: dict[str, str]
) -> onnx.ModelProto:
    """``input_features`` [B, n_mels, 2*n_audio_ctx] -> ``last_hidden_state`` [B, ctx, state]."""
    g = GraphBuilder()
    layers = Layers(g, weights, dims.n_audio_head)
    d_head = dims.n_audio_state // dims.n_audio_head

    def conv(x: str, scope: str, stride: int) -> str:
        w = g.weight(f"{scope}.weight", as_float32(weights[f"encoder/{scope}/weight"]))
        b = g.weight(f"{scope}.bias", as_float32(weights[f"encoder/{scope}/bias"]))
        return g.op("Conv", [x, w, b], name=scope, pads=[1, 1], strides=[stride], kernel_shape=[3])

    x = layers.gelu(conv("input_features", "conv1", 1))
    x = layers.gelu(conv(x, "conv2", 2))
    x = g.op("Transpose", [x], perm=[0, 2, 1])
    # positions are sliced to the input length: a 30 s window gives all 1500, and a shorter
    # input (fewer frames, for cheap streaming steps) the first ones
    positions = as_float32(weights["encoder/position_encodings/encodings"])[: dims.n_audio_ctx]
    n_positions = g.op("Shape", [x], start=1, end=2)
    x = g.op(
        "Add",
        [
            x,
            g.op(
                "Slice",
                [g.weight("encoder.positions", positions), g.const([0]), n_positions, g.const([0])],
            ),
        ],
    )
    for i in range(dims.n_audio_layer):
        scope = f"encoder/layer_{i}"
        h = layers.layer_norm(x, f"{scope}/self_attention/layer_norm")
        qkv = layers.linear(h, f"{scope}/self_attention/linear_0")
        q, k, v = (layers.split_heads(t) for t in layers.split_qkv(qkv, dims.n_audio_state))
        name = f"encoder.layer_{i}.attention"
        attn = layers.attention_in_chunks(q, k, v, d_head, ATTENTION_CHUNK, name)
        x = g.op("Add", [x, layers.linear(attn, f"{scope}/self_attention/linear_1")])
        h = layers.layer_norm(x, f"{scope}/ffn/layer_norm")
        x = g.op("Add", [x, layers.mlp(h, f"{scope}/ffn")])
    g.op(
        "LayerNormalization",
        [
            x,
            g.weight("encoder.ln_post.gamma", as_float32(weights["encoder/layer_norm/gamma"])),
            g.weight("encoder.ln_post.beta", as_float32(weights["encoder/layer_norm/beta"])),
        ],
        outputs=["last_hidden_state"],
        axis=-1,
        epsilon=LAYER_NORM_EPS,
    )
    inputs = [
        helper.make_tensor_value_info(
            "input_features", TensorProto.FLOAT, ["batch_size", dims.n_mels, "feature_size"]
        )
    ]
    outputs = [
        helper.make_tensor_value_info(
            "last_hidden_state",
            TensorProto.FLOAT,
            ["batch_size", "encoder_sequence_length / 2", dims.n_audio_state],
        )
    ]
    graph = helper.make_graph(g.nodes, "whisper_encoder", inputs, outputs, g.initializers)
    return whisper_model(graph, dims, metadata)

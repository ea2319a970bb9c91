"""Whisper encoder and merged decoder as ONNX graphs, written op by op with ``onnx.helper``.

The graphs follow the Xenova/optimum layout so that one runtime serves both our own builds and
unmodified community exports: ``encoder_model.onnx`` (``input_features`` -> ``last_hidden_state``)
and ``decoder_model_merged.onnx`` whose ``use_cache_branch`` input selects between a prefill
pass (cross-attention K/V computed from ``encoder_hidden_states``, past ignored) and a cached
pass (past self-attention K/V extended, cross K/V passed through).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
LAYER_NORM_EPS = 1e-5
MASK_VALUE = -1e9  # added to masked attention scores; finite so softmax never sees a NaN row


@dataclass(frozen=True)
class WhisperDims:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


class GraphBuilder:
    """Accumulates nodes and initializers; every op gets a unique, readable output name."""

    def __init__(self, prefix: str = ""):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.prefix = prefix
        self._count = 0
        self._constants: dict[tuple, str] = {}

    def op(
        self,
        op_type: str,
        inputs: list[str],
        name: str | None = None,
        n_out: int = 1,
        outputs: list[str] | None = None,
        **attrs,
    ) -> str | list[str]:
        self._count += 1
        base = f"{self.prefix}{name or op_type}_{self._count}"
        outputs = outputs or ([base] if n_out == 1 else [f"{base}_{i}" for i in range(n_out)])
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=base, **attrs))
        return outputs[0] if n_out == 1 else outputs

    def weight(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def const(self, values, dtype=np.int64) -> str:
        array = np.asarray(values, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            name = f"{self.prefix}const_{len(self._constants)}"
            self._constants[key] = self.weight(name, array)
        return self._constants[key]


def _f32(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=np.float32)


class _Layers:
    """Transformer building blocks over CTranslate2 Whisper variable names."""

    def __init__(self, g: GraphBuilder, weights: dict[str, np.ndarray], n_head: int):
        self.g, self.w, self.n_head = g, weights, n_head

    def linear(self, x: str, scope: str, rows: slice | None = None, name: str = "") -> str:
        weight = _f32(self.w[f"{scope}/weight"])
        bias = self.w.get(f"{scope}/bias")
        if rows is not None:
            weight = weight[rows]
            bias = None if bias is None else bias[rows]
        tag = name or scope.replace("/", ".")
        y = self.g.op("MatMul", [x, self.g.weight(f"{tag}.weight", weight.T)], name=f"{tag}.matmul")
        if bias is not None:
            y = self.g.op("Add", [y, self.g.weight(f"{tag}.bias", _f32(bias))], name=f"{tag}.add")
        return y

    def layer_norm(self, x: str, scope: str) -> str:
        tag = scope.replace("/", ".")
        gamma = self.g.weight(f"{tag}.gamma", _f32(self.w[f"{scope}/gamma"]))
        beta = self.g.weight(f"{tag}.beta", _f32(self.w[f"{scope}/beta"]))
        return self.g.op(
            "LayerNormalization",
            [x, gamma, beta],
            name=f"{tag}.ln",
            axis=-1,
            epsilon=LAYER_NORM_EPS,
        )

    def gelu(self, x: str) -> str:
        g = self.g
        scaled = g.op("Mul", [x, g.const(1 / np.sqrt(2), np.float32)])
        erf_plus_one = g.op("Add", [g.op("Erf", [scaled]), g.const(1.0, np.float32)])
        return g.op("Mul", [g.op("Mul", [x, erf_plus_one]), g.const(0.5, np.float32)])

    def split_heads(self, x: str) -> str:
        """[B, T, n_state] -> [B, n_head, T, d_head]."""
        g = self.g
        shaped = g.op("Reshape", [x, g.const([0, 0, self.n_head, -1])])
        return g.op("Transpose", [shaped], perm=[0, 2, 1, 3])

    def merge_heads(self, x: str) -> str:
        """[B, n_head, T, d_head] -> [B, T, n_state]."""
        g = self.g
        merged = g.op("Transpose", [x], perm=[0, 2, 1, 3])
        return g.op("Reshape", [merged, g.const([0, 0, -1])])

    def attention(
        self,
        q: str,
        k: str,
        v: str,
        d_head: int,
        mask: str | None = None,
        probs_out: str | None = None,
    ) -> str:
        """Scaled dot-product attention over split heads; returns merged heads."""
        g = self.g
        scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])], name="qk")
        scores = g.op("Mul", [scores, g.const(d_head**-0.5, np.float32)])
        if mask is not None:
            scores = g.op("Add", [scores, mask])
        probs = g.op("Softmax", [scores], axis=-1, outputs=[probs_out] if probs_out else None)
        return self.merge_heads(g.op("MatMul", [probs, v], name="pv"))

    def mlp(self, x: str, scope: str) -> str:
        hidden = self.gelu(self.linear(x, f"{scope}/linear_0"))
        return self.linear(hidden, f"{scope}/linear_1")

    def split_qkv(self, qkv: str, n_state: int) -> list[str]:
        g = self.g
        return g.op("Split", [qkv, g.const([n_state] * 3)], n_out=3, axis=-1)


def _model(graph: onnx.GraphProto, dims: WhisperDims, metadata: dict[str, str]) -> onnx.ModelProto:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="streamer"
    )
    model.ir_version = 8
    facts = {f"whisper.{key}": str(value) for key, value in vars(dims).items()}
    helper.set_model_props(model, {**facts, **metadata})
    return model


def build_encoder(
    weights: dict[str, np.ndarray], dims: WhisperDims, metadata: dict[str, str]
) -> onnx.ModelProto:
    """``input_features`` [B, n_mels, 2*n_audio_ctx] -> ``last_hidden_state`` [B, ctx, state]."""
    g = GraphBuilder()
    layers = _Layers(g, weights, dims.n_audio_head)
    d_head = dims.n_audio_state // dims.n_audio_head

    def conv(x: str, scope: str, stride: int) -> str:
        w = g.weight(f"{scope}.weight", _f32(weights[f"encoder/{scope}/weight"]))
        b = g.weight(f"{scope}.bias", _f32(weights[f"encoder/{scope}/bias"]))
        return g.op("Conv", [x, w, b], name=scope, pads=[1, 1], strides=[stride], kernel_shape=[3])

    x = layers.gelu(conv("input_features", "conv1", 1))
    x = layers.gelu(conv(x, "conv2", 2))
    x = g.op("Transpose", [x], perm=[0, 2, 1])
    # positions are sliced to the input length: a 30 s window gives all 1500, and a shorter
    # input (fewer frames, for cheap streaming steps) the first ones
    positions = _f32(weights["encoder/position_encodings/encodings"])[: dims.n_audio_ctx]
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
        attn = layers.attention(q, k, v, d_head)
        x = g.op("Add", [x, layers.linear(attn, f"{scope}/self_attention/linear_1")])
        h = layers.layer_norm(x, f"{scope}/ffn/layer_norm")
        x = g.op("Add", [x, layers.mlp(h, f"{scope}/ffn")])
    g.op(
        "LayerNormalization",
        [
            x,
            g.weight("encoder.ln_post.gamma", _f32(weights["encoder/layer_norm/gamma"])),
            g.weight("encoder.ln_post.beta", _f32(weights["encoder/layer_norm/beta"])),
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
    return _model(graph, dims, metadata)


def _decoder_io(dims: WhisperDims) -> tuple[list, list]:
    n_head, d_head = dims.n_text_head, dims.n_text_state // dims.n_text_head
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    inputs = [
        helper.make_tensor_value_info("input_ids", i64, ["batch_size", "decoder_sequence_length"]),
        helper.make_tensor_value_info(
            "encoder_hidden_states",
            f32,
            ["batch_size", "encoder_sequence_length / 2", dims.n_audio_state],
        ),
    ]
    outputs = [
        helper.make_tensor_value_info(
            "logits", f32, ["batch_size", "decoder_sequence_length", dims.n_vocab]
        )
    ]
    for i in range(dims.n_text_layer):
        for kind, past_axis, present_axis in (
            ("decoder", "past_decoder_sequence_length", "past_decoder_sequence_length + 1"),
            ("encoder", "encoder_sequence_length_out", "encoder_sequence_length_out"),
        ):
            for part in ("key", "value"):
                inputs.append(
                    helper.make_tensor_value_info(
                        f"past_key_values.{i}.{kind}.{part}",
                        f32,
                        ["batch_size", n_head, past_axis, d_head],
                    )
                )
                outputs.append(
                    helper.make_tensor_value_info(
                        f"present.{i}.{kind}.{part}",
                        f32,
                        ["batch_size", n_head, present_axis, d_head],
                    )
                )
    inputs.append(helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1]))
    for i in range(dims.n_text_layer):
        outputs.append(
            helper.make_tensor_value_info(
                f"decoder_attentions.{i}",
                f32,
                [
                    "batch_size",
                    n_head,
                    "decoder_sequence_length",
                    "past_decoder_sequence_length + 1",
                ],
            )
        )
    for i in range(dims.n_text_layer):
        outputs.append(
            helper.make_tensor_value_info(
                f"cross_attentions.{i}",
                f32,
                ["batch_size", n_head, "decoder_sequence_length", "encoder_sequence_length_out"],
            )
        )
    return inputs, outputs


def _past_length(g: GraphBuilder) -> str:
    """Positions already in the self-attention cache: 0 on the prefill branch, whatever the
    caller passed as past (some clients pass a dummy past of length 1 there)."""
    cached = GraphBuilder("past_length.cached.")
    shape = cached.op("Shape", ["past_key_values.0.decoder.key"], start=2, end=3)
    cached.op("Squeeze", [shape, cached.const([0])], outputs=["past_length.cached"])
    prefill = GraphBuilder("past_length.prefill.")
    prefill.op("Identity", [prefill.const(0)], outputs=["past_length.prefill"])

    def branch(builder: GraphBuilder, tag: str) -> onnx.GraphProto:
        value = helper.make_tensor_value_info(f"past_length.{tag}", TensorProto.INT64, [])
        return helper.make_graph(
            builder.nodes, f"past_length_{tag}", [], [value], builder.initializers
        )

    g.nodes.append(
        helper.make_node(
            "If",
            ["use_cache_branch_scalar"],
            ["past_length"],
            name="past_length_if",
            then_branch=branch(cached, "cached"),
            else_branch=branch(prefill, "prefill"),
        )
    )
    return "past_length"


def _cross_attention(g: GraphBuilder, weights, dims: WhisperDims, layer: int, q: str) -> str:
    """Cross-attention of one layer behind ``If(use_cache_branch)``.

    Prefill: project ``encoder_hidden_states`` to K/V (returned as ``present.N.encoder.*``).
    Cached: attend over the caller's ``past_key_values.N.encoder.*`` directly and return
    empty presents, as optimum's merged exports do, so no step copies the 1500-frame K/V."""
    d_head = dims.n_text_state // dims.n_text_head
    names = [
        f"cross_out.{layer}",
        f"cross_attentions.{layer}",
        f"present.{layer}.encoder.key",
        f"present.{layer}.encoder.value",
    ]

    def branch(tag: str, cached: bool) -> onnx.GraphProto:
        b = GraphBuilder(f"layer_{layer}.{tag}.")
        layers = _Layers(b, weights, dims.n_text_head)
        past_k = f"past_key_values.{layer}.encoder.key"
        past_v = f"past_key_values.{layer}.encoder.value"
        if cached:
            k, v = past_k, past_v
            empty = [
                b.op("Slice", [src, b.const([0]), b.const([0]), b.const([2])])
                for src in (past_k, past_v)
            ]
        else:
            scope = f"decoder/layer_{layer}/attention/linear_1"
            k, v = (
                layers.split_heads(
                    layers.linear(
                        "encoder_hidden_states",
                        scope,
                        rows,
                        name=f"decoder.layer_{layer}.cross_{part}",
                    )
                )
                for part, rows in (
                    ("key", slice(0, dims.n_text_state)),
                    ("value", slice(dims.n_text_state, None)),
                )
            )
            empty = [k, v]
        probs_name = f"{tag}.probs.{layer}"
        out = layers.attention(q, k, v, d_head, probs_out=probs_name)
        produced = [out, probs_name, *empty]
        nodes = list(b.nodes)
        outputs = []
        for src, dst in zip(produced, names):
            nodes.append(helper.make_node("Identity", [src], [f"{tag}.{dst}"]))
            outputs.append(helper.make_tensor_value_info(f"{tag}.{dst}", TensorProto.FLOAT, None))
        return helper.make_graph(
            nodes, f"cross_attention_{layer}_{tag}", [], outputs, b.initializers
        )

    g.nodes.append(
        helper.make_node(
            "If",
            ["use_cache_branch_scalar"],
            names,
            name=f"cross_attention_{layer}_if",
            then_branch=branch("cached", True),
            else_branch=branch("prefill", False),
        )
    )
    return names[0]


def build_decoder(
    weights: dict[str, np.ndarray], dims: WhisperDims, metadata: dict[str, str]
) -> onnx.ModelProto:
    """The merged decoder: one graph for the prefill and the cached steps."""
    g = GraphBuilder()
    layers = _Layers(g, weights, dims.n_text_head)
    d_head = dims.n_text_state // dims.n_text_head
    g.op("Squeeze", ["use_cache_branch", g.const([0])], outputs=["use_cache_branch_scalar"])
    past_length = _past_length(g)

    # token + position embeddings for positions [past_length, past_length + S)
    n_tokens = g.op("Squeeze", [g.op("Shape", ["input_ids"], start=1, end=2), g.const([0])])
    total = g.op("Add", [past_length, n_tokens])
    embedding = g.weight("decoder.embed_tokens", _f32(weights["decoder/embeddings/weight"]))
    positions = g.weight("decoder.positions", _f32(weights["decoder/position_encodings/encodings"]))
    past_end = g.op("Unsqueeze", [past_length, g.const([0])])
    pos = g.op(
        "Slice", [positions, past_end, g.op("Unsqueeze", [total, g.const([0])]), g.const([0])]
    )
    x = g.op("Add", [g.op("Gather", [embedding, "input_ids"], axis=0), pos])

    # causal mask [S, past+S]: query i sees keys j <= past_length + i
    rows = g.op("Range", [past_length, total, g.const(1)])
    cols = g.op("Range", [g.const(0), total, g.const(1)])
    future = g.op(
        "Greater",
        [g.op("Unsqueeze", [cols, g.const([0])]), g.op("Unsqueeze", [rows, g.const([1])])],
    )
    mask = g.op("Where", [future, g.const(MASK_VALUE, np.float32), g.const(0.0, np.float32)])

    for i in range(dims.n_text_layer):
        scope = f"decoder/layer_{i}"
        h = layers.layer_norm(x, f"{scope}/self_attention/layer_norm")
        qkv = layers.linear(h, f"{scope}/self_attention/linear_0")
        q, k, v = (layers.split_heads(t) for t in layers.split_qkv(qkv, dims.n_text_state))
        past_k, past_v = (
            g.op(
                "Slice",
                [f"past_key_values.{i}.decoder.{part}", g.const([0]), past_end, g.const([2])],
            )
            for part in ("key", "value")
        )
        k = g.op("Concat", [past_k, k], axis=2, outputs=[f"present.{i}.decoder.key"])
        v = g.op("Concat", [past_v, v], axis=2, outputs=[f"present.{i}.decoder.value"])
        attn = layers.attention(q, k, v, d_head, mask, probs_out=f"decoder_attentions.{i}")
        x = g.op("Add", [x, layers.linear(attn, f"{scope}/self_attention/linear_1")])

        h = layers.layer_norm(x, f"{scope}/attention/layer_norm")
        q = layers.split_heads(layers.linear(h, f"{scope}/attention/linear_0"))
        attn = _cross_attention(g, weights, dims, i, q)
        x = g.op("Add", [x, layers.linear(attn, f"{scope}/attention/linear_2")])

        h = layers.layer_norm(x, f"{scope}/ffn/layer_norm")
        x = g.op("Add", [x, layers.mlp(h, f"{scope}/ffn")])

    x = layers.layer_norm(x, "decoder/layer_norm")
    # Whisper ties the output projection to the embedding; a transposed copy keeps it a plain
    # MatMul, which int8 quantization handles per output channel (a Gemm sharing the Gather's
    # initializer would not be quantized)
    projection = _f32(weights["decoder/projection/weight"]).T
    g.op(
        "MatMul",
        [x, g.weight("decoder.proj_out.weight", projection)],
        name="decoder.proj_out",
        outputs=["logits"],
    )

    inputs, outputs = _decoder_io(dims)
    graph = helper.make_graph(g.nodes, "whisper_decoder_merged", inputs, outputs, g.initializers)
    return _model(graph, dims, metadata)

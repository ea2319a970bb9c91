"""The merged Whisper decoder as one ONNX graph.

Its ``use_cache_branch`` input selects between a prefill pass (cross-attention K/V computed from
``encoder_hidden_states``, past ignored) and a cached pass (past self-attention K/V extended,
cross K/V passed through), as in the Xenova/optimum merged exports.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from streamer.engine.export.graph import (
    GraphBuilder,
    Layers,
    WhisperDims,
    as_float32,
    whisper_model,
)
from streamer.engine.model_info import LOGITS_FROM

MASK_VALUE = -1e9  # added to masked attention scores; finite so softmax never sees a NaN row


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
        layers = Layers(b, weights, dims.n_text_head)
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
    layers = Layers(g, weights, dims.n_text_head)
    d_head = dims.n_text_state // dims.n_text_head
    g.op("Squeeze", ["use_cache_branch", g.const([0])], outputs=["use_cache_branch_scalar"])
    past_length = _past_length(g)

    # token + position embeddings for positions [past_length, past_length + S)
    n_tokens = g.op("Squeeze", [g.op("Shape", ["input_ids"], start=1, end=2), g.const([0])])
    total = g.op("Add", [past_length, n_tokens])
    embedding = g.weight("decoder.embed_tokens", as_float32(weights["decoder/embeddings/weight"]))
    positions = g.weight(
        "decoder.positions", as_float32(weights["decoder/position_encodings/encodings"])
    )
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
    projection = as_float32(weights["decoder/projection/weight"]).T
    g.op(
        "MatMul",
        [x, g.weight("decoder.proj_out.weight", projection)],
        name="decoder.proj_out",
        outputs=["logits"],
    )

    inputs, outputs = _decoder_io(dims)
    graph = helper.make_graph(g.nodes, "whisper_decoder_merged", inputs, outputs, g.initializers)
    return whisper_model(graph, dims, metadata)


def select_logit_rows(path) -> None:
    """Give the decoder file at ``path`` an optional input ``logits_from`` (int64 [1], default
    0): logits are computed for positions ``logits_from`` on only.

    The prefill feeds the prompt (up to 224 tokens) before the start-of-transcript token, and
    nothing reads the logits of the prompt's positions: 51864 floats, 0.2 MB, each, the
    largest tensors a streaming step holds (17 MB at 81 tokens). The input is an initializer
    that a caller may override, so it is not among the session's inputs and the Xenova
    signature is unchanged. The rows are taken from the projection's input: in the int8 file
    after its activations are quantized, so the quantization scale still comes from every
    position and the logits kept are the same to the bit (in both files)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    producer = {output: node for node in graph.node for output in node.output}
    node = producer["logits"]
    while node.op_type in ("Mul", "Cast"):  # int8: MatMulInteger -> Cast -> Mul (scales)
        node = producer[node.input[0]]
    if node.op_type not in ("MatMul", "MatMulInteger"):
        raise ValueError(f"{path}: the logits come from a {node.op_type}, not a MatMul")
    for name, value in ((LOGITS_FROM, 0), ("logits_from.end", 2**62), ("logits_from.axis", 1)):
        graph.initializer.append(numpy_helper.from_array(np.array([value], np.int64), name))
    graph.input.append(helper.make_tensor_value_info(LOGITS_FROM, TensorProto.INT64, [1]))
    rows = f"{node.input[0]}.rows"
    select = helper.make_node(
        "Slice",
        [node.input[0], LOGITS_FROM, "logits_from.end", "logits_from.axis"],
        [rows],
        name="logits_from.slice",
    )
    node.input[0] = rows
    graph.node.insert(list(graph.node).index(node), select)
    onnx.save(model, str(path))

"""The pieces both Whisper graphs are written with, op by op with ``onnx.helper``: the model's
dimensions, a builder that names every op, the transformer blocks, and the model wrapper.

The graphs follow the Xenova/optimum layout so that one runtime serves both our own builds and
unmodified community exports: ``encoder_model.onnx`` (``input_features`` -> ``last_hidden_state``,
``encoder_graph``) and ``decoder_model_merged.onnx`` (``decoder_graph``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
LAYER_NORM_EPS = 1e-5


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


def as_float32(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=np.float32)


class Layers:
    """Transformer building blocks over CTranslate2 Whisper variable names."""

    def __init__(self, g: GraphBuilder, weights: dict[str, np.ndarray], n_head: int):
        self.g, self.w, self.n_head = g, weights, n_head

    def linear(self, x: str, scope: str, rows: slice | None = None, name: str = "") -> str:
        weight = as_float32(self.w[f"{scope}/weight"])
        bias = self.w.get(f"{scope}/bias")
        if rows is not None:
            weight = weight[rows]
            bias = None if bias is None else bias[rows]
        tag = name or scope.replace("/", ".")
        y = self.g.op("MatMul", [x, self.g.weight(f"{tag}.weight", weight.T)], name=f"{tag}.matmul")
        if bias is not None:
            y = self.g.op(
                "Add", [y, self.g.weight(f"{tag}.bias", as_float32(bias))], name=f"{tag}.add"
            )
        return y

    def layer_norm(self, x: str, scope: str) -> str:
        tag = scope.replace("/", ".")
        gamma = self.g.weight(f"{tag}.gamma", as_float32(self.w[f"{scope}/gamma"]))
        beta = self.g.weight(f"{tag}.beta", as_float32(self.w[f"{scope}/beta"]))
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
        return self.merge_heads(self.attend(q, k, v, d_head, mask, probs_out))

    def attend(
        self,
        q: str,
        k: str,
        v: str,
        d_head: int,
        mask: str | None = None,
        probs_out: str | None = None,
    ) -> str:
        """``attention`` before its heads are merged: [B, n_head, S, d_head]."""
        g = self.g
        scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])], name="qk")
        scores = g.op("Mul", [scores, g.const(d_head**-0.5, np.float32)])
        if mask is not None:
            scores = g.op("Add", [scores, mask])
        probs = g.op("Softmax", [scores], axis=-1, outputs=[probs_out] if probs_out else None)
        return g.op("MatMul", [probs, v], name="pv")

    def attention_in_chunks(
        self, q: str, k: str, v: str, d_head: int, chunk: int, name: str
    ) -> str:
        """``attention`` for ``chunk`` queries at a time, in a Loop.

        Over all T queries at once the scores are 6 x T x T floats (54 MB at 1500 positions),
        two or three of them alive at a time; a chunk's are 6 x chunk x T. Every query row is
        computed by the same ops over the same keys, so the output is bit-identical."""
        g = self.g
        n_queries = g.op("Shape", [q], start=2, end=3)
        trips = g.op("Div", [g.op("Add", [n_queries, g.const([chunk - 1])]), g.const([chunk])])
        b = GraphBuilder(f"{name}.")
        index, go_on, done = f"{name}.index", f"{name}.go_on", f"{name}.done"
        start = b.op("Mul", [b.op("Unsqueeze", [index, b.const([0])]), b.const([chunk])])
        end = b.op("Add", [start, b.const([chunk])])
        rows = b.op("Slice", [q, start, end, b.const([2])])
        out = Layers(b, self.w, self.n_head).attend(rows, k, v, d_head)
        b.op("Concat", [done, out], axis=2, outputs=[f"{name}.done_out"])
        b.op("Identity", [go_on], outputs=[f"{name}.go_on_out"])
        body = helper.make_graph(
            b.nodes,
            f"{name}.body",
            [
                helper.make_tensor_value_info(index, TensorProto.INT64, []),
                helper.make_tensor_value_info(go_on, TensorProto.BOOL, []),
                helper.make_tensor_value_info(done, TensorProto.FLOAT, None),
            ],
            [
                helper.make_tensor_value_info(f"{name}.go_on_out", TensorProto.BOOL, []),
                helper.make_tensor_value_info(f"{name}.done_out", TensorProto.FLOAT, None),
            ],
            b.initializers,
        )
        trip_count = g.op("Squeeze", [trips, g.const([0])])
        empty = g.op("Slice", [q, g.const([0]), g.const([0]), g.const([2])])  # no queries
        # heads merged outside the loop: merged inside, the int8 encoder's output moved by 8e-6
        return self.merge_heads(g.op("Loop", [trip_count, "", empty], name=name, body=body))

    def mlp(self, x: str, scope: str) -> str:
        hidden = self.gelu(self.linear(x, f"{scope}/linear_0"))
        return self.linear(hidden, f"{scope}/linear_1")

    def split_qkv(self, qkv: str, n_state: int) -> list[str]:
        g = self.g
        return g.op("Split", [qkv, g.const([n_state] * 3)], n_out=3, axis=-1)


def whisper_model(
    graph: onnx.GraphProto, dims: WhisperDims, metadata: dict[str, str]
) -> onnx.ModelProto:
    """``graph`` as a model of our opset, the dimensions and ``metadata`` as its properties."""
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="streamer"
    )
    model.ir_version = 8
    facts = {f"whisper.{key}": str(value) for key, value in vars(dims).items()}
    helper.set_model_props(model, {**facts, **metadata})
    return model

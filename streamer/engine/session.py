"""ONNX Runtime sessions for the encoder and the merged decoder, and the explicit KV cache.

Sessions are configured in one place (``runtime.create_session``); the graphs' input/output
names are checked against the Whisper signature once, at load time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from streamer.config import ModelConfig
from streamer.engine.model_info import LOGITS_FROM, ModelInfo
from streamer.engine.runtime import create_session, provider_name
from streamer.errors import ModelLoadError

log = logging.getLogger(__name__)


def _check_names(session, path: Path, inputs: list[str], outputs: list[str]) -> None:
    have_in = {i.name for i in session.get_inputs()}
    have_out = {o.name for o in session.get_outputs()}
    missing = [n for n in inputs if n not in have_in] + [n for n in outputs if n not in have_out]
    if missing:
        raise ModelLoadError(
            f"{path.name} does not have the Whisper signature (missing {', '.join(missing[:4])}); "
            "use a Xenova/onnx-community Whisper export or streamer models build"
        )


# --- encoder ------------------------------------------------------------------------------------


class EncoderSession:
    """``input_features`` (B, n_mels, 3000) float32 -> audio features (B, n_audio_ctx, state)."""

    def __init__(self, info: ModelInfo, config: ModelConfig):
        self.session = create_session(info.encoder_path, config)
        _check_names(self.session, info.encoder_path, ["input_features"], ["last_hidden_state"])
        self.provider = provider_name(self.session)
        metadata = self.session.get_modelmeta().custom_metadata_map
        # community exports add a fixed 1500-position table: they need the full 30 s; our
        # build says it takes shorter inputs, and an export that says nothing is tried once
        declared = metadata.get("whisper.encoder_variable_frames")
        self.variable_frames = declared == "1" if declared is not None else self._takes_short(info)

    def _takes_short(self, info: ModelInfo) -> bool:
        """Whether 2 s of features give 100 positions (a fixed encoder fails or pads)."""
        import onnxruntime as ort

        quiet = ort.RunOptions()
        quiet.log_severity_level = 4  # the expected failure is not an error to show
        features = np.zeros((1, info.n_mels, 200), dtype=np.float32)
        try:
            out = self.session.run(["last_hidden_state"], {"input_features": features}, quiet)
        except Exception:  # ORT raises its own types for a shape its graph refuses
            return False
        return out[0].shape[1] == 100

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return self.session.run(["last_hidden_state"], {"input_features": features})[0]


# --- decoder and KV cache -----------------------------------------------------------------------


@dataclass
class KVCache:
    """Self-attention K/V per layer (grows by one position per step) and cross-attention K/V
    per layer (fixed per encoder pass), each (batch, n_head, length, d_head) float32.

    Tensors are numpy arrays, or ONNX Runtime OrtValues that stay on the execution device when
    the decoder runs with IO binding (CUDA). ``offset`` is the number of positions cached.
    """

    self_kv: list[tuple] = field(default_factory=list)
    cross_kv: list[tuple] = field(default_factory=list)

    @property
    def offset(self) -> int:
        return 0 if not self.self_kv else int(_shape(self.self_kv[0][0])[2])

    @property
    def batch_size(self) -> int:
        return 0 if not self.cross_kv else int(_shape(self.cross_kv[0][0])[0])

    def reorder(self, indices: np.ndarray) -> KVCache:
        """Select/duplicate batch rows (beam search); device tensors come back to the host."""
        same_rows = len(indices) == self.batch_size and np.all(indices == np.arange(len(indices)))
        if same_rows:
            return self
        take = lambda a: np.ascontiguousarray(_host(a)[indices])  # noqa: E731
        cross = self.cross_kv
        if not np.all(indices == indices[0]) or len(indices) != self.batch_size:
            cross = [(take(k), take(v)) for k, v in self.cross_kv]
        return KVCache([(take(k), take(v)) for k, v in self.self_kv], cross)

    def truncate(self, length: int) -> KVCache:
        """Keep the first ``length`` positions (resume decoding after a shared prefix)."""
        if length == self.offset:
            return self
        return replace(
            self,
            self_kv=[(_host(k)[:, :, :length], _host(v)[:, :, :length]) for k, v in self.self_kv],
        )


def _shape(tensor) -> tuple[int, ...]:
    shape = tensor.shape
    return tuple(shape() if callable(shape) else shape)  # OrtValue.shape is a method


def _host(tensor) -> np.ndarray:
    return tensor if isinstance(tensor, np.ndarray) else tensor.numpy()


@dataclass(frozen=True)
class DecoderOutput:
    logits: np.ndarray  # (batch, positions from logits_from on, n_vocab) float32
    cache: KVCache
    # per layer (batch, head, n_tokens, ctx); None for a layer without alignment heads
    cross_attentions: list[np.ndarray | None] | None = None
    logits_from: int = 0  # the position of logits row 0 (the fed tokens count from 0)


class DecoderSession:
    """The merged decoder: ``prefill`` builds the cache, ``step`` extends it."""

    def __init__(self, info: ModelInfo, config: ModelConfig, io_binding: bool | None = None):
        self.info = info
        self.session = create_session(info.decoder_path, config)
        self.provider = provider_name(self.session)
        # on CUDA the KV cache stays on the GPU between steps; on the CPU plain runs are as fast
        self.io_binding = self.provider == "CUDA" if io_binding is None else io_binding
        self._device = "cuda" if self.provider == "CUDA" else "cpu"
        n = info.n_text_layer
        self._past_names = [
            (
                f"past_key_values.{i}.decoder.key",
                f"past_key_values.{i}.decoder.value",
                f"past_key_values.{i}.encoder.key",
                f"past_key_values.{i}.encoder.value",
            )
            for i in range(n)
        ]
        self._present_self = [
            name
            for i in range(n)
            for name in (f"present.{i}.decoder.key", f"present.{i}.decoder.value")
        ]
        self._present_cross = [
            name
            for i in range(n)
            for name in (f"present.{i}.encoder.key", f"present.{i}.encoder.value")
        ]
        self._cross_attention = [f"cross_attentions.{i}" for i in range(n)]
        inputs = ["input_ids", "encoder_hidden_states", "use_cache_branch"]
        inputs += [name for names in self._past_names for name in names]
        _check_names(
            self.session,
            info.decoder_path,
            inputs,
            ["logits", *self._present_self, *self._present_cross],
        )
        outputs = {o.name for o in self.session.get_outputs()}
        self.has_cross_attentions = all(name in outputs for name in self._cross_attention)
        # only the layers that have alignment heads are fetched (tiny.en: 3 of 4): the prefill's
        # cross-attention is n_head x tokens x frames floats per layer, alive while it decodes
        aligned = {layer for layer, _ in info.alignment_heads}
        self._aligned_attention = [
            name for layer, name in enumerate(self._cross_attention) if layer in aligned
        ]
        # our builds compute logits from a given position on (export/decoder_graph.py)
        overridable = {item.name for item in self.session.get_overridable_initializers()}
        self.selects_logit_rows = LOGITS_FROM in overridable
        d_head = info.n_text_state // info.n_text_head
        self._empty = np.zeros((1, info.n_text_head, 0, d_head), dtype=np.float32)
        self._dummy_hidden = np.zeros((1, 1, info.n_text_state), dtype=np.float32)

    def _feeds(self, tokens: np.ndarray, hidden: np.ndarray, cache: KVCache | None) -> dict:
        batch = tokens.shape[0]
        feeds = {
            "input_ids": tokens.astype(np.int64),
            "use_cache_branch": np.array([cache is not None]),
        }
        if cache is None:
            empty = np.repeat(self._empty, batch, axis=0)
            feeds["encoder_hidden_states"] = hidden
            for names in self._past_names:
                for name in names:
                    feeds[name] = empty
        else:
            # the cached branch never reads the audio features; a 1-frame dummy saves a copy
            feeds["encoder_hidden_states"] = np.repeat(self._dummy_hidden, batch, axis=0)
            for (sk, sv, ck, cv), (k, v), (xk, xv) in zip(
                self._past_names, cache.self_kv, cache.cross_kv
            ):
                feeds.update({sk: k, sv: v, ck: xk, cv: xv})
        return feeds

    def _run(self, tokens, hidden, cache, want_attention: bool, logits_from=0) -> DecoderOutput:
        names = ["logits", *self._present_self]
        if cache is None:
            names += self._present_cross
        if want_attention and self.has_cross_attentions:
            names += self._aligned_attention
        feeds = self._feeds(tokens, hidden, cache)
        if not self.selects_logit_rows:
            logits_from = 0  # the file gives every position's logits
        elif logits_from:
            feeds[LOGITS_FROM] = np.array([logits_from], dtype=np.int64)
        if self.io_binding:
            values = self._run_bound(names, feeds)
        else:
            values = dict(zip(names, self.session.run(names, feeds)))
        self_kv = [
            (values[k], values[v])
            for k, v in zip(self._present_self[::2], self._present_self[1::2])
        ]
        if cache is None:
            cross_kv = [
                (values[k], values[v])
                for k, v in zip(self._present_cross[::2], self._present_cross[1::2])
            ]
        else:
            cross_kv = cache.cross_kv
        attention = (
            [_host(values[n]) if n in values else None for n in self._cross_attention]
            if want_attention and self.has_cross_attentions
            else None
        )
        logits = _host(values["logits"])
        return DecoderOutput(logits, KVCache(self_kv, cross_kv), attention, logits_from)

    def _run_bound(self, names: list[str], feeds: dict) -> dict:
        """One call with IO binding: the caches stay OrtValues on the execution device (no copy
        through the host between steps); only the logits come back."""
        binding = self.session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        for name in names:
            binding.bind_output(name, self._device)
        self.session.run_with_iobinding(binding)
        return dict(zip(names, binding.get_outputs()))

    def prefill(
        self,
        tokens: np.ndarray,
        audio_features: np.ndarray,
        want_attention: bool = False,
        logits_from: int = 0,
    ) -> DecoderOutput:
        """Run the whole prompt (B, S) in one call; computes the cross-attention K/V.

        ``logits_from``: the first position whose logits are wanted, where the model can skip
        the others (``DecoderOutput.logits_from`` says which position row 0 is)."""
        return self._run(tokens, audio_features, None, want_attention, logits_from)

    def step(
        self, tokens: np.ndarray, cache: KVCache, want_attention: bool = False
    ) -> DecoderOutput:
        """Feed (B, k) new tokens after the cached positions (k = 1 while decoding)."""
        return self._run(tokens, None, cache, want_attention)

"""ONNX Runtime sessions for the encoder and the merged decoder, and the explicit KV cache.

One function configures every session (providers, threads, optimisation level); facts about
the model are read from its directory (config.json, generation_config.json) and checked against
the graphs' input/output names once, at load time.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from streamer.config import ModelConfig
from streamer.engine.manifest import verify_files
from streamer.errors import ModelLoadError

log = logging.getLogger(__name__)

ENCODER_FILES = {"fp32": "encoder_model.onnx", "int8": "encoder_model_quantized.onnx"}
DECODER_FILES = {"fp32": "decoder_model_merged.onnx", "int8": "decoder_model_merged_quantized.onnx"}
_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


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


def read_model_info(directory: Path, precision: str, verify: bool = True) -> ModelInfo:
    """Pick the encoder/decoder files for ``precision`` and read the model's facts."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelLoadError(
            f"model directory {directory} does not exist; build it with: streamer models build"
        )
    if precision not in ENCODER_FILES:
        raise ModelLoadError(f"unknown precision {precision!r}; valid: fp32, int8")
    encoder, decoder = ENCODER_FILES[precision], DECODER_FILES[precision]
    if verify:
        verify_files(directory, [encoder, decoder, "tokenizer.json", "config.json"], full=True)
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


# --- execution providers ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def cuda_available() -> bool:
    """Whether CUDAExecutionProvider really loads here, probed without ORT's loud error log.

    onnxruntime-gpu lists the CUDA provider even where the CUDA libraries are missing, and then
    logs an error when a session asks for it; probe with a one-node model and logging silenced.
    """
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    if os.environ.get("STREAMER_DISABLE_CUDA"):
        return False
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.log_severity_level = 4
    ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(
            model.SerializeToString(),
            options,
            providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
        )
        return "CUDAExecutionProvider" in session.get_providers()
    except Exception:  # any failure to load CUDA means: use the CPU
        return False
    finally:
        ort.set_default_logger_severity(3)


# cuDNN's exhaustive search ran for every new encoder input length (35 ms extra on the first
# call of each, on an H200), and a streaming window takes a new length every second; TF32
# matmuls moved logits by 2e-3, so CUDA would no longer read as the CPU does (README)
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}


def uses_cuda(device: str) -> bool:
    """Whether sessions for ``device`` (auto, cpu, cuda) run on CUDA here."""
    if device == "cuda" and not cuda_available():
        raise ModelLoadError(
            "model.device = cuda (--model-device cuda) was asked for but CUDA does not load "
            "here; install onnxruntime-gpu with CUDA 12/13 and cuDNN 9, or use --model-device cpu"
        )
    return device in ("auto", "cuda") and cuda_available()


def choose_providers(device: str) -> list:
    """CUDA first when it loads (and is allowed), CPU always."""
    if uses_cuda(device):
        return [("CUDAExecutionProvider", CUDA_OPTIONS), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def choose_precision(directory: Path, precision: str, device: str) -> str:
    """``auto``: fp32 on CUDA, int8 on the CPU, or whichever a downloaded directory has.

    ONNX Runtime's CUDA provider has no kernels for the int8 files' dynamic quantization
    (DynamicQuantizeLinear, MatMulInteger): 86 nodes ran on the CPU between GPU kernels, and
    int8 decoded at half the speed of fp32 on an H200 (RTF 0.0175 against 0.0090)."""
    if precision != "auto":
        return precision
    directory = Path(directory)
    wanted = ["fp32", "int8"] if uses_cuda(device) else ["int8", "fp32"]
    if (directory / "manifest.json").exists():  # our build has both: a gap is damage
        return wanted[0]
    for candidate in wanted:
        files = (ENCODER_FILES[candidate], DECODER_FILES[candidate])
        if all((directory / name).exists() for name in files):
            return candidate
    return wanted[0]


def default_threads() -> int:
    """One intra-op thread per core, at most 4 (tiny gains nothing from more)."""
    return max(1, min(4, os.cpu_count() or 1))


@lru_cache(maxsize=1)
def limit_blas_threads() -> None:
    """One BLAS thread for numpy in this process.

    The only numpy matrix products on our path are small (the mel filterbank, 80 x 201 by the
    frames of a window). OpenBLAS splits them over every core and its idle workers then spin:
    that measured 40% of the process's CPU time in streaming (0.40 CPU s per audio s with it,
    0.25 without), for no speed-up."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def create_session(path: Path, config: ModelConfig):
    """The one place where ONNX Runtime sessions are configured."""
    import onnxruntime as ort

    limit_blas_threads()

    options = ort.SessionOptions()
    options.intra_op_num_threads = config.intra_op_threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, _OPT_LEVELS[config.graph_optimization]
    )
    options.log_severity_level = 3
    # idle worker threads sleep instead of spinning: spinning burns the second core while the
    # other threads (capture, UI) or other programs need it, and measured 1.5-3x slower steps
    # on a shared 2-core machine
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    # streaming windows change length every step; a memory pattern is planned per input shape
    # and kept, which measured +108 MB over 28 encoder lengths (9.6 MB without it)
    options.enable_mem_pattern = False
    providers = choose_providers(config.device)  # its own error says what to do
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # ORT raises its own exception types for bad files
        raise ModelLoadError(
            f"cannot load {path}: {str(error).splitlines()[0][:200]}; "
            "rebuild with: streamer models build --force"
        ) from error


def provider_name(session) -> str:
    return "CUDA" if session.get_providers()[0] == "CUDAExecutionProvider" else "CPU"


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
        # community exports add a fixed 1500-position table: they need the full 30 s
        self.variable_frames = metadata.get("whisper.encoder_variable_frames") == "1"

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
    logits: np.ndarray  # (batch, n_tokens, n_vocab) float32
    cache: KVCache
    cross_attentions: list[np.ndarray] | None = None  # per layer (batch, head, n_tokens, ctx)


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

    def _run(self, tokens, hidden, cache, want_attention: bool) -> DecoderOutput:
        names = ["logits", *self._present_self]
        if cache is None:
            names += self._present_cross
        if want_attention and self.has_cross_attentions:
            names += self._cross_attention
        feeds = self._feeds(tokens, hidden, cache)
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
            [_host(values[n]) for n in self._cross_attention]
            if want_attention and self.has_cross_attentions
            else None
        )
        return DecoderOutput(_host(values["logits"]), KVCache(self_kv, cross_kv), attention)

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
        self, tokens: np.ndarray, audio_features: np.ndarray, want_attention: bool = False
    ) -> DecoderOutput:
        """Run the whole prompt (B, S) in one call; computes the cross-attention K/V."""
        return self._run(tokens, audio_features, None, want_attention)

    def step(
        self, tokens: np.ndarray, cache: KVCache, want_attention: bool = False
    ) -> DecoderOutput:
        """Feed (B, k) new tokens after the cached positions (k = 1 while decoding)."""
        return self._run(tokens, None, cache, want_attention)

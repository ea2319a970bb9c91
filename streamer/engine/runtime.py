"""How ONNX Runtime runs here: whether CUDA really loads, which providers and precision follow
from that, how many threads, and the one function that configures every session.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from streamer.config import ModelConfig
from streamer.engine.model_info import find_onnx_files
from streamer.errors import ModelLoadError

_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


# a one-node model (Identity, float [1] -> [1], opset 17, IR 8) serialized; written out so that
# probing does not import the onnx package, which alone added 18 MB of RSS (tests/engine checks
# it against onnx.helper)
PROBE_MODEL = (
    b'\x08\x08:;\n\x10\n\x01x\x12\x01y"\x08Identity\x12\x05probeZ\x0f\n\x01x\x12\n\n\x08\x08'
    b"\x01\x12\x04\n\x02\x08\x01b\x0f\n\x01y\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01B\x04\n\x00\x10\x11"
)


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
    options = ort.SessionOptions()
    options.log_severity_level = 4
    ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(
            PROBE_MODEL,
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
# matmuls moved logits by 2e-3, so CUDA would no longer read as the CPU does (docs/benchmarks.md)
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
        if find_onnx_files(directory, candidate):
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


@lru_cache(maxsize=1)
def register_shared_cpu_arena() -> None:
    """One CPU memory arena for every session of the process, registered with ONNX Runtime's
    environment once (sessions opt in with ``session.use_env_allocators``).

    Each session's own arena kept the largest set of tensors that session ever held (a 30 s
    encoder window: +120 MB); with none, glibc's malloc kept freed tensors of many sizes in
    fragments. Shared, the encoder's and the decoder's tensors (which never live at the same
    time) reuse the same chunks: peak RSS on 234 s of speech 291 MB without an arena, 271 MB
    shared, at the same CPU time. Extended by powers of two (ORT's default): growing by the
    size asked for fragmented it to over 500 MB."""
    import onnxruntime as ort

    memory = ort.OrtMemoryInfo(
        "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
    )
    ort.create_and_register_allocator(memory, ort.OrtArenaCfg({"arena_extend_strategy": 0}))


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
    if providers == ["CPUExecutionProvider"]:
        register_shared_cpu_arena()
        options.add_session_config_entry("session.use_env_allocators", "1")
        options.enable_cpu_mem_arena = False  # no arena of its own beside the shared one
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # ORT raises its own exception types for bad files
        raise ModelLoadError(
            f"cannot load {path}: {str(error).splitlines()[0][:200]}; "
            "rebuild with: streamer models build --force"
        ) from error


def provider_name(session) -> str:
    return "CUDA" if session.get_providers()[0] == "CUDAExecutionProvider" else "CPU"

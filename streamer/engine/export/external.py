"""Model files whose weights ONNX Runtime maps from disk instead of copying onto the heap.

Every initializer of at least ``ALIGNMENT`` bytes moves to ``<file>.onnx_data`` (the name
optimum and the Xenova exports use), at an offset that is a multiple of ``ALIGNMENT``. ONNX
Runtime memory-maps an external initializer whose offset is a multiple of the allocation
granularity (4 KiB on Linux and macOS, 64 KiB on Windows) and copies one that is not. Mapped,
the weights cost no heap: nothing is parsed into a protobuf and copied again into a tensor
(the int8 decoder's load peaked at 84 MB of RSS embedded, 57 MB mapped); a weight that is
pre-packed for its MatMul is read once and unmapped, and the token embedding is paged in only
where a Gather reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from streamer.engine.model_info import data_file

ALIGNMENT = 64 * 1024


def move_weights_out(path: Path) -> Path:
    """Rewrite the ONNX file ``path`` with its large initializers in ``data_file(path)``,
    each aligned to ``ALIGNMENT``; returns the data file's path.

    Only the main graph's: ONNX Runtime checks the initializers of subgraphs (the decoder's
    If branches, 1.2 MB of cross-attention weights in int8) with onnx's checker, which refuses
    external data behind a symbolic link, and a model directory may well be one of links."""
    import onnx

    model = onnx.load(str(path))
    target = path.with_name(data_file(path.name))
    with open(target, "wb") as data:
        for tensor in model.graph.initializer:
            if len(tensor.raw_data) >= ALIGNMENT:
                _move_out(tensor, data, target.name)
    onnx.save(model, str(path))
    return target


def _move_out(tensor, data: BinaryIO, location: str) -> None:
    """Append ``tensor``'s bytes to ``data`` at the next aligned offset and point it there."""
    from onnx import TensorProto

    data.write(b"\0" * (-data.tell() % ALIGNMENT))
    offset, length = data.tell(), len(tensor.raw_data)
    data.write(tensor.raw_data)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, str(value)

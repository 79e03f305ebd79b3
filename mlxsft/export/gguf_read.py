"""Read a GGUF file's metadata and tensor table, fast: for the export's own read-back and the base's vocabulary.

    summary = read_gguf(Path("model.gguf"))            # architecture, tensor types, template, EOS / EOT ids
    fields, tensors = read_fields(path, full=lambda key: key.startswith("tokenizer."))

gguf's ``GGUFReader`` builds a numpy view per array element: 5-20 s for SmolLM2's 49k tokens and merges on a
small machine, each time. This walks the same layout (header, key/values, tensor infos; GGUF v2/v3,
little-endian) with ``struct`` in a fraction of a second, materialising only the arrays asked for. The tests
check it against ``GGUFReader``.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from mlxsft.errors import ModelError

STRING, ARRAY = 8, 9
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


@dataclass(frozen=True)
class Field:
    value: Any  # a scalar, a str, a list (arrays asked for in full; strings as bytes), or an array's length
    kind: int  # gguf.GGUFValueType
    sub: Optional[int] = None  # the element type of an array


@dataclass(frozen=True)
class GGUFSummary:
    architecture: str
    tensors: int
    tensor_types: dict[str, int]  # type name -> count
    chat_template: Optional[str]
    eos_id: Optional[int]
    eot_id: Optional[int]
    tokenizer_model: Optional[str]
    vocab_size: int


def read_gguf(path: Path) -> GGUFSummary:
    fields, tensors = read_fields(path)
    types: dict[str, int] = {}
    for _, kind in tensors:
        types[kind] = types.get(kind, 0) + 1

    def get(key: str) -> Any:
        return fields[key].value if key in fields else None

    return GGUFSummary(architecture=get("general.architecture"), tensors=len(tensors), tensor_types=types,
                       chat_template=get("tokenizer.chat_template"), eos_id=get("tokenizer.ggml.eos_token_id"),
                       eot_id=get("tokenizer.ggml.eot_token_id"), tokenizer_model=get("tokenizer.ggml.model"),
                       vocab_size=get("tokenizer.ggml.tokens") or 0)


def read_fields(path: Path, full: Callable[[str], bool] = lambda key: False
                ) -> tuple[dict[str, Field], list[tuple[str, str]]]:
    """({key: Field}, [(tensor name, type name)]). Arrays are lengths unless ``full(key)``."""
    import gguf

    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            reader = _Cursor(buf)
            if bytes(buf[:4]) != b"GGUF":
                raise ModelError(f"{path}: not a GGUF file (bad magic bytes)")
            reader.pos = 4
            reader.take("I")  # version
            n_tensors, n_kv = reader.take("Q"), reader.take("Q")
            fields: dict[str, Field] = {}
            for _ in range(n_kv):
                key = reader.string()
                fields[key] = reader.field(reader.take("I"), full(key))
            tensors = []
            for _ in range(n_tensors):
                name = reader.string()
                n_dims = reader.take("I")
                reader.pos += 8 * n_dims
                tensors.append((name, gguf.GGMLQuantizationType(reader.take("I")).name))
                reader.take("Q")  # data offset
    except (struct.error, ValueError, KeyError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: corrupt GGUF file ({e})") from None
    return fields, tensors


class _Cursor:
    def __init__(self, buf: Any):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str) -> Any:
        value = struct.unpack_from("<" + fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def raw_string(self) -> bytes:
        n = self.take("Q")
        self.pos += n
        return bytes(self.buf[self.pos - n:self.pos])

    def string(self) -> str:
        return self.raw_string().decode("utf-8")

    def field(self, kind: int, full: bool) -> Field:
        if kind == STRING:
            return Field(self.string(), kind)
        if kind != ARRAY:
            return Field(self.take(SCALARS[kind]), kind)
        sub, count = self.take("I"), self.take("Q")
        if sub == STRING:
            if full:
                return Field([self.raw_string() for _ in range(count)], kind, sub)
            for _ in range(count):
                n = self.take("Q")
                self.pos += n
            return Field(count, kind, sub)
        if sub == ARRAY:
            raise ValueError("nested arrays")
        dtype = np.dtype("<" + SCALARS[sub])
        start, self.pos = self.pos, self.pos + count * dtype.itemsize
        if full:
            return Field(np.frombuffer(self.buf, dtype=dtype, count=count, offset=start).tolist(), kind, sub)
        return Field(count, kind, sub)

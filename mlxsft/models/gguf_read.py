"""Read a GGUF file's metadata and tensor table, fast and checked: for the GGUF import, the export's read-back
and the base's vocabulary.

    summary = read_gguf(Path("model.gguf"))            # architecture, tensor types, template, EOS / EOT ids
    fields, tensors = read_fields(path, full=lambda key: key.startswith("tokenizer."))
    sum(t.elements for t in tensors)                   # what de-quantizing it would produce

gguf's ``GGUFReader`` builds a numpy view per array element: 5-20 s for SmolLM2's 49k tokens and merges on a
small machine, each time. This walks the same layout (header, key/values, tensor infos; GGUF v2/v3,
little-endian) with ``struct`` in a fraction of a second, materialising only the arrays asked for. The tests
check it against ``GGUFReader``.

Every length, count and offset the file declares is checked against the file's size before it is used, so a
truncated or crafted file (a string "of 2^63 bytes", 2^40 tensors, a tensor past the end) is one
``ModelError`` line naming the file and what is wrong, never a traceback or a huge allocation.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from mlxsft.errors import ModelError

STRING, ARRAY = 8, 9
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
MAX_DIMS = 4  # GGML_MAX_DIMS
DEFAULT_ALIGNMENT = 32
# the smallest encodings: a key/value (key length, empty key, type, one-byte value), a tensor info (name
# length, empty name, n_dims, type, offset): a declared count that cannot fit in the file is refused at once
MIN_KV, MIN_TENSOR = 8 + 4 + 1, 8 + 4 + 4 + 8


@dataclass(frozen=True)
class Field:
    value: Any  # a scalar, a str, a list (arrays asked for in full; strings as bytes), or an array's length
    kind: int  # gguf.GGUFValueType
    sub: Optional[int] = None  # the element type of an array


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type: str  # gguf.GGMLQuantizationType name: F32, Q4_K, ...
    shape: tuple[int, ...]  # GGUF order (innermost first)
    offset: int  # absolute, in the file
    nbytes: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


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
    for t in tensors:
        types[t.type] = types.get(t.type, 0) + 1

    def get(key: str) -> Any:
        return fields[key].value if key in fields else None

    return GGUFSummary(architecture=get("general.architecture"), tensors=len(tensors), tensor_types=types,
                       chat_template=get("tokenizer.chat_template"), eos_id=get("tokenizer.ggml.eos_token_id"),
                       eot_id=get("tokenizer.ggml.eot_token_id"), tokenizer_model=get("tokenizer.ggml.model"),
                       vocab_size=get("tokenizer.ggml.tokens") or 0)


def read_fields(path: Path, full: Callable[[str], bool] = lambda key: False
                ) -> tuple[dict[str, Field], list[TensorInfo]]:
    """({key: Field}, [TensorInfo]). Arrays are lengths unless ``full(key)``."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise ModelError(f"{path}: not a GGUF file (bad magic bytes)")
            size = f.seek(0, 2)
            if size < 24:
                raise _Corrupt(f"{size} bytes, too short for a GGUF header")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _read(buf, size, full)
    except _Corrupt as e:
        raise ModelError(f"{path}: corrupt GGUF file ({e})") from None
    except (struct.error, ValueError, KeyError, UnicodeDecodeError, OverflowError, MemoryError) as e:
        raise ModelError(f"{path}: corrupt GGUF file ({type(e).__name__}: {e})") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read the GGUF file ({e.strerror or e})") from None


class _Corrupt(Exception):
    """What is wrong with the file, for the one-line ModelError."""


def _read(buf: Any, size: int, full: Callable[[str], bool]) -> tuple[dict[str, Field], list[TensorInfo]]:
    import gguf

    reader = _Cursor(buf, size)
    reader.pos = 4
    version = reader.take("I")
    if version not in (2, 3):
        endian = " (a big-endian file?)" if version & 0xFFFF == 0 else ""
        raise _Corrupt(f"GGUF version {version} is not supported, only 2 and 3{endian}")
    n_tensors, n_kv = reader.take("Q"), reader.take("Q")
    reader.need(n_kv * MIN_KV, f"{n_kv} key/values (at least {MIN_KV} bytes each)")
    fields: dict[str, Field] = {}
    for _ in range(n_kv):
        key = reader.string("a key")
        fields[key] = reader.field(reader.take("I"), full(key), key)
    reader.need(n_tensors * MIN_TENSOR, f"{n_tensors} tensors (at least {MIN_TENSOR} bytes each)")
    infos = []
    for _ in range(n_tensors):
        name = reader.string("a tensor name")
        n_dims = reader.take("I")
        if n_dims > MAX_DIMS:
            raise _Corrupt(f"tensor '{name}' has {n_dims} dimensions (at most {MAX_DIMS})")
        shape = tuple(reader.take("Q") for _ in range(n_dims))
        kind = reader.take("I")
        try:
            qtype = gguf.GGMLQuantizationType(kind)
        except ValueError:
            raise _Corrupt(f"tensor '{name}' has an unknown type {kind}") from None
        infos.append((name, qtype, shape, reader.take("Q")))

    alignment = fields["general.alignment"].value if "general.alignment" in fields else DEFAULT_ALIGNMENT
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment & (alignment - 1):
        raise _Corrupt(f"general.alignment {alignment!r} is not a power of two")
    data_start = -(-reader.pos // alignment) * alignment
    tensors = []
    for name, qtype, shape, offset in infos:
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        elements = math.prod(shape)
        if shape and shape[0] % block:
            raise _Corrupt(f"tensor '{name}': a row of {shape[0]} is not a whole number of {qtype.name} blocks")
        nbytes = elements // block * type_size
        start = data_start + offset
        if start + nbytes > size:
            raise _Corrupt(f"tensor '{name}' ({nbytes} bytes at offset {start}) runs past the end of the file "
                           f"({size} bytes)")
        tensors.append(TensorInfo(name, qtype.name, shape, start, nbytes))
    return fields, tensors


class _Cursor:
    def __init__(self, buf: Any, size: int):
        self.buf, self.size, self.pos = buf, size, 0

    def need(self, n: int, what: str) -> None:
        """``n`` more bytes must be in the file (checked before any read, skip or allocation)."""
        if self.pos + n > self.size:
            raise _Corrupt(f"{what} at offset {self.pos}: past the end of the file ({self.size} bytes)")

    def take(self, fmt: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n, f"a {n}-byte value")
        value = struct.unpack_from("<" + fmt, self.buf, self.pos)[0]
        self.pos += n
        return value

    def raw_string(self, what: str = "a string") -> bytes:
        n = self.take("Q")
        self.need(n, f"{what}, a string of {n} bytes")
        self.pos += n
        return bytes(self.buf[self.pos - n:self.pos])

    def string(self, what: str = "a string") -> str:
        return self.raw_string(what).decode("utf-8")

    def skip_string(self, what: str) -> None:
        n = self.take("Q")
        self.need(n, f"{what}, a string of {n} bytes")
        self.pos += n

    def field(self, kind: int, full: bool, key: str) -> Field:
        what = f"the value of '{key}'"
        if kind == STRING:
            return Field(self.string(what), kind)
        if kind != ARRAY:
            if kind not in SCALARS:
                raise _Corrupt(f"'{key}' has an unknown value type {kind}")
            return Field(self.take(SCALARS[kind]), kind)
        sub, count = self.take("I"), self.take("Q")
        if sub == STRING:
            self.need(count * 8, f"{what}, an array of {count} strings")
            if full:
                return Field([self.raw_string(what) for _ in range(count)], kind, sub)
            for _ in range(count):
                self.skip_string(what)
            return Field(count, kind, sub)
        if sub not in SCALARS:
            raise _Corrupt(f"'{key}' is an array of unknown (or nested) type {sub}")
        dtype = np.dtype("<" + SCALARS[sub])
        self.need(count * dtype.itemsize, f"{what}, an array of {count} values")
        start, self.pos = self.pos, self.pos + count * dtype.itemsize
        if full:
            return Field(np.frombuffer(self.buf, dtype=dtype, count=count, offset=start).tolist(), kind, sub)
        return Field(count, kind, sub)

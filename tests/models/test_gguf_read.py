"""Crafted GGUF files: every declared length, count and offset is checked against the file size (one clean
line, no traceback, no huge allocation), and the float32 de-quantization is refused up front when it cannot
fit in memory."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from mlxsft.errors import ModelError
from mlxsft.models.gguf_read import TensorInfo, read_fields
from tests.helpers import run_cli
from tests.models.conftest import leftovers

F32, STRING, UINT32 = 0, 8, 4


def text(b: bytes, n: int | None = None) -> bytes:
    """A GGUF string: its uint64 length (``n`` to lie about it), then the bytes."""
    return struct.pack("<Q", len(b) if n is None else n) + b


def kv_string(key: bytes, value: bytes, n: int | None = None) -> bytes:
    return text(key) + struct.pack("<I", STRING) + text(value, n)


def tensor_info(name: bytes, shape: tuple[int, ...], kind: int = F32, offset: int = 0) -> bytes:
    return text(name) + struct.pack(f"<I{len(shape)}QIQ", len(shape), *shape, kind, offset)


def gguf(kvs: list[bytes], infos: list[bytes], data: bytes = b"", *, n_kv: int | None = None,
         n_tensors: int | None = None) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", 3, len(infos) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(infos)
    return body + b"\0" * (-len(body) % 32) + data


ARCH = kv_string(b"general.architecture", b"llama")
VALID = gguf([ARCH], [tensor_info(b"w", (4,))], struct.pack("<4f", 1, 2, 3, 4))

CRAFTED = {
    "string of 2^63 bytes": (gguf([kv_string(b"general.name", b"x", 2**63)], []), "9223372036854775808 bytes"),
    "string of 2^64-1 bytes": (gguf([kv_string(b"general.name", b"x", 2**64 - 1)], []), "past the end"),
    "key of 2^63 bytes": (gguf([text(b"k", 2**63)], []), "a key"),
    "2^40 tensors": (gguf([ARCH], [], n_tensors=2**40), "1099511627776 tensors"),
    "2^60 key/values": (gguf([ARCH], [], n_kv=2**60), "key/values"),
    "array of 2^60 ints": (gguf([text(b"a") + struct.pack("<IIQ", 9, UINT32, 2**60)], []), "array of"),
    "array of 2^60 strings": (gguf([text(b"a") + struct.pack("<IIQ", 9, STRING, 2**60)], []), "strings"),
    "tensor past the end": (gguf([ARCH], [tensor_info(b"w", (4,), offset=64)], b"\0" * 16), "runs past the end"),
    "tensor of 2^62 x 2^62": (gguf([ARCH], [tensor_info(b"w", (2**62, 2**62))]), "runs past the end"),
    "cut short": (VALID[:-20], "past the end"),
    "unknown tensor type": (gguf([ARCH], [tensor_info(b"w", (4,), kind=999)]), "unknown type 999"),
    "9 dimensions": (gguf([ARCH], [tensor_info(b"w", (1,) * 9)]), "9 dimensions"),
    "alignment 0": (gguf([text(b"general.alignment") + struct.pack("<II", UINT32, 0)], []), "alignment"),
    "header only": (b"GGUF\3\0\0\0", "too short"),
}


def write(tmp_path: Path, data: bytes, name: str = "m.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_valid_file_reads_as_gguf_reads_it(tmp_path):
    import gguf as gguf_py

    path = write(tmp_path, VALID)
    fields, tensors = read_fields(path)
    assert fields["general.architecture"].value == "llama"
    assert tensors == [TensorInfo("w", "F32", (4,), len(VALID) - 16, 16)] and tensors[0].elements == 4
    (ref,) = gguf_py.GGUFReader(path).tensors  # the crafted layout is the real one
    assert (ref.name, ref.tensor_type.name, ref.data_offset, int(ref.n_bytes)) == ("w", "F32", len(VALID) - 16, 16)
    assert ref.data.tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_files_are_one_clean_error(tmp_path, case):
    data, expected = CRAFTED[case]
    path = write(tmp_path, data)
    with pytest.raises(ModelError) as e:
        read_fields(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: corrupt GGUF file (") and "\n" not in msg and expected in msg, msg


def test_not_gguf_and_empty(tmp_path):
    for data in (b"", b"PK\3\4 not a gguf"):
        with pytest.raises(ModelError, match="not a GGUF file"):
            read_fields(write(tmp_path, data))


def test_import_checks_the_file_before_transformers_reads_it(tmp_path, monkeypatch):
    import transformers

    from mlxsft.models.from_gguf import gguf_to_hf

    def never(*a, **kw):
        raise AssertionError("transformers was asked to read a file that failed the checks")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", never)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", never)
    with pytest.raises(ModelError, match="9223372036854775808 bytes"):
        gguf_to_hf(write(tmp_path, CRAFTED["string of 2^63 bytes"][0]), tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_dequantization_is_refused_when_it_cannot_fit(tmp_path, monkeypatch):
    import transformers

    from mlxsft.models import from_gguf

    def never(*a, **kw):
        raise AssertionError("de-quantization started")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", never)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", never)
    # 2^28 Q4_0 weights: 151 MB of (sparse) file, 1 GiB in float32, 2 GiB at the measured peak
    data = gguf([ARCH], [tensor_info(b"w", (2**20, 2**8), kind=2)])
    path = write(tmp_path, data)
    with open(path, "r+b") as f:
        f.truncate(len(data) + 2**28 // 32 * 18)
    monkeypatch.setattr(from_gguf, "available_memory_bytes", lambda: 2**30)
    with pytest.raises(ModelError) as e:
        from_gguf.gguf_to_hf(path, tmp_path / "hf")
    assert str(e.value) == (f"{path}: de-quantizing it to float32 needs about 2.1 GB of memory, 1.1 GB is "
                            "available (close other programs, or use a smaller model)")
    assert not (tmp_path / "hf").exists()
    monkeypatch.setattr(from_gguf, "available_memory_bytes", lambda: None)  # unknown: no refusal
    from_gguf.check_gguf(path)


def test_available_memory_is_known_here():
    from mlxsft.models.from_gguf import available_memory_bytes

    free = available_memory_bytes()
    assert free is None or free > 0


def test_cli_on_a_crafted_gguf(tmp_path):
    path = write(tmp_path, CRAFTED["string of 2^63 bytes"][0])
    r = run_cli("convert", "--model", str(path), "--out", str(tmp_path / "out"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "corrupt GGUF file" in lines[0], r.stderr
    assert "Traceback" not in r.stderr + r.stdout and leftovers(tmp_path, "out") == []

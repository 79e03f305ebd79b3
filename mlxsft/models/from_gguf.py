"""GGUF -> a temporary Hugging Face folder (fp32 safetensors, config, tokenizer), via transformers.

    from mlxsft.models.from_gguf import gguf_to_hf
    gguf_to_hf(Path("model.Q4_K_M.gguf"), Path("/tmp/hf"))   # then convert that folder like any other

transformers de-quantizes every GGUF tensor type (Q4_K, Q4_1, ...) and maps llama.cpp names and layouts
back to its own (e.g. it un-permutes llama's q/k rows and undoes Gemma's +1 on norm weights), so the folder
is an ordinary HF checkpoint that mlx-lm converts as usual. The tokenizer and its chat template come from
the GGUF metadata; a GGUF without a template (Gemma 3 base) yields a tokenizer without one.

Before transformers reads anything, ``gguf_read`` checks the file's every length, count and offset against
its size, and the memory that de-quantizing to float32 will take is checked against what is available:
a crafted or cut file, or a model too large for this machine, fails in milliseconds with one line.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from mlxsft.errors import ModelError
from mlxsft.machine import available_memory_bytes
from mlxsft.models.checks import first_line

Progress = Callable[[str, float], None]
# peak memory of gguf_to_hf / float32 size of the tensors: measured 1.7 on SmolLM2-135M (932 MB for 538 MB;
# transformers holds the de-quantized tensors and the model built from them), rounded up
PEAK_PER_FP32_BYTE = 2


def gguf_to_hf(gguf: Path, out: Path, progress: Progress | None = None) -> Path:
    check_gguf(gguf)  # before the (seconds-long) imports
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report = progress or (lambda stage, frac: None)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet_transformers(report):
            report("reading the GGUF tokenizer", 0.0)
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            report("de-quantizing GGUF tensors", 0.2)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except ValueError as e:
        if "architecture" in str(e) and "not supported" in str(e):
            raise ModelError(f"{gguf}: unsupported GGUF architecture ({first_line(e)})") from None
        raise ModelError(f"{gguf}: corrupt or unreadable GGUF file ({first_line(e)})") from None
    except (OSError, KeyError, IndexError, EOFError, struct.error, TypeError, OverflowError) as e:
        raise ModelError(f"{gguf}: corrupt or unreadable GGUF file ({first_line(e)})") from None
    except MemoryError:
        raise ModelError(f"{gguf}: out of memory while de-quantizing it to float32") from None

    report("writing a temporary HF checkpoint", 0.9)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # safetensors refuses shared tensors; mlx-lm re-ties from the config
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    # model.save_pretrained refuses models loaded from GGUF ("not serializable"); write the config ourselves,
    # without the GGUF quantization_config, which would make loaders expect quantized tensors.
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config.pop("_name_or_path", None)
    config["architectures"] = [type(model).__name__]
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
    if model.generation_config is not None:
        model.generation_config.save_pretrained(out)  # carries eos_token_id(s) that mlx-lm stops on
    tokenizer.save_pretrained(out)
    report("GGUF read", 1.0)
    return out


def check_gguf(gguf: Path) -> None:
    """What must hold before transformers reads ``gguf``: a well-formed file (every length, count and offset
    within its size) whose float32 de-quantization fits in the memory available."""
    from mlxsft.models.gguf_read import read_fields

    _, tensors = read_fields(gguf)
    check_memory(gguf, PEAK_PER_FP32_BYTE * 4 * sum(t.elements for t in tensors))


def check_memory(gguf: Path, need: int) -> None:
    """Refuse to start a de-quantization that cannot fit: it would swap for minutes, then be killed."""
    free = available_memory_bytes()
    if free is not None and need > free:
        raise ModelError(f"{gguf}: de-quantizing it to float32 needs about {need / 1e9:.1f} GB of memory, "
                         f"{free / 1e9:.1f} GB is available (close other programs, or use a smaller model)")


@contextmanager
def _quiet_transformers(report: Progress) -> Iterator[None]:
    """Run transformers' GGUF loader silently, with our progress, and about twice as fast.

    Three module attributes are swapped for the duration of the call and restored after it:
    - ``tqdm`` of transformers' GGUF module: it draws a raw tqdm bar over the tensors (not behind its own
      progress-bar switch) and the library must not print, so the bar feeds our callback instead;
    - ``gguf.GGUFReader``: transformers parses the same file three times (tokenizer, config, tensors),
      ~2 s each for SmolLM2; one memory-mapped, read-only reader serves all three;
    - ``gguf.get_tensor_name_map``: rebuilt for every submodule (397 times for SmolLM2, ~1/3 of the load
      time); it is a pure function of (arch, layers), so it is memoized.
    Measured on SmolLM2-135M, 2 CPU cores: 31 s -> 15 s.
    """
    import functools

    import gguf
    import transformers
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    def tensors(iterable, **_):
        items = list(iterable)
        for i, item in enumerate(items):
            if i % 8 == 0:
                report("de-quantizing GGUF tensors", 0.2 + 0.7 * i / max(len(items), 1))
            yield item

    readers: dict[tuple[str, str], object] = {}
    saved_reader, saved_name_map, saved_tqdm = gguf.GGUFReader, gguf.get_tensor_name_map, gguf_utils.tqdm

    def shared_reader(path, mode="r"):
        key = (str(path), mode)
        if key not in readers:
            readers[key] = saved_reader(path, mode)
        return readers[key]

    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    gguf_utils.tqdm = tensors
    gguf.GGUFReader = shared_reader
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(saved_name_map)
    try:
        yield
    finally:
        gguf_utils.tqdm, gguf.GGUFReader, gguf.get_tensor_name_map = saved_tqdm, saved_reader, saved_name_map
        readers.clear()
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()

"""GGUF -> a temporary Hugging Face folder (fp32 safetensors, config, tokenizer), via transformers.

    from mlxsft.models.from_gguf import gguf_to_hf
    gguf_to_hf(Path("model.Q4_K_M.gguf"), Path("/tmp/hf"))   # then convert that folder like any other

transformers de-quantizes every GGUF tensor type (Q4_K, Q4_1, ...) and maps llama.cpp names and layouts
back to its own (e.g. it un-permutes llama's q/k rows and undoes Gemma's +1 on norm weights), so the folder
is an ordinary HF checkpoint that mlx-lm converts as usual. The tokenizer and its chat template come from
the GGUF metadata; a GGUF without a template (Gemma 3 base) yields a tokenizer without one.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from mlxsft.errors import ModelError
from mlxsft.models.checks import first_line

Progress = Callable[[str, float], None]


def gguf_to_hf(gguf: Path, out: Path, progress: Progress | None = None) -> Path:
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
    except (OSError, KeyError, IndexError, EOFError, struct.error, TypeError) as e:
        raise ModelError(f"{gguf}: corrupt or unreadable GGUF file ({first_line(e)})") from None

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


@contextmanager
def _quiet_transformers(report: Progress) -> Iterator[None]:
    """Silence transformers' logging and route its GGUF tqdm bar into our progress callback.

    The library never prints; transformers draws a raw ``tqdm`` over the GGUF tensors (not its own
    progress-bar switch), so we swap that module's ``tqdm`` name for the duration of the call.
    """
    import transformers
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    def tensors(iterable, **_):
        items = list(iterable)
        for i, item in enumerate(items):
            if i % 8 == 0:
                report("de-quantizing GGUF tensors", 0.2 + 0.7 * i / max(len(items), 1))
            yield item

    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    saved = gguf_utils.tqdm
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    gguf_utils.tqdm = tensors
    try:
        yield
    finally:
        gguf_utils.tqdm = saved
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()

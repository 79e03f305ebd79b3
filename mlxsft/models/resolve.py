"""Turn what the user typed (``--model SPEC``) into a ``ModelSource``: one resolver for every command.

    resolve_model("smollm2-135m-instruct")        # alias of an embedded model -> its .gguf
    resolve_model("./my-model")                   # local Hugging Face or MLX folder
    resolve_model("model.Q4_K_M.gguf")            # GGUF file
    resolve_model("HuggingFaceTB/SmolLM2-135M")   # Hub id (through the huggingface_hub cache)

Order: alias, then an existing path, then ``org/name`` as a Hub id. Anything else is a one-line
``ModelError``. Resolving is cheap (headers only); conversion happens in ``convert.py``. A Hub download
fetches the repo's Python files only with ``trust_remote_code``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlxsft.errors import ModelError
from mlxsft.models import checks
from mlxsft.models.aliases import EMBEDDED_ALIASES


@dataclass(frozen=True)
class ModelSource:
    spec: str    # what the user typed
    kind: str    # where it came from: 'alias' | 'hf' | 'mlx' | 'gguf' | 'hub'
    path: Path   # local folder, or the .gguf file
    name: str    # display name, e.g. 'SmolLM2-135M-Instruct'
    format: str = "hf"  # what is on disk: 'hf' | 'mlx' | 'gguf' (a Hub repo may hold either folder kind)

    @property
    def is_mlx(self) -> bool:
        return self.format == "mlx"


def resolve_model(spec: str, *, trust_remote_code: bool = False) -> ModelSource:
    spec = str(spec).strip()
    if not spec:
        raise ModelError("empty model spec", hint=f"aliases: {', '.join(EMBEDDED_ALIASES)}")
    alias = EMBEDDED_ALIASES.get(spec.lower())
    if alias is not None:
        return ModelSource(spec, "alias", alias.locate(), alias.name, "gguf")

    path = Path(spec).expanduser()
    if path.exists():
        return _local(spec, path)

    from mlxsft.models.hub import download, looks_like_repo_id

    if looks_like_repo_id(spec):
        folder = download(spec, trust_remote_code=trust_remote_code)
        fmt = _folder_format(folder)
        return ModelSource(spec, "hub", folder, spec.split("/")[-1], fmt)
    raise ModelError(f"{spec}: no such file or folder, and not an alias ({', '.join(EMBEDDED_ALIASES)}) "
                     "or a Hub id (org/name)")


def _local(spec: str, path: Path) -> ModelSource:
    path = path.resolve()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelError(f"{path}: expected a model folder or a .gguf file")
        checks.check_gguf_header(path)
        return ModelSource(spec, "gguf", path, path.stem, "gguf")
    if not (path / "config.json").is_file():
        ggufs = sorted(path.glob("*.gguf"))
        if ggufs:
            raise ModelError(f"{path}: no config.json; to use a GGUF file pass it directly, e.g. {ggufs[0]}")
    fmt = _folder_format(path)
    return ModelSource(spec, fmt, path, path.name, fmt)


def _folder_format(folder: Path) -> str:
    config = checks.read_config(folder)
    checks.safetensors_files(folder)
    return "mlx" if checks.is_mlx_folder(folder, config) else "hf"

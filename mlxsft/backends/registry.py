"""Backend names, once: what each needs installed, its install hint, its parts, and the BLAS it wants.

    from mlxsft.backends import registry
    name = registry.resolve("auto")                 # "mlx" or "torch", as `mlxsft doctor` explains
    registry.choose_blas(name)                      # the CLI, before mlx is imported: OpenBLAS for MLX on Linux
    backend = registry.get_backend(name, cfg, emit)  # mlxsft.backends.base.Backend (training)
    gen = registry.part(name, "generate")           # load_views, CachedGenerator, generate_answers_batch, ...
    nll = registry.part(name, "validation").split_nll

Nothing else turns a backend name into a module, so a missing dependency always gives the same one-line
error with the same hint, and the BLAS choice follows the backend the resolved config asks for (a
``--config`` file, a flag, or a resumed run's own config) instead of a guess from the command line.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable

from mlxsft.errors import ConfigError, MlxsftError

if TYPE_CHECKING:
    from mlxsft.backends.base import Backend
    from mlxsft.config import Config


@dataclass(frozen=True)
class BackendSpec:
    name: str
    package: str  # mlxsft.backends.<name>: backend, generate, validation, ...
    factory: str  # the Backend class in <package>.backend
    needs: tuple[str, ...]  # modules imported first, so a missing one fails here with the hint
    install: str  # what to pip install
    wants_openblas: bool  # MLX's CPU path on Linux: ~60x faster matmuls; torch's own BLAS is faster for torch


BACKENDS: dict[str, BackendSpec] = {
    "mlx": BackendSpec("mlx", "mlxsft.backends.mlx", "MLXBackend", ("mlx.core", "mlx_lm"), "mlxsft", True),
    "torch": BackendSpec("torch", "mlxsft.backends.torch", "TorchBackend", ("torch", "transformers", "peft"),
                         "mlxsft[torch]", False),
}
_DEPENDENCIES = ("mlx", "mlx_lm", "torch", "transformers", "peft", "accelerate")


def spec(name: str) -> BackendSpec:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigError(f"backend: {name!r} is not one of {', '.join(BACKENDS)}") from None


def resolve(name: str) -> str:
    """``auto`` to the backend this machine trains fastest on (``mlxsft.doctor.pick_backend``)."""
    if name == "auto":
        from mlxsft.doctor import pick_backend

        return pick_backend()[0]
    return spec(name).name


def part(name: str, module: str) -> ModuleType:
    """``mlxsft.backends.<name>.<module>``, with the install hint when the backend's dependencies are missing."""
    s = spec(name)
    try:
        for dep in s.needs:
            importlib.import_module(dep)
        return importlib.import_module(f"{s.package}.{module}")
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in _DEPENDENCIES:
            raise MlxsftError(f"the {name} backend needs {e.name}", hint=f"pip install '{s.install}'") from None
        raise


def get_backend(name: str, cfg: "Config", emit: Callable[[str, dict], None]) -> "Backend":
    """The training backend object for ``mlx`` or ``torch`` (``auto``: see ``resolve``)."""
    s = spec(resolve(name))
    return getattr(part(s.name, "backend"), s.factory)(cfg, emit)


def choose_blas(name: str, argv: Any = None) -> None:
    """Before mlx is imported: re-execute the command with OpenBLAS preloaded when ``name`` runs on MLX's
    CPU path and it is installed (Linux); torch keeps its own BLAS (a preloaded OpenBLAS slows it ~10x)."""
    from mlxsft.machine import ensure_fast_blas

    if spec(resolve(name)).wants_openblas:
        ensure_fast_blas(argv)


def backend_of(explicit: Any, run: Any) -> str:
    """The backend a command on a run folder uses: ``--backend`` when given, else the one the run trained on
    (``run_info.json``), else mlx."""
    if explicit:
        return resolve(explicit)
    if run:
        from pathlib import Path

        from mlxsft.runs.read import run_backend

        if Path(run).is_dir():
            return run_backend(Path(run))
    return "mlx"

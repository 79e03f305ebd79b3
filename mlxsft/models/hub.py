"""Fetch a Hugging Face Hub model into the local Hub cache, with one-line errors.

    from mlxsft.models.hub import download, looks_like_repo_id
    folder = download("HuggingFaceTB/SmolLM2-135M-Instruct")

huggingface_hub does the work, so its cache (``HF_HOME`` / ``HF_HUB_CACHE``) and ``HF_HUB_OFFLINE`` are
honoured as everywhere else: a model already in the cache resolves offline. Python files (a repo's own model
code, which mlx-lm runs when config.json names a ``model_file``) are fetched only with ``trust_remote_code``.
"""

from __future__ import annotations

from pathlib import Path

from mlxsft.errors import ModelError


def looks_like_repo_id(spec: str) -> bool:
    """``org/name`` with Hub-legal characters (bare names are treated as paths or aliases, not Hub ids)."""
    if spec.count("/") != 1 or spec.startswith((".", "/", "~")) or spec.endswith(".gguf"):
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(spec)
    except HFValidationError:
        return False
    return True


def allow_patterns(trust_remote_code: bool = False) -> list[str]:
    """The files mlx-lm itself would fetch; its ``*.py`` (model code) only when remote code is trusted."""
    from mlx_lm.utils import DEFAULT_ALLOW_PATTERNS

    return [p for p in DEFAULT_ALLOW_PATTERNS if trust_remote_code or not p.endswith(".py")]


def download(repo_id: str, *, trust_remote_code: bool = False) -> Path:
    """The local snapshot folder of ``repo_id`` (config, tokenizer and safetensors; code only if trusted)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError)

    from mlxsft.models.aliases import EMBEDDED_ALIASES

    aliases = ", ".join(EMBEDDED_ALIASES)
    try:
        return Path(snapshot_download(repo_id, allow_patterns=allow_patterns(trust_remote_code)))
    except GatedRepoError:  # a subclass of RepositoryNotFoundError: test it first
        raise ModelError(f"Hub model '{repo_id}' is gated: accept its licence on huggingface.co and run "
                         "`hf auth login`") from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise ModelError(f"Hub model '{repo_id}' not found (check the id; private models need `hf auth login`)"
                         ) from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, OSError):
        # No network, HF_HUB_OFFLINE=1 without a cached copy, proxy or server errors: all "unreachable".
        why = "HF_HUB_OFFLINE is set and it is not in the local cache" if _offline() else "no connection"
        raise ModelError(f"cannot get Hub model '{repo_id}': the Hugging Face Hub is unreachable ({why}); "
                         f"try an embedded model: {aliases}") from None
    except Exception as e:
        # huggingface_hub raises transport-level exceptions of its HTTP client (httpx) directly; they
        # share no base class we can import without depending on that client, so match them by module.
        if type(e).__module__.split(".")[0].rstrip("0123456789") in ("httpx", "httpcore", "requests", "urllib3"):
            raise ModelError(f"cannot get Hub model '{repo_id}': the Hugging Face Hub is unreachable "
                             f"({type(e).__name__}); try an embedded model: {aliases}") from None
        raise


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)

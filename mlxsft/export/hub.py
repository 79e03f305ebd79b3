"""``mlxsft export … --push-to-hub REPO``: upload a finished export folder to the Hugging Face Hub.

    check_push("me/my-run")                                   # before the export: the repo id and a token
    url = push_export(result.out, "me/my-run", files=result.files, private=True)

huggingface_hub does the work (``HfApi.create_repo`` with ``exist_ok``, then ``upload_folder`` of exactly the
export's files in one commit) and finds the token itself: ``HF_TOKEN``, else the login ``hf auth login``
stored. mlxsft never reads, passes, prints or writes the token; the card the export wrote names no local path.
The upload runs after the export's all-or-nothing rename, so when it fails (offline, a refused token, a repo
that is not yours) the export stays complete on disk and the error is one line saying so. ``private`` applies
when the repo is created; an existing repo keeps its visibility.
"""

from __future__ import annotations

from pathlib import Path

from mlxsft.errors import MlxsftError
from mlxsft.models.checks import first_line


class PushError(MlxsftError):
    """The Hub upload cannot start or failed."""


def check_push(repo: str) -> None:
    """Milliseconds, before anything is exported: a well-formed repo id and a token to push with."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as e:
        raise PushError(f"--push-to-hub: '{repo}' is not a Hub repo id ({first_line(e)})",
                        hint="use owner/name, e.g. me/my-run") from None
    if get_token() is None:
        raise PushError("--push-to-hub: no Hugging Face token",
                        hint="set HF_TOKEN, or log in once with `hf auth login`")


def push_export(folder: Path, repo: str, *, files: list[str], private: bool = False) -> str:
    """Upload ``files`` of the export ``folder`` to the model repo ``repo`` (created if missing): its URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi()  # no token argument: huggingface_hub reads HF_TOKEN or the stored login itself
    where = f"--push-to-hub {repo}: "
    kept = f"the export is complete in {folder}"
    try:
        url = api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo, repo_type="model", folder_path=str(folder), allow_patterns=list(files),
                          commit_message=f"Upload {folder.name} (mlxsft export)")
    except OfflineModeIsEnabled:
        raise PushError(f"{where}HF_HUB_OFFLINE is set, so the Hub cannot be reached; {kept}") from None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        why = {401: "the token was refused",
               403: "the token may not write to this repo"}.get(status, first_line(e))
        raise PushError(f"{where}{why}; {kept}") from None
    except (OSError, *_transport_errors()) as e:
        raise PushError(f"{where}cannot reach the Hugging Face Hub ({first_line(e) or type(e).__name__}); {kept}",
                        hint=f"check the connection, then: hf upload {repo} {folder}") from None
    return str(url)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's own connection errors (huggingface_hub has used requests, httpx and httpx2)."""
    import importlib

    errors: list[type[BaseException]] = []
    for module, name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)

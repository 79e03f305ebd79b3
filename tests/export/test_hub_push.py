"""``mlxsft export … --push-to-hub REPO``: offline it is one error line and the export stays on disk; with the
Hub's API replaced by recorders, exactly the export's files are sent, to the asked repo, and the token is
neither passed by mlxsft nor written into any file or output."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli

TOKEN = "hf_mlxsftTestTokenThatMustNeverBeWritten"


def written_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file())


def test_offline_push_is_one_line_and_keeps_the_export(mlx_llama_run, tmp_path):
    out = tmp_path / "peft"
    r = run_cli("export", "--run", str(mlx_llama_run), "--format", "peft", "--out", str(out),
                "--push-to-hub", "someone/tiny-peft", env={"HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --push-to-hub someone/tiny-peft:"), r.stderr
    assert "HF_HUB_OFFLINE" in lines[0] and f"the export is complete in {out}" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "adapter_config.json",
                                                     "adapter_model.safetensors", "chat_template.jinja"]
    assert TOKEN not in r.stdout + r.stderr and TOKEN not in written_text(out)


def test_no_token_is_refused_before_the_export(mlx_llama_run, tmp_path):
    r = run_cli("export", "--run", str(mlx_llama_run), "--format", "peft", "--out", str(tmp_path / "peft"),
                "--push-to-hub", "someone/tiny-peft", env={"HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf-home")})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "no Hugging Face token" in r.stderr and "HF_TOKEN" in r.stderr and "hf auth login" in r.stderr
    assert not (tmp_path / "peft").exists()
    r = run_cli("export", "--run", str(mlx_llama_run), "--format", "peft", "--out", str(tmp_path / "peft"),
                "--push-to-hub", "not a repo")
    assert r.returncode == 1 and "is not a Hub repo id" in r.stderr and not (tmp_path / "peft").exists()


@pytest.fixture
def hub_calls(monkeypatch):
    """HfApi's two methods replaced: what they were asked, and the files the upload would have read."""
    from huggingface_hub import HfApi

    calls: dict = {}

    def create_repo(self, repo_id, **kw):
        calls["create_repo"] = dict(kw, repo_id=repo_id, api_token=self.token)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, folder_path, allow_patterns=None, **kw):
        import fnmatch

        folder = Path(folder_path)
        sent = sorted(p.name for p in folder.iterdir()
                      if p.is_file() and (allow_patterns is None or any(fnmatch.fnmatch(p.name, pat)
                                                                        for pat in allow_patterns)))
        calls["upload_folder"] = dict(kw, folder_path=folder, sent=sent, contents=written_text(folder))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return calls


@pytest.mark.parametrize("fmt", ["peft", "gguf-lora"])
def test_push_sends_exactly_the_export(mlx_llama_run, tmp_path, hub_calls, fmt):
    from click.testing import CliRunner

    from mlxsft.cli.main import cli

    out = tmp_path / fmt
    r = CliRunner().invoke(cli, ["export", "--run", str(mlx_llama_run), "--format", fmt, "--out", str(out),
                                 "--push-to-hub", "someone/tiny", "--private"])
    assert r.exit_code == 0, (r.output, r.exception)
    files = sorted(p.name for p in out.iterdir())
    assert hub_calls["create_repo"] == {"repo_id": "someone/tiny", "repo_type": "model", "private": True,
                                        "exist_ok": True, "api_token": None}  # huggingface_hub finds the token
    upload = hub_calls["upload_folder"]
    assert upload["folder_path"] == out  # the finished folder, after the rename, not the staging one
    assert upload["repo_id"] == "someone/tiny" and upload["repo_type"] == "model" and "token" not in upload
    assert upload["sent"] == files and "README.md" in files
    assert TOKEN not in upload["contents"] and TOKEN not in written_text(out) and TOKEN not in r.output
    assert "pushed https://huggingface.co/someone/tiny" in r.output


def test_unreachable_hub_keeps_the_export(mlx_llama_run, tmp_path, monkeypatch):
    """Not offline mode but no network: the HTTP client's connection error, as one line."""
    httpx2 = pytest.importorskip("httpx2", reason="huggingface_hub's HTTP client here is httpx2")
    from huggingface_hub import HfApi

    def unreachable(self, repo_id, **kw):
        raise httpx2.ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr(HfApi, "create_repo", unreachable)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    from mlxsft.errors import MlxsftError
    from mlxsft.export import ExportOptions, export_run
    from mlxsft.export.hub import push_export

    result = export_run(ExportOptions(run=str(mlx_llama_run), format="peft", out=str(tmp_path / "peft")))
    with pytest.raises(MlxsftError, match="cannot reach the Hugging Face Hub .*Name or service not known") as err:
        push_export(result.out, "someone/tiny", files=result.files)
    assert "the export is complete in" in str(err.value) and "\n" not in str(err.value)
    assert sorted(p.name for p in result.out.iterdir()) == result.files

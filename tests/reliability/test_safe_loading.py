"""Weights load only from safetensors/GGUF, never through pickle; no model code runs unless asked."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mlxsft.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "mlxsft").rglob("*.py"), *(ROOT / "cli").rglob("*.py")])


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return ast.literal_eval(k.value) if isinstance(k.value, ast.Constant) else ast.unparse(k.value)
    return None


def test_no_source_file_unpickles_anything():
    assert len(SOURCES) > 50
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib", "cloudpickle") for n in names):
                    found.append(f"{path}:{node.lineno}: imports a pickle library")
        for call, func in _calls(tree):
            where = f"{path}:{call.lineno}: {func}"
            if func.endswith("torch.load") and _kw(call, "weights_only") is not True:
                found.append(f"{where} without weights_only=True")
            if func.split(".")[-1] in ("load", "loadtxt") and _kw(call, "allow_pickle") not in (None, False):
                found.append(f"{where} with allow_pickle")
            if func.endswith(("read_pickle", "pickle.load", "pickle.loads")):
                found.append(where)
            if _kw(call, "trust_remote_code") is True:
                found.append(f"{where} with trust_remote_code=True")
    assert found == []


def test_trust_remote_code_is_off_unless_asked():
    assert Config().model.trust_remote_code is False
    assert load_config(None, {}).model.trust_remote_code is False
    assert load_config(None, {"trust_remote_code": True}).model.trust_remote_code is True


class Spy:
    """Records the keyword arguments of every call to a transformers ``from_pretrained``."""

    def __init__(self, monkeypatch, *classes):
        self.calls: list[tuple[str, dict]] = []
        for cls in classes:
            original = cls.from_pretrained

            def spy(*args, _name=cls.__name__, _original=original, **kwargs):
                self.calls.append((_name, kwargs))
                return _original(*args, **kwargs)

            monkeypatch.setattr(cls, "from_pretrained", spy)


def _loaders(monkeypatch) -> Spy:
    import transformers

    return Spy(monkeypatch, transformers.AutoTokenizer, transformers.AutoModelForCausalLM, transformers.AutoConfig)


def test_the_mlx_loader_never_trusts_remote_code(tiny_llama_dir, monkeypatch):
    from mlxsft.backends.registry import get_backend

    spy = _loaders(monkeypatch)
    cfg = load_config(None, {"model": str(tiny_llama_dir), "backend": "mlx"})
    loaded = get_backend("mlx", cfg, lambda e, p: None).load()
    assert loaded.model is not None and spy.calls  # the tokenizer at least goes through transformers
    # None is transformers' own "not given" (remote code then refused), as good as False
    assert all(not kw.get("trust_remote_code") for _, kw in spy.calls), spy.calls


def test_the_torch_loader_passes_trust_remote_code_false_and_only_reads_safetensors(tiny_llama_dir, monkeypatch):
    pytest.importorskip("torch")
    from mlxsft.backends.registry import get_backend

    spy = _loaders(monkeypatch)
    cfg = load_config(None, {"model": str(tiny_llama_dir), "backend": "torch", "device": "cpu"})
    loaded = get_backend("torch", cfg, lambda e, p: None).load()
    assert loaded.model is not None
    models = [kw for name, kw in spy.calls if name == "AutoModelForCausalLM"]
    assert models and all(kw["trust_remote_code"] is False and kw["use_safetensors"] is True for kw in models)
    assert all(not kw.get("trust_remote_code") for _, kw in spy.calls)

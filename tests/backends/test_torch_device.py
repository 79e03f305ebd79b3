"""Device and dtype choice for the torch backend; the CUDA and MPS paths are exercised with faked probes."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from mlxsft.backends.torch import device as dev  # noqa: E402
from mlxsft.errors import ConfigError  # noqa: E402


def test_cpu_is_fp32_whatever_was_asked(monkeypatch):
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    plan = dev.pick_device("cpu", "bfloat16")
    assert plan.kind == "cpu" and plan.param_dtype == torch.float32 and plan.autocast_dtype is None
    assert plan.notes == ["dtype bfloat16 -> float32 on the CPU"]


def test_absent_devices_and_bad_names_are_config_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        dev.pick_device("cuda")
    with pytest.raises(ConfigError, match="MPS is not available"):
        dev.pick_device("mps")
    with pytest.raises(ConfigError, match="not one of"):
        dev.pick_device("tpu")
    assert dev.pick_device("auto").kind == "cpu"


def test_cuda_trains_fp32_weights_under_bf16_autocast_where_supported(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dev, "cuda_bf16_supported", lambda: True)
    plan = dev.pick_device("auto", "float32")
    assert plan.kind == "cuda" and plan.param_dtype == torch.float32 and plan.autocast_dtype == torch.bfloat16
    monkeypatch.setattr(dev, "cuda_bf16_supported", lambda: False)
    plan = dev.pick_device("cuda", "bfloat16")
    assert plan.param_dtype == torch.float32 and plan.autocast_dtype is None  # never unscaled fp16
    assert any("not supported" in n for n in plan.notes)


def test_mps_bf16_is_probed_not_assumed(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(dev, "mps_supports", lambda dtype: False)  # e.g. macOS 13
    plan = dev.pick_device("mps", "bfloat16")
    assert plan.kind == "mps" and plan.param_dtype == torch.float32
    assert any("not supported by MPS" in n for n in plan.notes)
    monkeypatch.setattr(dev, "mps_supports", lambda dtype: True)
    assert dev.pick_device("mps", "bfloat16").param_dtype == torch.bfloat16


def test_mps_fallback_is_set_with_a_note_unless_the_user_chose(monkeypatch):
    monkeypatch.setenv(dev.MPS_FALLBACK_ENV, "unset at teardown")
    monkeypatch.delenv(dev.MPS_FALLBACK_ENV)
    note = dev.enable_mps_fallback()
    assert note and dev.MPS_FALLBACK_ENV in note
    assert os.environ[dev.MPS_FALLBACK_ENV] == "1"
    monkeypatch.setenv(dev.MPS_FALLBACK_ENV, "0")
    assert dev.enable_mps_fallback() is None and os.environ[dev.MPS_FALLBACK_ENV] == "0"


def test_preloaded_openblas_is_reported(monkeypatch, tmp_path):
    lib = tmp_path / "libopenblas.so.0"
    lib.write_bytes(b"")
    monkeypatch.setenv("LD_PRELOAD", str(lib))
    assert any("OpenBLAS is preloaded" in n for n in dev.pick_device("cpu").notes)

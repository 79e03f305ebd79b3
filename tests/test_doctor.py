"""``mlxsft doctor`` prints every section and exits 0; ``pick_backend`` follows its documented rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlxsft import doctor

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("Platform", "MLX", "torch", "Embedded models", "Hugging Face", "Backend")


def test_doctor_prints_every_section():
    r = subprocess.run([sys.executable, "-m", "mlxsft", "doctor"], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    for title in SECTIONS + ("memory", "BLAS" if sys.platform != "darwin" else "device", "smollm2-135m-instruct",
                             "gemma3-270m", "hub cache", "offline", "--backend auto"):
        assert title in r.stdout, title
    assert "Traceback" not in r.stderr


def test_doctor_json():
    from click.testing import CliRunner

    from mlxsft.cli.main import cli

    r = CliRunner().invoke(cli, ["doctor", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["Backend"]["--backend auto"] in ("mlx", "torch") and report["Backend"]["why"]
    assert report["Embedded models"]["gemma3-270m (default)"].endswith("installed")


def test_doctor_help():
    from click.testing import CliRunner

    from mlxsft.cli.main import cli

    r = CliRunner().invoke(cli, ["doctor", "--help"])
    assert r.exit_code == 0 and "--backend auto" in r.output


@pytest.fixture
def linux_cpu(monkeypatch):
    """A Linux box without CUDA, whatever this machine is."""
    monkeypatch.setattr(doctor.sys, "platform", "linux")
    monkeypatch.setattr(doctor.machine, "is_apple_silicon", lambda: False)
    monkeypatch.setattr(doctor, "_cuda_name", lambda: None)


def test_pick_backend_apple_silicon(monkeypatch):
    monkeypatch.setattr(doctor.machine, "is_apple_silicon", lambda: True)
    assert doctor.pick_backend()[0] == "mlx"


def test_pick_backend_cuda(monkeypatch, linux_cpu):
    monkeypatch.setattr(doctor, "_cuda_name", lambda: "NVIDIA H200")
    backend, reason = doctor.pick_backend()
    assert backend == "torch" and "H200" in reason


def test_pick_backend_linux_cpu_with_torch_picks_torch(monkeypatch, linux_cpu):
    monkeypatch.setattr(doctor, "_installed", lambda name: True)
    backend, reason = doctor.pick_backend()
    assert backend == "torch" and "tokens/s" in reason


@pytest.fixture
def no_torch(monkeypatch):
    monkeypatch.setattr(doctor, "_installed", lambda name: name != "torch")


def test_pick_backend_cpu_with_openblas_preloaded(monkeypatch, linux_cpu, no_torch):
    monkeypatch.setattr(doctor.machine, "blas_preloaded", lambda: "/usr/lib/libopenblas.so.0")
    backend, reason = doctor.pick_backend()
    assert backend == "mlx" and "OpenBLAS" in reason and "GFLOP/s measured" in reason


def test_pick_backend_cpu_with_openblas_available(monkeypatch, linux_cpu, no_torch):
    monkeypatch.setattr(doctor.machine, "blas_preloaded", lambda: None)
    monkeypatch.setattr(doctor.machine, "find_openblas", lambda: "/usr/lib/libopenblas.so.0")
    backend, reason = doctor.pick_backend()
    assert backend == "mlx" and "/usr/lib/libopenblas.so.0" in reason


def test_pick_backend_cpu_without_openblas_or_torch(monkeypatch, linux_cpu, no_torch):
    monkeypatch.setattr(doctor.machine, "blas_preloaded", lambda: None)
    monkeypatch.setattr(doctor.machine, "find_openblas", lambda: None)
    backend, reason = doctor.pick_backend()
    assert backend == "mlx" and "reference BLAS" in reason


def test_matmul_gflops_is_positive():
    assert doctor.matmul_gflops("mlx", n=128, reps=1) > 0

"""An export is made to be shared: none of its files names a local path (the base model, the run, the data),
so none gives away a home folder or a user name."""

from __future__ import annotations

import pytest

from mlxsft.export import ExportOptions, export_run


@pytest.mark.parametrize("fmt", ["hf", "mlx", "gguf"])
def test_no_exported_file_names_a_local_path(mlx_llama_run, tmp_path, tmp_path_factory, fmt):
    pytest.importorskip("torch")
    result = export_run(ExportOptions(run=str(mlx_llama_run), format=fmt, out=str(tmp_path / fmt)))
    local = str(tmp_path_factory.getbasetemp())  # where the base model, the data and the run live
    assert local in str(result.run.base_model) and local in str(result.run.config.data.data)
    for name in result.files:
        data = (tmp_path / fmt / name).read_bytes()
        assert local.encode() not in data, name
    card = (tmp_path / fmt / "README.md").read_text()
    assert f"| from run | {mlx_llama_run.name} |" in card and "/" not in card.split("base_model: ")[1].split()[0]

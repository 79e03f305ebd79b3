"""LoRA target selection (``mlxsft/backends/targets.py``): the rules, and both backends adapting the same layers."""

from __future__ import annotations

import pytest

from mlxsft.backends.targets import adapted_layers, select_targets
from mlxsft.errors import ConfigError

FOUND = ["mlp.down_proj", "mlp.gate_proj", "mlp.up_proj", "self_attn.k_proj", "self_attn.o_proj",
         "self_attn.q_proj", "self_attn.v_proj"]


def test_names_paths_and_all_linear():
    assert select_targets(FOUND, ["all-linear"]) == FOUND
    assert select_targets(FOUND, ["q_proj", "v_proj"]) == ["self_attn.q_proj", "self_attn.v_proj"]
    assert select_targets(FOUND, ["mlp.down_proj"]) == ["mlp.down_proj"]


def test_unknown_or_empty_targets_are_config_errors_naming_what_exists():
    with pytest.raises(ConfigError, match=r"target_modules: qkv_proj not in the model \(has down_proj, gate_proj"):
        select_targets(FOUND, ["q_proj", "qkv_proj"])
    with pytest.raises(ConfigError, match="no linear layer selected"):
        select_targets([], ["all-linear"])


def test_the_last_num_layers_blocks_are_adapted():
    assert adapted_layers(30, 16) == range(14, 30)
    assert adapted_layers(4, -1) == range(0, 4)
    assert adapted_layers(4, 99) == range(0, 4)


def test_mlx_and_torch_adapt_the_same_layers(tiny_llama_dir):
    pytest.importorskip("torch")
    from mlxsft.backends.mlx.adapters import adapter_config
    from mlxsft.backends.torch.adapters import select_modules
    from mlxsft.backends.torch.device import pick_device
    from mlxsft.backends.torch.model import load_model
    from mlxsft.config import LoraConfig
    from mlxsft.models import load_mlx

    cfg = LoraConfig(target_modules=["q_proj", "down_proj"], num_layers=1)
    mlx_model, _, _ = load_mlx(str(tiny_llama_dir))
    torch_model, _, _ = load_model(str(tiny_llama_dir), pick_device("cpu"))
    mlx_cfg = adapter_config(cfg, mlx_model)
    n = len(mlx_model.layers)
    expected = [f"model.layers.{n - 1}.{k}" for k in mlx_cfg["lora_parameters"]["keys"]]
    assert mlx_cfg["num_layers"] == 1 and select_modules(torch_model, cfg) == expected

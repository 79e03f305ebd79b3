"""The torch training backend behind ``mlxsft.backends.base.Backend`` (``--backend torch``).

Models load through transformers (HF folders, GGUF, unquantised MLX folders), adapters through peft,
on the device ``device.pick_device`` chooses (CUDA, MPS with probed dtypes, or CPU in fp32). The loop is
``trainer.TorchTrainer``. The run folder also gets ``run_info.json`` (``"backend": "torch"``) so chat,
eval and export know to read PEFT files from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from mlxsft.backends.base import Emit, Loaded
from mlxsft.config import Config
from mlxsft.errors import ConfigError


class TorchBackend:
    name = "torch"

    def __init__(self, cfg: Config, emit: Emit):
        if cfg.model.quantize:
            raise ConfigError("quantize: the torch backend trains unquantised weights",
                              hint="use --backend mlx for QLoRA, or drop --quantize")
        from mlxsft.backends.torch.device import pick_device
        from mlxsft.backends.torch.distributed import check_fsdp, place, torch_world

        check_fsdp(cfg)
        self.world = torch_world(cfg.train.device, fsdp=cfg.train.fsdp)  # several processes under torchrun
        self.cfg, self.emit = cfg, emit if self.world.is_main else (lambda event, payload: None)
        self.device = pick_device(getattr(cfg.train, "device", "auto"), cfg.model.dtype)
        place(self.world, self.device)
        for note in self.device.notes:
            emit("message", {"text": note})

    def _load(self) -> tuple[Any, Any, Any]:
        import dataclasses

        import torch

        from mlxsft.backends.torch.model import load_model

        # FSDP: load on the CPU; each block moves to the GPU as it is sharded, so no GPU holds the whole model
        plan = dataclasses.replace(self.device, device=torch.device("cpu")) if self.world.sharded else self.device
        return load_model(self.cfg.model.model, plan, trust_remote_code=self.cfg.model.trust_remote_code)

    def load(self) -> Loaded:
        from mlxsft.backends.torch.generate import wrap_tokenizer

        model, hf_tok, source = self._load()
        self.emit("message", {"text": f"model {source.name} ({source.kind}: {source.path}) on torch "
                                      f"{self.device.device}, {str(self.device.param_dtype).removeprefix('torch.')}"})
        return Loaded(model=model, hf_tokenizer=hf_tok, tokenizer=wrap_tokenizer(hf_tok, model), source=source,
                      weights_path=str(source.path))

    def make_trainable(self, loaded: Loaded) -> None:
        import torch

        from mlxsft.backends.torch.adapters import make_trainable

        torch.manual_seed(self.cfg.train.seed)  # LoRA init is part of the seeded job
        loaded.model = make_trainable(loaded.model, self.cfg.lora)
        loaded.adapter_cfg = self.cfg.lora

    def count_parameters(self, model: Any) -> tuple[int, int]:
        from mlxsft.backends.torch.adapters import count_parameters

        return count_parameters(model)

    def memory_plan(self, loaded: Loaded, rows: int, length: int, supervised_fraction: float,
                    cfg: Optional[Config] = None) -> Any:
        from mlxsft.backends.torch.memory import estimate

        vocab = int(getattr(loaded.model.config, "vocab_size", 0) or len(loaded.hf_tokenizer))
        plan = estimate(loaded.model, cfg or self.cfg, rows, length, vocab, supervised_fraction,
                        on_cpu=not self.on_gpu(), selective_logits=self.world.size == 1)  # distributed runs compute every position's logits
        if self.world.sharded:  # each process keeps 1/N of the weights, gradients and optimizer state
            plan.weights_gb /= self.world.size
            plan.trainable_gb /= self.world.size
        return plan

    def on_gpu(self) -> bool:
        return self.device.device.type != "cpu"

    def memory_bytes(self) -> int:
        from mlxsft.backends.torch.device import device_memory_bytes

        return device_memory_bytes(self.device)

    def before_training(self) -> None:
        pass

    def write_run_files(self, run_dir: Path, loaded: Loaded) -> None:
        from mlxsft.backends.torch.model import write_run_info

        write_run_info(run_dir, base_model=self.cfg.model.model, method=self.cfg.lora.method)

    def trainer(self, loaded: Loaded, run_dir: Path) -> Any:
        from mlxsft.backends.torch.trainer import TorchTrainer

        return TorchTrainer(self.cfg, loaded.model, loaded.hf_tokenizer, run_dir, self.device, self.emit,
                            world=self.world)

    def compare_views(self, loaded: Loaded) -> dict[str, Any]:
        """The tuned model and its base for the before/after table and the forgetting score."""
        from mlxsft.backends.generation import ModelView
        from mlxsft.backends.torch.generate import base_view

        tuned = loaded.model.eval()
        return {"base": base_view(tuned, lambda: self._load()[0].eval()), "tuned": ModelView("tuned", tuned)}

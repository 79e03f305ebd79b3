"""The MLX training backend behind ``mlxsft.backends.base.Backend`` (the default; Apple Silicon first).

Models load through ``mlxsft.models.load_mlx`` (converted and cached MLX weights, optional QLoRA
quantisation), adapters are mlx-lm's LoRA/DoRA layers, the loop is ``trainer.MLXTrainer`` and the
before/after answers use mlx-lm's batched generator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from mlxsft.backends.base import Emit, Loaded
from mlxsft.config import Config
from mlxsft.errors import ConfigError


class MLXBackend:
    name = "mlx"

    def __init__(self, cfg: Config, emit: Emit):
        from mlxsft.backends.mlx.distributed import mlx_world

        if cfg.train.fsdp:
            raise ConfigError("fsdp: sharding is a torch backend feature (the mlx backend replicates the model)",
                              hint="drop --fsdp, or use --backend torch")
        self.world = mlx_world()  # several processes when started by mlx.launch
        self.cfg, self.emit = cfg, emit if self.world.is_main else (lambda event, payload: None)

    def _load(self) -> tuple[Any, Any, Path]:
        from mlxsft.models import load_mlx

        m = self.cfg.model
        return load_mlx(m.model, dtype=m.dtype, quantize=m.quantize, group_size=m.group_size,
                        progress=lambda stage, frac: self.emit("progress", {"stage": stage, "fraction": frac}),
                        trust_remote_code=m.trust_remote_code)

    def load(self) -> Loaded:
        from mlxsft.backends.generation import hf_tokenizer
        from mlxsft.models import resolve_model

        source = resolve_model(self.cfg.model.model, trust_remote_code=self.cfg.model.trust_remote_code)
        self.emit("message", {"text": f"model {source.name} ({source.kind}: {source.path})"})
        model, tokenizer, mlx_path = self._load()
        return Loaded(model=model, hf_tokenizer=hf_tokenizer(tokenizer), tokenizer=tokenizer,
                      source=source, weights_path=str(mlx_path))

    def make_trainable(self, loaded: Loaded) -> None:
        import mlx.core as mx

        from mlxsft.backends.mlx.adapters import make_trainable

        mx.random.seed(self.cfg.train.seed)  # LoRA init is part of the seeded job
        loaded.adapter_cfg = make_trainable(loaded.model, self.cfg.lora)

    def count_parameters(self, model: Any) -> tuple[int, int]:
        from mlxsft.backends.mlx.adapters import count_parameters

        return count_parameters(model)

    def memory_plan(self, loaded: Loaded, rows: int, length: int, supervised_fraction: float,
                    cfg: Optional[Config] = None) -> Any:
        from mlxsft.backends.mlx.memory import estimate

        vocab = int(getattr(getattr(loaded.model, "args", None), "vocab_size", 0) or len(loaded.hf_tokenizer))
        return estimate(loaded.model, cfg or self.cfg, rows, length, vocab, supervised_fraction)

    def on_gpu(self) -> bool:
        import mlx.core as mx

        return mx.default_device().type != mx.DeviceType.cpu

    def memory_bytes(self) -> int:
        from mlxsft.machine import total_memory_bytes

        return total_memory_bytes()

    def before_training(self) -> None:
        """On Metal, wire the model's memory and keep the buffer cache bounded (no-op on CPU)."""
        import mlx.core as mx

        try:
            if not mx.metal.is_available():
                return
            info = mx.metal.device_info()
            mx.set_wired_limit(int(info["max_recommended_working_set_size"]))
            mx.set_cache_limit(int(info["max_recommended_working_set_size"] // 4))
        except Exception:  # older mlx without these calls: defaults are fine
            pass

    def write_run_files(self, run_dir: Path, loaded: Loaded) -> None:
        pass  # adapters.safetensors + adapter_config.json are written by the trainer at each checkpoint

    def trainer(self, loaded: Loaded, run_dir: Path) -> Any:
        from mlxsft.backends.mlx.trainer import MLXTrainer

        return MLXTrainer(self.cfg, loaded.model, loaded.tokenizer, run_dir, loaded.adapter_cfg, self.emit,
                          world=self.world)

    def compare_views(self, loaded: Loaded) -> dict[str, Any]:
        """The tuned model and its base for the before/after table and the forgetting score."""
        from mlxsft.backends.generation import ModelView
        from mlxsft.backends.mlx.generate import base_view

        loaded.model.eval()
        return {"base": base_view(loaded.model, self.cfg.lora.method, lambda: self._load()[0].eval()),
                "tuned": ModelView("tuned", loaded.model)}

"""torch's engine for the one training loop (``mlxsft/backends/fit.py``), on transformers + peft (no HF Trainer).

    trainer = TorchTrainer(cfg, model, tokenizer, run_dir, device_plan, callback)
    result = trainer.fit(train_split, valid_split, resume=False)

The loop, data order, loss, cadence, metrics and events are the MLX engine's, because they are fit.py's;
this file holds the forward/backward with DDP's no_sync, clipping, the optimizer and scheduler, validation,
checkpoints with RNG state, and resume. The trainer never prints.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

from mlxsft.backends.fit import Engine
from mlxsft.backends.loop import TrainState, pad_id, validation_plan
from mlxsft.backends.torch import checkpoint as ckpt
from mlxsft.backends.torch.adapters import trainable_state
from mlxsft.backends.torch.device import DevicePlan, autocast, peak_memory_gb, reset_peak_memory
from mlxsft.backends.torch.distributed import TorchWorld
from mlxsft.backends.torch.loss import token_nll
from mlxsft.backends.torch.optim import build_optimizer
from mlxsft.backends.torch.validation import batch_tensors, split_nll
from mlxsft.config import Config
from mlxsft.data.batching import Batch
from mlxsft.errors import RunError
from mlxsft.runs import latest_checkpoint

Callback = Callable[[str, dict], None]


class TorchTrainer(Engine):
    """The torch engine of the one training loop (``mlxsft/backends/fit.py``)."""

    def __init__(self, cfg: Config, model: Any, tokenizer: Any, run_dir: Path, plan: DevicePlan,
                 callback: Optional[Callback] = None, *, world: Optional[TorchWorld] = None):
        self.cfg, self.model, self.tokenizer = cfg, model, tokenizer
        self.world = world or TorchWorld()  # torchrun: this process's share of each step (mlxsft/distributed.py)
        self.train_model = model  # what forward/backward run through: the model, or its DDP wrapper
        self.run_dir = Path(run_dir)
        self.plan = plan
        self.callback = callback or (lambda event, payload: None)
        self.pad_id = pad_id(tokenizer)

    # ----------------------------------------------------------------- step
    def _tensors(self, batch: Batch) -> tuple[Any, Any, Any]:
        return batch_tensors(batch, self.plan.device, self.cfg.data.pack)

    def _micro_step(self, batch: Batch, inv_n: float) -> float:
        """Forward + backward of one micro-batch; gradients accumulate in ``.grad``. Returns its NLL sum."""
        ids, mask, seg = self._tensors(batch)
        with autocast(self.plan):
            nll_sum, _ = token_nll(self.train_model, ids, mask, seg)
        (nll_sum * inv_n).backward()
        return float(nll_sum.detach())

    def _optimizer_step(self, optimizer: Any, scheduler: Any, params: list,
                        allow: Callable[[float], bool] = lambda norm: True) -> tuple[float, bool]:
        """Clip and apply the gradients unless ``allow(grad_norm)`` says no (a NaN/inf step): (norm, applied).

        A skipped step advances neither the optimizer nor the schedule, as in the MLX loop."""
        import torch

        max_norm = self.cfg.optim.max_grad_norm
        grads = [p.grad for p in params if p.grad is not None]
        if max_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        else:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
        norm = float(norm)
        applied = allow(norm)
        if applied:
            optimizer.step()
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return norm, applied

    # ----------------------------------------------------------------- eval
    def evaluate(self, split: Any) -> tuple[float, int]:
        """(mean NLL per supervised token, supervised tokens) over a split, same masks as training."""
        plan = validation_plan(split.examples, self.cfg)
        total, count = split_nll(self.model, split.examples, plan, pad_id=self.pad_id, pack=self.cfg.data.pack,
                                 autocast=lambda: autocast(self.plan))
        return (total / count if count else float("nan")), count

    # ----------------------------------------------------------------- checkpoints
    def save(self, st: TrainState) -> Optional[Path]:
        weights = self.world.full_state(trainable_state(self.model))  # FSDP: every rank gathers, rank 0 keeps
        optimizer_state = self.world.optimizer_state(self.optimizer)
        if not self.world.is_main:  # rank 0 alone writes the run folder
            return None
        path = ckpt.save_checkpoint(self.run_dir, st.step, weights, optimizer_state, self.scheduler, asdict(st))
        ckpt.write_model_files(self.run_dir, self.model, weights)
        self.callback("checkpoint", {"step": st.step, "path": str(path)})
        return path

    def save_best(self) -> None:
        best = self.world.full_state(trainable_state(self.model))  # FSDP: a collective, on every rank
        if self.world.is_main:
            ckpt.write_model_files(self.run_dir / "best", self.model, best)

    def _resume(self, optimizer: Any, scheduler: Any) -> TrainState:
        import torch

        path = latest_checkpoint(self.run_dir)
        weights, opt, state = ckpt.load_checkpoint(path)
        params = trainable_state(self.model)
        if set(weights) != set(params):
            raise RunError(f"{path}: checkpoint weights do not match this model/method")
        if state.get("config_hash") and state["config_hash"] != self.cfg.hash():
            raise RunError(f"{path}: the config differs from the run being resumed",
                           hint="resume with the run's own config.yaml")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(self.world.local(weights[name], p))
        self.world.load_optimizer_state(optimizer, opt["optimizer"])
        scheduler.load_state_dict(opt["scheduler"])
        ckpt.restore_rng(opt["rng"])
        known = set(TrainState.__dataclass_fields__)
        return TrainState(**{k: v for k, v in state.items() if k in known})

    # ----------------------------------------------------------------- the engine's part of a step (fit.py)
    def begin(self, total_steps: int, resume: bool) -> TrainState:
        import torch

        t = self.cfg.train
        self.train_model = self.world.wrap(self.model)  # DDP, or FSDP shards: before the optimizer sees parameters
        self.params = list(trainable_state(self.model).values())
        self.optimizer, self.scheduler = build_optimizer(self.cfg.optim, self.params, total_steps)
        torch.manual_seed(t.seed)  # dropout stream; a resume restores the saved one
        st = self._resume(self.optimizer, self.scheduler) if resume else TrainState(config_hash=self.cfg.hash())
        if t.grad_checkpoint:
            # non-reentrant checkpointing needs no input grads, so frozen embeddings (LoRA) are fine
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model.train()
        reset_peak_memory(self.plan)
        return st

    def accumulate(self, micro: list[Batch], n_sup: int, st: TrainState) -> float:
        nll_total = 0.0
        for i, b in enumerate(micro):
            with self.world.no_sync(i < len(micro) - 1):  # DDP: one all-reduce per step; n_sup: global
                nll_total += self._micro_step(self.world.shard(b), self.world.grad_scale / n_sup)
        return self.world.sum(nll_total)  # all ranks: the global step's loss

    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def apply(self, allow: Callable[[float], bool]) -> tuple[float, bool]:
        return self._optimizer_step(self.optimizer, self.scheduler, self.params, allow)

    def peak_memory_gb(self) -> float:
        return peak_memory_gb(self.plan)

    def finish(self) -> None:
        self.model.eval()
        self.optimizer = self.scheduler = self.params = None  # optimizer state is freed when fit returns

"""The torch backend's ``World``: ``torch.distributed`` when started by ``torchrun`` or ``accelerate launch``.

    world = torch_world("auto", fsdp=False)         # reads RANK / WORLD_SIZE / LOCAL_RANK; size 1 alone
    train_model = world.wrap(model)                  # DDP, or FSDP sharding the model in place
    with world.no_sync(not last_micro_batch):        # DDP all-reduces once per optimizer step
        loss.backward()

Transport: NCCL on CUDA (one process per GPU, ``LOCAL_RANK`` picks it), gloo on the CPU. MPS has no
collective backend; Macs train across machines with the MLX backend and ``mlx.launch``.

DDP (the default): every rank holds the whole model; gradients are averaged in buckets during the
backward of the last micro-batch of a step. FSDP (``--fsdp``, full fine-tuning): torch's ``fully_shard``
(FSDP2) on every transformer block and on the root, so each rank keeps 1/N of the weights, gradients and
optimizer state; blocks are gathered for their forward and backward. Under FSDP every rank runs each
forward (validation included), and checkpoints gather the full tensors to rank 0's CPU one at a time, so
they keep the single-process format. The model is loaded on the CPU first and each block moves to its
GPU as it is sharded (a model larger than one GPU still needs the CPU memory for one full copy per process).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
from typing import Any

from mlxsft.distributed import World, check_launcher, launcher
from mlxsft.errors import ConfigError

FSDP_OPTIMIZERS = ("adamw", "adam", "sgd")  # per-parameter state that shards like its parameter


class TorchWorld(World):
    def __init__(self, rank: int = 0, size: int = 1, *, fsdp: bool = False, device: Any = None):
        super().__init__(rank, size, sharded=fsdp and size > 1)
        self.device = device  # where collectives' tensors live: cuda:LOCAL_RANK under NCCL, else the CPU
        self._ddp: Any = None

    @property
    def signal_relay_s(self) -> float:
        return 2.0 if self.size > 1 else 0.0  # torchrun forwards the terminal's SIGINT to its processes

    def wrap(self, model: Any) -> Any:
        """The module to run forward/backward through; call before building the optimizer (FSDP replaces
        the parameters by sharded ones)."""
        if self.size == 1:
            return model
        if self.sharded:
            shard_model(model)
            return model
        cuda = self.device is not None and self.device.type == "cuda"
        self._ddp = _ddp_class()(model, device_ids=[self.device.index] if cuda else None)
        return self._ddp

    def no_sync(self, skip: bool) -> Any:
        """A context: DDP keeps this backward's gradients local (a micro-batch that is not the step's last)."""
        return self._ddp.no_sync() if skip and self._ddp is not None else contextlib.nullcontext()

    def full_state(self, tensors: dict[str, Any]) -> dict[str, Any]:
        """Full tensors of ``{name: parameter}`` on rank 0 (FSDP: every rank must call; others get ``{}``)."""
        if not self.sharded:
            return tensors
        out = {}
        for name, t in tensors.items():
            full = _full(t)
            if self.is_main:
                out[name] = full
        return out

    def optimizer_state(self, optimizer: Any) -> dict[str, Any]:
        """``optimizer.state_dict()`` as one process would have it (FSDP gathers; every rank must call)."""
        sd = optimizer.state_dict()
        if not self.sharded:
            return sd
        state = {i: {k: _full(v) for k, v in s.items()} for i, s in sd["state"].items()}
        return {**sd, "state": state}

    def load_optimizer_state(self, optimizer: Any, state: dict[str, Any]) -> None:
        """Load a single-process optimizer state; under FSDP each rank keeps its shard of it."""
        optimizer.load_state_dict(state)
        if not self.sharded:
            return
        for group in optimizer.param_groups:
            for p in group["params"]:
                slots = optimizer.state.get(p, {})
                for k, v in slots.items():
                    if getattr(v, "shape", None) == p.shape and v.dim() > 0:
                        slots[k] = self.local(v, p)

    def local(self, full: Any, like: Any) -> Any:
        """This rank's part of a full tensor, laid out as the parameter ``like`` (the tensor itself unsharded)."""
        if not self.sharded:
            return full
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(full.to(like.device, like.dtype), like.device_mesh, like.placements)

    def _all_sum(self, values: list[float]) -> list[float]:
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return [float(v) for v in t.tolist()]


def _full(t: Any) -> Any:
    from torch.distributed.tensor import DTensor

    return t.full_tensor().detach().cpu() if isinstance(t, DTensor) else t


@functools.cache
def _ddp_class() -> type:
    from torch.nn.parallel import DistributedDataParallel

    class DDP(DistributedDataParallel):
        """DDP that lets attribute reads through to the model (``.config``, which the loss reads)."""

        def __getattr__(self, name: str) -> Any:
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(self.module, name)

    return DDP


def shard_model(model: Any) -> None:
    """FSDP2: each transformer block its own unit (gathered only while it runs), the rest in the root."""
    from torch.distributed.fsdp import fully_shard

    from mlxsft.backends.torch.adapters import decoder_layers

    for block in decoder_layers(model):
        fully_shard(block)
    fully_shard(model)


def torch_world(device_choice: str = "auto", fsdp: bool = False) -> TorchWorld:
    """Join the processes torchrun / accelerate started (a no-op world for a plain process)."""
    check_launcher("torch")
    if launcher() != "torch":
        return TorchWorld()
    import torch
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device_choice in ("auto", "cuda") and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)  # before NCCL starts: one GPU per process
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
        atexit.register(_leave)
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    return TorchWorld(dist.get_rank(), dist.get_world_size(), fsdp=fsdp, device=device)


def place(world: TorchWorld, plan: Any) -> None:
    """Put a DevicePlan on this process's GPU; refuse MPS, which torch cannot all-reduce on."""
    if world.size == 1:
        return
    if plan.kind == "mps":
        raise ConfigError("device mps: torch has no collective backend for MPS",
                          hint="across Macs use --backend mlx with mlx.launch; with torchrun use --device cuda or cpu")
    if plan.kind == "cuda":
        plan.device = world.device


def check_fsdp(cfg: Any) -> None:
    if not cfg.train.fsdp:
        return
    if cfg.lora.method != "full":
        raise ConfigError(f"fsdp: shards full fine-tuning, not {cfg.lora.method}",
                          hint="drop --fsdp: with LoRA/DoRA each process holds the frozen base and DDP is used")
    if cfg.optim.optimizer not in FSDP_OPTIMIZERS:
        raise ConfigError(f"fsdp: optimizer {cfg.optim.optimizer} is not supported with FSDP",
                          hint=f"use one of {', '.join(FSDP_OPTIMIZERS)}")


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()

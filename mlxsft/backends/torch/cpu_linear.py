"""Generation's linear layers on a CPU through oneDNN with pre-packed weights.

    with packed_linears(model):
        out = model(input_ids=..., use_cache=True, ...)   # every float32 nn.Linear runs packed

On a CPU, ``torch.nn.functional.linear`` goes to MKL's sgemm, which re-lays out the weight on every call; at the
few rows a decode step has that is most of its time. oneDNN's linear on a weight packed once for it
(``torch.ops.mkldnn._reorder_linear_weight``, the kernel torch's inductor uses for CPU inference) ran, on 12-02's
2-core EPYC: SmolLM2's 49152 x 576 head 11.5 -> 5.0 ms at one row and 28.5 -> 11.6 ms at 32 rows, its MLP
projections 0.47 -> 0.29 ms at 32 rows; outputs within 3e-6 of MKL's.

Inside the context each ``nn.Linear`` of the model (peft's LoRA pieces and base layers included) runs through
the packed copy of its weight when nothing needs a gradient and the input is float32 on the CPU; anything else
takes the module's own forward. A packed copy is made on first use and redone when the weight changes (its
storage or version counter), and all copies are dropped on exit, so training never sees them. They cost one
more copy of the linear weights, so the context does nothing when those would not fit in a quarter of the
memory still available, or where torch was built without oneDNN.
"""

from __future__ import annotations

import types
from contextlib import contextmanager
from typing import Any, Iterator

from mlxsft.machine import available_memory_bytes

SHARE_OF_FREE = 0.25  # the packed copies may take at most this share of the memory still available


def supported(model: Any) -> bool:
    """Whether ``packed_linears`` would pack ``model``'s linears: float32 weights on the CPU, oneDNN built in,
    and room for the copies."""
    import torch

    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return False
    linears = _linears(model)
    if not linears or any(m.weight.device.type != "cpu" or m.weight.dtype != torch.float32 for m in linears):
        return False
    free = available_memory_bytes()
    need = sum(m.weight.numel() * m.weight.element_size() for m in linears)
    return free is None or need <= SHARE_OF_FREE * free


@contextmanager
def packed_linears(model: Any) -> Iterator[bool]:
    """Run ``model``'s linear layers packed (see the module's docstring) for the duration; yields whether it
    does. Re-entering for a model already inside the context is a no-op."""
    if getattr(model, "_mlxsft_packed", False) or not supported(model):
        yield False
        return
    linears = _linears(model)
    for module in linears:
        module.forward = types.MethodType(_packed_forward, module)  # the instance attribute shadows the class's
    model._mlxsft_packed = True
    try:
        yield True
    finally:
        for module in linears:
            module.__dict__.pop("forward", None)
            module.__dict__.pop("_mlxsft_pack", None)
        model._mlxsft_packed = False


def _linears(model: Any) -> list[Any]:
    import torch

    return [m for m in model.modules() if type(m) is torch.nn.Linear]  # subclasses may change the forward


def _packed_forward(self: Any, x: Any) -> Any:
    import torch

    w = self.weight
    if x.device.type != "cpu" or x.dtype != torch.float32 or (torch.is_grad_enabled() and
                                                                (x.requires_grad or w.requires_grad)):
        return torch.nn.Linear.forward(self, x)
    key = (w.data_ptr(), w._version)
    pack = self.__dict__.get("_mlxsft_pack")
    if pack is None or pack[0] != key:
        pack = (key, torch.ops.mkldnn._reorder_linear_weight(w.detach()))
        self.__dict__["_mlxsft_pack"] = pack
    return _linear(x, pack[1], None if self.bias is None else self.bias.detach())


def _linear(x: Any, packed: Any, bias: Any) -> Any:
    import torch

    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")  # "none": no fused activation

"""The torch backend (MPS / CUDA / CPU): the MLX backend's shape on transformers + peft, no HF Trainer.

    from mlxsft.backends.torch.backend import TorchBackend        # mlxsft train --backend torch
    from mlxsft.backends.torch.generate import load_views          # mlxsft chat / eval --backend torch

Files: ``device.py`` (device and dtype choice), ``model.py`` (load through transformers; a run's tuned
model), ``adapters.py`` (peft LoRA/DoRA, full fine-tuning), ``loss.py`` (masked NLL, packing through a
block-diagonal SDPA mask), ``optim.py`` (optimizers, schedules), ``checkpoint.py`` (atomic checkpoints,
PEFT adapter files), ``memory.py`` (the memory plan), ``trainer.py`` (the loop), ``generate.py``
(answers with KV-cache reuse), ``backend.py`` (the ``Backend`` that ``mlxsft.train`` drives). Importing this package imports
nothing heavy; torch is imported by the modules that need it.
"""

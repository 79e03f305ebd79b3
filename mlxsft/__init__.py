"""mlxsft: supervised fine-tuning of LLMs on a laptop (MLX first, torch fallback).

Library entry points live in the sub-packages: ``mlxsft.models`` (resolve and convert models),
``mlxsft.data`` (formats, templates, masks, batching), ``mlxsft.backends`` (trainers).
The command line is ``mlxsft`` (see ``mlxsft/cli``).
"""

__version__ = "0.1.0"

"""The SFT data layer: formats, chat templates, loss masks, validation, batching and packing. Backend-neutral.

    from mlxsft.data import prepare_split
    train = prepare_split(cfg.data, tokenizer, "train")     # numpy input_ids + loss_mask per row, with stats
    from mlxsft.data.batching import plan_batches, collate

``load_conversations`` reads and checks rows (local JSONL/JSON/Parquet/CSV, a folder of split files, a Hub
dataset, or the bundled set); ``validate_path`` lists every problem for ``mlxsft data validate``;
``resolve_chat_template`` picks the template; ``prepare_split`` renders, tokenizes, masks, truncates and caches.
Nothing here imports mlx or torch, and nothing prints.
"""

from mlxsft.data.batching import Batch, collate, padding_fraction, plan_batches
from mlxsft.data.load import Validation, load_conversations, validate_path, validate_source
from mlxsft.data.prepare import prepare_split
from mlxsft.data.records import Conversation, Example, PreparedSplit, Problem
from mlxsft.data.templates import DEFAULT_CHATML, resolve_chat_template

__all__ = [
    "Batch", "Conversation", "DEFAULT_CHATML", "Example", "PreparedSplit", "Problem", "Validation", "collate",
    "load_conversations", "padding_fraction", "plan_batches", "prepare_split", "resolve_chat_template",
    "validate_path", "validate_source",
]

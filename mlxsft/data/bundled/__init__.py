"""The bundled dataset: what ``mlxsft train`` learns from when no ``--data`` is given.

Four files, written for this project and shipped inside the package:

* ``train.jsonl`` (300 rows) and ``valid.jsonl`` (22 rows): chat rows ``{"messages": [...]}``, about 85%
  verifiable tasks whose assistant turn is exactly the answer (extract a year, name, city or email from a
  sentence; label a review, a word or a sentence; rewrite in capitals, plural, opposite, a word replaced; put a
  sentence into JSON, a list or an ISO date; a capital city, a small sum) and 15% short hand-written
  explanations and writing tasks; about 15% are multi-turn and a few carry a system instruction.
* ``eval.jsonl`` (60 rows): held-out ``{"question", "reference", "category"}`` rows: 48 verifiable (new
  instances of the same task types, never a train prompt) scored before and after training, and 12
  open-ended questions without a reference, shown side by side.
* ``general.jsonl`` (16 rows): general prompts far from the training tasks, for the forgetting score.

What it teaches is what SFT teaches a small base model well: an answer format, following the instruction, and
stopping at the end of the turn. The files are generated; edit ``tasks.py``, ``handwritten.py`` or
``make_dataset.py`` and regenerate::

    python -m mlxsft.data.bundled.make_dataset
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent
TRAIN = FOLDER / "train.jsonl"
VALID = FOLDER / "valid.jsonl"
EVAL = FOLDER / "eval.jsonl"
GENERAL = FOLDER / "general.jsonl"

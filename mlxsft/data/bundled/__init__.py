"""The bundled dataset: what ``mlxsft train`` learns from when no ``--data`` is given.

Three files, written for this project and shipped inside the package:

* ``train.jsonl`` (350 rows) and ``valid.jsonl`` (41 rows): chat rows ``{"messages": [...]}``, about 60%
  verifiable tasks whose assistant turn is exactly the answer ("Calculate 17+25-8" -> "34"; unit conversions,
  string and list manipulation, dates) and 40% hand-written explanations and writing tasks; about 20% are
  multi-turn and a few carry a system instruction.
* ``eval.jsonl`` (60 rows): held-out ``{"question", "reference", "category"}`` rows, two thirds verifiable
  (new instances of the same task types, scored by exact match before and after training) and one third
  open-ended without a reference.

The files are generated; edit ``handwritten.py`` or ``make_dataset.py`` and regenerate::

    python -m mlxsft.data.bundled.make_dataset
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent
TRAIN = FOLDER / "train.jsonl"
VALID = FOLDER / "valid.jsonl"
EVAL = FOLDER / "eval.jsonl"

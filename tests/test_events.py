"""Training events: every name the code emits is a known one, and the UI refuses a name it does not know."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlxsft.config import load_config
from mlxsft.events import EVENTS

ROOT = Path(__file__).resolve().parents[1]


def test_every_emitted_event_is_a_known_one():
    emitted = set()
    for path in (ROOT / "mlxsft").rglob("*.py"):
        emitted |= set(re.findall(r"""\b(?:emit|callback)\(["']([a-z_]+)["']""", path.read_text()))
    assert emitted and emitted <= set(EVENTS), emitted - set(EVENTS)


def test_the_train_view_handles_every_event_and_refuses_a_misspelled_one():
    from mlxsft.cli.ui.train import TrainView

    view = TrainView(load_config(None, {}))
    view.on_event("message", {"text": "hello"})
    with pytest.raises(ValueError, match="unknown training event 'stpe'"):
        view.on_event("stpe", {"step": 1})

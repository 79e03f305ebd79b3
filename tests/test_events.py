"""Training events: every name the code emits is a known one, and the UI refuses a name it does not know."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlxsft.config import load_config
from mlxsft.events import EVENTS

ROOT = Path(__file__).resolve().parents[1]


def _emitted(paths) -> set:
    emitted = set()
    for path in paths:
        emitted |= set(re.findall(r"""\b(?:emit|callback)\(["']([a-z_]+)["']""", path.read_text()))
    return emitted


def test_every_emitted_event_is_a_known_one():
    """Training's events everywhere but in mlxsft/experiments, whose callback has its own (checked below)."""
    experiments = ROOT / "mlxsft" / "experiments"
    emitted = _emitted(p for p in (ROOT / "mlxsft").rglob("*.py") if experiments not in p.parents)
    assert emitted and emitted <= set(EVENTS), emitted - set(EVENTS)


def test_every_experiment_event_is_a_known_one():
    import typing

    from mlxsft.experiments.events import ExperimentEvent

    emitted = _emitted((ROOT / "mlxsft" / "experiments").rglob("*.py"))
    known = set(typing.get_args(ExperimentEvent))
    assert emitted and emitted <= known, emitted - known


def test_the_train_view_handles_every_event_and_refuses_a_misspelled_one():
    from mlxsft.cli.ui.train import TrainView

    view = TrainView(load_config(None, {}))
    view.on_event("message", {"text": "hello"})
    with pytest.raises(ValueError, match="unknown training event 'stpe'"):
        view.on_event("stpe", {"step": 1})

"""Fixtures shared by the MLX and torch trainer tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def collated_shapes(monkeypatch) -> list[tuple[int, int]]:
    """The ``(rows, length)`` of every micro-batch the training loop collates (both backends collate in
    ``mlxsft.backends.loop``), in order; clear it between runs."""
    import mlxsft.backends.loop as loop_mod

    shapes: list[tuple[int, int]] = []
    real_collate = loop_mod.collate

    def spy(examples, plan, pad_id):
        batch = real_collate(examples, plan, pad_id)
        shapes.append(batch.input_ids.shape)
        return batch

    monkeypatch.setattr(loop_mod, "collate", spy)
    return shapes

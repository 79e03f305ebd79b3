"""``mlxsft experiment curation --data``: the pool built from a user's own rows (every label is what it says, the
rates, the same bytes from the same seed), its bad input, and the experiment reading its pool from ``--data``."""

from __future__ import annotations

import json

import pytest

from mlxsft.errors import DataError
from mlxsft.experiments.pool import DEFECTS, PoolSpec
from mlxsft.experiments.pool_from_data import pool_from_data
from tests.helpers import run_cli

CITIES = ("Oslo", "Lima", "Rome", "Cairo", "Quito", "Hanoi", "Dakar", "Lagos", "Perth", "Turin")


def _rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        city = CITIES[i % len(CITIES)]
        q = f"Which city is named in: 'Our train number {i} to {city} leaves at noon'?"
        a = city if i % 2 else f"The train goes to {city}, as the sentence says"
        rows.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
    return rows


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _q(row):
    return next(m["content"] for m in reversed(row["messages"]) if m["role"] == "user")


def _a(row):
    return row["messages"][-1]["content"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("data") / "mine.jsonl", _rows(120))


def test_every_label_is_what_it_says_at_the_planted_rates(data):
    pool = pool_from_data(data, PoolSpec(seed=0))
    src = {_q(r): _a(r) for r in _rows(120)}
    # 120 clean rows, and defects at the default rates (they sum to 0.5) of a 240-row pool, rounded
    counts = pool.label_counts()
    planted = PoolSpec().counts(240)
    assert counts == {"clean": 120, **planted} and len(pool.rows) == 120 + sum(planted.values()) == 238
    def orig(q):  # the file's question this row asks, itself or edited (the longest that it contains)
        return max((o for o in src if o in q), key=len)

    seen: list[dict] = []
    for row in pool.rows:
        label, q, a = pool.labels[row["id"]], _q(row), _a(row)
        o = orig(q)
        if label in ("wrong", "truncated", "wrong_format", "rambling"):
            assert q == o, label  # the question of a file row, unchanged
        if label in ("clean", "near_dup", "paraphrase"):
            assert a == src[o], label  # right answers; copies ask an edit (or, if it came first, the original)
        if label == "wrong":
            assert a != src[q] and a in src.values()
        elif label == "truncated":
            assert src[q].startswith(a) and len(a) < len(src[q])
        elif label == "wrong_format":
            assert src[q] in a and a != src[q]
        elif label == "rambling":
            assert a.startswith(src[q]) and len(a) > len(src[q]) + 200
        elif label == "exact_dup":
            assert any(s["messages"] == row["messages"] for s in seen)  # a copy comes after what it copies
        elif label in ("near_dup", "paraphrase"):
            # a later, non-identical copy of a question asked earlier in the file
            assert any(orig(_q(s)) == o and _a(s) == a for s in seen)
            assert not any(s["messages"] == row["messages"] for s in seen)
        if "reference" in row:
            assert row["reference"] == src[o]  # the verifier knows the clean answer, whatever this row says
        seen.append(row)
    assert 0.7 < sum("reference" in r for r in pool.rows) / len(pool.rows) < 0.9  # reference_rate 0.8


def test_the_same_seed_gives_the_same_bytes_and_another_seed_another(data, tmp_path):
    a = pool_from_data(data, PoolSpec(seed=1)).write(tmp_path / "a.jsonl").read_bytes()
    b = pool_from_data(data, PoolSpec(seed=1)).write(tmp_path / "b.jsonl").read_bytes()
    c = pool_from_data(data, PoolSpec(seed=2)).write(tmp_path / "c.jsonl").read_bytes()
    assert a == b and a != c


def test_bad_rows_name_their_line(tmp_path):
    rows = _rows(30)
    rows[6] = {"messages": [{"role": "user", "content": "no answer here"}]}
    with pytest.raises(DataError) as err:
        pool_from_data(_write(tmp_path / "bad.jsonl", rows), PoolSpec())
    assert err.value.line == 7 and err.value.field == "messages" and "assistant turn" in str(err.value)
    with pytest.raises(DataError, match="at least 20"):
        pool_from_data(_write(tmp_path / "few.jsonl", _rows(5)), PoolSpec())
    assert set(DEFECTS) <= set(PoolSpec().rates)


def test_the_experiment_builds_its_pool_from_data_and_needs_questions(data, tmp_path, monkeypatch):
    from mlxsft.experiments import curation
    from mlxsft.experiments.arms import ArmResult, Setup

    proc = run_cli("experiment", "curation", "--data", str(data), "--out", str(tmp_path / "x"))
    assert proc.returncode != 0 and "--data needs --questions" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

    questions = _write(tmp_path / "q.jsonl", [{"question": "Which city is named in: 'Fly to Bern'?",
                                               "reference": "Bern"}])
    trained: dict[str, int] = {}

    def fake_arm(setup, arm, seed, callback, base_memo):  # the arms' training is tested elsewhere
        rows = len(arm.data.read_text().splitlines())
        trained[arm.name] = rows
        return ArmResult(arm=arm.name, seed=seed, run_dir=str(tmp_path), steps=2, trained_tokens=100, rows=rows,
                         train_loss=1.0, peak_memory_gb=1.0, s_per_step=1.0, trainable_params=1, right=0,
                         right_base=0, questions=1, wins=0, regressions=0, stop_rate=None, kl=None, tuned_nll=None,
                         base_nll=None, train_s=1.0, total_s=1.0), False

    monkeypatch.setattr(curation, "run_arm", fake_arm)
    monkeypatch.setattr(curation, "prepare_model", lambda setup, callback: setup.model)
    out = tmp_path / "exp"
    payload = curation.run_curation(curation.CurationOptions(
        setup=Setup(out=out, model="unused", seeds=(0,), questions=questions), select=40, embedder="tfidf",
        data=data))
    assert payload["data"] == str(data) and payload["pool_rows"] == 238
    assert trained == {"curated": 40, "random": 40, "pool": 238}
    labels = json.loads((out / "data" / "pool.labels.json").read_text())
    assert sum(v == "clean" for v in labels.values()) == 120
    assert "built from mine.jsonl" in (out / "table.md").read_text()

"""The curation pipeline of ``mlxsft experiment curation`` on a hand-made pool, and its filter report: what
each step removed per planted label, precision per step, recall per defect."""

from __future__ import annotations

import json

import pytest

from mlxsft.experiments.curate_pool import CurationSpec, curate, filter_report

LOOP = "I hope this helps! Let me know if you have any other questions. " * 12


def _row(rid: str, question: str, answer: str, reference: str | None = None) -> dict:
    row = {"id": rid, "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
    if reference is not None:
        row["reference"] = reference
    return row


# (row, planted label)
POOL = [
    (_row("c1", "Extract the year: Maria moved to Lima in 1987.", "1987", "1987"), "clean"),
    (_row("c2", "What is the plural of 'box'?", "boxes", "boxes"), "clean"),
    (_row("c3", "Write in capital letters: blue sky", "BLUE SKY"), "clean"),
    (_row("c4", "Explain in one sentence why the sky looks blue.",
          "Air scatters blue sunlight more than red, so the sky looks blue."), "clean"),
    (_row("c5", "Is this review positive or negative? The kettle broke after two days.", "negative",
          "negative"), "clean"),
    (_row("c6", "Name the capital city of Norway.", "Oslo"), "clean"),
    (_row("d1", "Extract the year: Maria moved to Lima in 1987.", "1987", "1987"), "exact_dup"),
    (_row("r1", "Give the opposite of the word hot.", "cold\n\n" + LOOP), "rambling"),
    (_row("w1", "What is 7 + 5?", "13", "12"), "wrong"),
    (_row("w2", "Which city is mentioned? Our train to Oslo leaves at noon.", "Paris"), "wrong"),
    (_row("f1", "Extract the year: The bridge in Rome was finished in 1961.", "The year is 1961.", "1961"),
     "wrong_format"),
    (_row("x1", "Add 9 and 4.", "13", "13"), "clean"),
    (_row("x2", "Add 9 and 4.", "14", "13"), "wrong"),
]
LABELS = {row["id"]: label for row, label in POOL}


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("curation")
    pool = folder / "pool.jsonl"
    pool.write_text("".join(json.dumps(row) + "\n" for row, _ in POOL))
    return curate(pool, folder / "out", CurationSpec(select=5, embedder="tfidf"))


def test_each_step_removes_what_it_should(curated):
    assert curated.removed["exact_dup"] == ["d1"]
    assert curated.removed["repetition"] == ["r1"]
    assert sorted(curated.removed["reference"]) == ["f1", "w1"]  # reference:exact: "The year is 1961." is out
    assert curated.removed["not_best"] == ["x2"]  # the pool's other answer to "Add 9 and 4." scored higher
    assert len(curated.removed["not_selected"]) == 3  # 8 rows left, N = 5
    assert len(curated.kept) == 5 and curated.curated.is_file()
    kept_rows = [json.loads(line)["id"] for line in curated.curated.read_text().splitlines()]
    assert kept_rows == curated.kept
    everything = [i for ids in curated.removed.values() for i in ids] + curated.kept
    assert sorted(everything) == sorted(LABELS)  # every row is removed once or kept


def test_the_report_of_the_real_run(curated):
    rep = filter_report(LABELS, curated.removed, curated.kept)
    assert rep["steps"]["reference"]["by_label"]["wrong"] == 1
    assert rep["steps"]["reference"]["by_label"]["wrong_format"] == 1
    assert rep["steps"]["reference"]["precision"] == 1.0
    # before the selection the filters removed 5 rows, all defective, of the 6 planted defects
    assert rep["filters"] == {"removed": 5, "precision": 1.0, "recall": 5 / 6}
    # w2 has no reference: nothing but the selection can drop it
    assert rep["defects"]["wrong"]["filter_recall"] == pytest.approx(2 / 3)


def test_precision_and_recall_by_hand():
    labels = {"a": "clean", "b": "wrong", "c": "wrong", "d": "exact_dup", "e": "clean", "f": "truncated"}
    removed = {"exact_dup": ["d"], "reference": ["b", "f"], "not_selected": ["e"]}
    rep = filter_report(labels, removed, kept=["a", "c"])
    assert rep["steps"]["exact_dup"] == {"removed": 1, "precision": 1.0, "by_label": {
        "clean": 0, "wrong": 0, "truncated": 0, "wrong_format": 0, "rambling": 0, "exact_dup": 1, "near_dup": 0,
        "paraphrase": 0}}
    assert rep["steps"]["not_selected"]["precision"] == 0.0
    assert rep["defects"]["wrong"] == {"planted": 2, "removed": 1, "recall": 0.5, "filter_recall": 0.5, "kept": 1,
                                       "by_step": {"exact_dup": 0, "reference": 1, "not_selected": 0}}
    assert rep["defects"]["near_dup"]["recall"] is None  # none planted
    assert rep["filters"] == {"removed": 3, "precision": 1.0, "recall": 0.75}
    assert rep["overall"] == {"removed": 4, "precision": 0.75, "recall": 0.75}
    assert rep["kept_defective"] == 0.5
    assert rep["planted"]["clean"] == 2 and rep["kept"]["wrong"] == 1

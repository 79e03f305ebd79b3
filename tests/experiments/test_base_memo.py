"""The experiments' arms share the base model's answers: ``compare_models(base_memo=...)`` generates each
conversation once per template and token limit."""

from __future__ import annotations

from types import SimpleNamespace

from mlxsft.evaluate import _memoized


def test_memoized_answers_generate_each_conversation_once():
    calls: list[list[str]] = []

    def answer(convs):
        calls.append([c[0]["content"] for c in convs])
        return [SimpleNamespace(text=c[0]["content"].upper()) for c in convs]

    memo: dict = {}
    conv = lambda text: [{"role": "user", "content": text}]  # noqa: E731
    first = _memoized(answer, memo, "settings-a")
    assert [a.text for a in first([conv("a"), conv("b")])] == ["A", "B"]
    assert [a.text for a in first([conv("b"), conv("c"), conv("a")])] == ["B", "C", "A"]
    assert calls == [["a", "b"], ["c"]]  # only the new one was generated
    other = _memoized(answer, memo, "settings-b")  # another template or token limit: generated again
    other([conv("a")])
    assert calls[-1] == ["a"] and len(calls) == 3

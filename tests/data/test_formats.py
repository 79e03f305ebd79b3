"""Every row format, and every file type, through the same test: same conversation, same tokens, same mask."""

from __future__ import annotations

import json

import pytest

from mlxsft.data import load_conversations, prepare_split
from tests.data.conftest import chat, data_cfg, write_jsonl
from tests.data.helpers import supervised_runs

Q, A = "What is 2+2?", "4"

# format name, a row in that format, what is learned from it
FORMATS = [
    ("messages", chat(Q, A), [f"{A}<|im_end|>"]),
    ("prompt_completion", {"prompt": Q, "completion": A}, [f"{A}<|im_end|>"]),
    ("prompt_completion", {"prompt": [{"role": "user", "content": Q}],
                           "completion": [{"role": "assistant", "content": A}]}, [f"{A}<|im_end|>"]),
    ("sharegpt", {"conversations": [{"from": "human", "value": Q}, {"from": "gpt", "value": A}]}, [f"{A}<|im_end|>"]),
    ("alpaca", {"instruction": Q, "input": "", "output": A}, [f"{A}<|im_end|>"]),
    ("text", {"text": f"{Q} {A}"}, [f" is 2+2? {A}<|im_end|>"]),  # every token after the first, plus EOS
]


@pytest.mark.parametrize("fmt, row, learned", FORMATS,
                         ids=["messages", "prompt_completion", "prompt_completion_messages", "sharegpt", "alpaca", "text"])
@pytest.mark.parametrize("explicit", [False, True], ids=["auto", "explicit"])
def test_every_format(smol_tokenizer, tmp_path, fmt, row, learned, explicit):
    path = write_jsonl(tmp_path / "d.jsonl", [row, row])
    cfg = data_cfg(data=str(path), format=fmt if explicit else "auto")
    split = prepare_split(cfg, smol_tokenizer, "train")
    assert split.stats["rows"] == 2 and split.stats["no_supervised_rows"] == 0
    e = split.examples[0]
    assert len(e.input_ids) == len(e.loss_mask) and e.loss_mask[0] == 0
    assert supervised_runs(smol_tokenizer, e.input_ids, e.loss_mask) == learned
    if fmt != "text":  # every chat format becomes the very same conversation as the messages row
        reference = prepare_split(data_cfg(data=str(write_jsonl(tmp_path / "m.jsonl", [chat(Q, A)]))),
                                  smol_tokenizer, "train").examples[0]
        assert e.input_ids.tolist() == reference.input_ids.tolist()
        assert e.loss_mask.tolist() == reference.loss_mask.tolist()


def _write(path, rows):
    suffix = path.suffix
    if suffix == ".jsonl":
        write_jsonl(path, rows)
    elif suffix == ".json":
        path.write_text(json.dumps(rows, indent=2))
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    elif suffix == ".csv":
        import csv

        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["messages"])
            w.writeheader()
            for r in rows:
                w.writerow({"messages": json.dumps(r["messages"])})
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_every_file_type(tmp_path, suffix):
    rows = [chat(Q, A), chat("Hi", "Hello", "Bye", "Bye!", system="Be kind.")]
    path = _write(tmp_path / f"train{suffix}", rows)
    convs = load_conversations(str(path), "train", data_cfg())
    assert [c.messages for c in convs] == [r["messages"] for r in rows]
    # a row's line: JSON Lines line, JSON array element's first line, Parquet row number, CSV line after the header
    assert convs[1].source == f"{path}:{ {'.jsonl': 2, '.json': 14, '.parquet': 2, '.csv': 3}[suffix] }"


def test_json_object_files(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"data": [chat(Q, A), chat(Q, A)]}))
    assert len(load_conversations(str(path), "train", data_cfg())) == 2
    path.write_text(json.dumps(chat(Q, A)))  # a single row
    assert len(load_conversations(str(path), "train", data_cfg())) == 1
    path.write_text(json.dumps(chat(Q, A)) + "\n" + json.dumps(chat(Q, A)) + "\n")  # JSON Lines named .json
    assert len(load_conversations(str(path), "train", data_cfg())) == 2


def test_keys_arrow_fills_with_null_are_dropped(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": A, "reasoning": "2+2=4"}]},
            {"messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": A}]}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    convs = load_conversations(str(tmp_path), "train", data_cfg())
    assert convs[0].messages[1] == {"role": "assistant", "content": A, "reasoning": "2+2=4"}
    assert convs[1].messages == chat(Q, A)["messages"]  # no reasoning: None, no tool_calls: None


def test_json_array_rows_carry_their_line(tmp_path):
    path = _write(tmp_path / "train.json", [chat(Q, A), chat(Q, A)])
    lines = [c.source.rsplit(":", 1)[1] for c in load_conversations(str(path), "train", data_cfg())]
    text = path.read_text().splitlines()
    assert [text[int(n) - 1].strip() for n in lines] == ["{", "{"]


def test_inline_reasoning_in_every_chat_format(tmp_path):
    answer = "<think>\nadd them\n</think>\n\n4"
    path = write_jsonl(tmp_path / "d.jsonl", [chat(Q, answer), {"prompt": Q, "completion": answer},
                                              {"instruction": Q, "output": answer},
                                              {"conversations": [{"from": "human", "value": Q},
                                                                 {"from": "gpt", "value": answer}]}])
    for conv in load_conversations(str(path), "train", data_cfg()):
        assert conv.messages[-1] == {"role": "assistant", "content": "4", "reasoning": "add them"}, conv.source


def test_column_mapping(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"conversation": chat(Q, A)["messages"]}])
    convs = load_conversations(str(path), "train", data_cfg(columns={"messages": "conversation"}))
    assert convs[0].messages == chat(Q, A)["messages"]
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": Q, "answer": A}])
    convs = load_conversations(str(path), "train", data_cfg(columns={"prompt": "question", "completion": "answer"}))
    assert convs[0].messages == chat(Q, A)["messages"]


def test_sharegpt_and_alpaca_system_and_input(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"system": "Be terse.", "conversations": [{"from": "human", "value": Q}, {"from": "gpt", "value": A}]},
        {"instruction": "Add the numbers.", "input": "2 and 2", "output": A, "system": "Be terse."},
    ])
    a, b = load_conversations(str(path), "train", data_cfg())
    assert a.messages[0] == {"role": "system", "content": "Be terse."}
    assert b.messages == [{"role": "system", "content": "Be terse."},
                          {"role": "user", "content": "Add the numbers.\n\n2 and 2"},
                          {"role": "assistant", "content": A}]


def test_folder_splits_and_single_file(tmp_path):
    write_jsonl(tmp_path / "d" / "train.jsonl", [chat(Q, A)] * 3)
    write_jsonl(tmp_path / "d" / "validation.jsonl", [chat(Q, A)])
    cfg = data_cfg(data=str(tmp_path / "d"))
    assert len(load_conversations(cfg.data, "train", cfg)) == 3
    assert len(load_conversations(cfg.data, "valid", cfg)) == 1  # "valid" finds validation.jsonl
    from mlxsft.errors import DataError

    with pytest.raises(DataError, match="not found"):
        load_conversations(cfg.data, "test", cfg)
    single = str(tmp_path / "d" / "train.jsonl")
    with pytest.raises(DataError, match="not found"):  # a single file is only the train split
        load_conversations(single, "valid", cfg)


def test_hub_dataset_goes_through_datasets(monkeypatch):
    import datasets

    calls = []

    def fake_load(path, name=None, split=None):
        calls.append((path, name, split))
        if split != "validation" and split != "train":
            raise ValueError(f'Unknown split "{split}". Should be one of [\'train\', \'validation\'].')
        return datasets.Dataset.from_list([chat(Q, A)])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    convs = load_conversations("someone/sft-set", "valid", data_cfg())
    assert convs[0].messages == chat(Q, A)["messages"]
    assert convs[0].source == "someone/sft-set[validation]:1"
    assert calls == [("someone/sft-set", None, "valid"), ("someone/sft-set", None, "validation")]
    load_conversations("someone/sft-set:chat", "train", data_cfg())
    assert calls[-1] == ("someone/sft-set", "chat", "train")


def test_bundled_dataset_validates_clean():
    from mlxsft.data import validate_source

    report = validate_source(None, data_cfg())
    assert report.rows >= 300 and [str(p) for p in report.problems] == []

"""``mlxsft eval``: questions files, scoring with scripted answerers, run-folder resolution, and the CLI
on a tiny run (questions with --compare, loss with --data equal to the trainer's validation loss)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlxsft.backends.mlx.generate import Answer
from mlxsft.errors import DataError, RunError
from mlxsft.evaluate import EvalReport, compare, load_questions
from mlxsft.target import resolve_target


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


QUESTIONS = [
    {"question": "Capital of France?", "reference": "Paris"},
    {"question": "2+2?", "reference": 4},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Opposite of hot?"},
                  {"role": "assistant", "content": "Cold"}]},
    {"question": "Tell me a story."},
]


def test_load_questions_reads_both_shapes(tmp_path):
    qs = load_questions(write_jsonl(tmp_path / "q.jsonl", QUESTIONS))
    assert [q.text for q in qs] == ["Capital of France?", "2+2?", "Opposite of hot?", "Tell me a story."]
    assert [q.reference for q in qs] == ["Paris", "4", "Cold", None]
    assert [m["role"] for m in qs[2].messages] == ["system", "user"]  # the reference turn is not asked
    assert len(load_questions(tmp_path / "q.jsonl", limit=2)) == 2


@pytest.mark.parametrize("line, match", [("{bad json", "invalid JSON"), ('{"q": 1}', "question"),
                                         ("[1]", "JSON object")])
def test_load_questions_locates_bad_rows(tmp_path, line, match):
    path = write_jsonl(tmp_path / "q.jsonl", [QUESTIONS[0], line])
    with pytest.raises(DataError, match=match) as e:
        load_questions(path)
    assert f"{path}:2:" in str(e.value)


def scripted(answers: dict[str, str]):
    """An answerer that replies from a table, like a model that always says the same thing."""
    def answer(messages: list[dict]) -> Answer:
        text = answers[messages[-1]["content"]]
        return Answer(text=text, tokens=len(text.split()), tokens_per_sec=100.0)
    return answer


def test_compare_scores_each_model_on_known_answers(tmp_path):
    qs = load_questions(write_jsonl(tmp_path / "q.jsonl", QUESTIONS))
    base = scripted({"Capital of France?": "I think it is Paris.", "2+2?": "2 + 2 = 5",
                     "Opposite of hot?": "warm", "Tell me a story.": "Once..."})
    tuned = scripted({"Capital of France?": "Paris.", "2+2?": "The answer is 4",
                      "Opposite of hot?": "Cold", "Tell me a story.": "Once upon a time."})
    done = []
    report = compare({"base": base, "tuned": tuned}, qs, progress=lambda d, n: done.append((d, n)))
    assert done[-1] == (8, 8) and report.n_scored == 3
    assert {k: report.rows[0].scores["base"][k] for k in ("exact", "numeric", "contains")} == \
        {"exact": False, "numeric": False, "contains": True}
    assert {k: report.rows[1].scores["tuned"][k] for k in ("exact", "numeric", "contains")} == \
        {"exact": False, "numeric": True, "contains": True}
    assert report.rows[3].scores == {} and report.rows[3].verdicts == {}  # no reference, no score
    assert [r.verdicts.get("tuned") for r in report.rows] == ["right", "right", "right", None]
    totals = report.to_dict()["totals"]
    assert {k: totals["base"][k] for k in ("exact", "numeric", "contains", "right")} == \
        {"exact": 0.0, "numeric": 0.0, "contains": pytest.approx(1 / 3), "right": 0.0}
    assert {k: totals["tuned"][k] for k in ("exact", "numeric", "contains", "right")} == \
        {"exact": pytest.approx(2 / 3), "numeric": pytest.approx(1 / 3), "contains": 1.0, "right": 1.0}
    assert (totals["wins"], totals["regressions"], totals["unchanged"]) == (3, 0, 0)
    out = EvalReport(model="m", adapter="run", models=["base", "tuned"], questions_file="q.jsonl",
                     questions=report).to_dict()
    assert set(out) == {"model", "backend", "adapter", "models", "questions", "data"} and out["data"] is None
    assert out["questions"]["file"] == "q.jsonl" and len(out["questions"]["rows"]) == 4
    json.dumps(out)  # serialisable as is


# ----------------------------------------------------------------------------- run folders
def fake_run(folder: Path, model: str = "some/base", template: str | None = "{{ messages }}") -> Path:
    from mlxsft.config import load_config

    folder.mkdir(parents=True)
    (folder / "adapters.safetensors").write_bytes(b"")
    (folder / "adapter_config.json").write_text(json.dumps({"fine_tune_type": "dora", "num_layers": 2}))
    load_config(None, {"model": model, "quantize": 4, "chat_template_kwargs": {"x": 1}}).save(folder / "config.yaml")
    if template is not None:
        (folder / "chat_template.jinja").write_text(template)
    return folder


def test_a_run_folder_gives_base_model_template_and_load_settings(tmp_path):
    run = fake_run(tmp_path / "run")
    t = resolve_target(None, run)
    assert (t.model, t.adapter, t.template, t.fine_tune_type) == ("some/base", run, "{{ messages }}", "dora")
    assert t.load_kwargs["quantize"] == 4 and t.template_kwargs == {"x": 1}
    assert resolve_target("other/model", run).model == "other/model"  # --model wins
    best = run / "best"  # adapters in a sub-folder find the run's files above them
    best.mkdir()
    for f in ("adapters.safetensors", "adapter_config.json"):
        (best / f).write_bytes((run / f).read_bytes())
    assert resolve_target(None, best).template == "{{ messages }}"


def test_run_folder_errors_are_one_clear_line(tmp_path):
    with pytest.raises(RunError, match="not found"):
        resolve_target(None, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="missing adapters.safetensors, adapter_config.json"):
        resolve_target(None, tmp_path / "empty")
    run = fake_run(tmp_path / "run")
    (run / "config.yaml").unlink()
    with pytest.raises(RunError, match="pass --model"):
        resolve_target(None, run)
    assert resolve_target(None, None).model == "gemma3-270m"


# ----------------------------------------------------------------------------- the CLI on a tiny run
@pytest.fixture(scope="module")
def tuned_run(tiny_llama_dir, tmp_path_factory) -> Path:
    from tests.helpers import make_run

    return make_run(tiny_llama_dir, tmp_path_factory.mktemp("eval-run") / "run")


def eval_cli(args: list[str]) -> dict:
    from mlxsft.cli.main import cli

    result = CliRunner().invoke(cli, ["eval", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_eval_cli_questions_compare_scores_what_the_models_answered(tuned_run, tmp_path):
    from mlxsft.backends.mlx.generate import generate_answer, load_views
    from mlxsft.target import chat_template

    target = resolve_target(None, tuned_run)
    tok, views = load_views(target.model, target.adapter)
    template = chat_template(target, tok._tokenizer)
    said = generate_answer(views["tuned"].model, tok, [{"role": "user", "content": "Say something."}], template,
                           max_tokens=6).text
    assert said  # the random LoRA makes the tuned model talk
    qs = write_jsonl(tmp_path / "q.jsonl", [{"question": "Say something.", "reference": said},
                                            {"question": "What is 2+2?", "reference": "4"},
                                            {"question": "Tell me a story."}])
    out = eval_cli(["--adapter", str(tuned_run), "--questions", str(qs), "--compare", "--max-tokens", "6"])
    assert out["models"] == ["base", "tuned"] and out["data"] is None
    q = out["questions"]
    assert (q["n_questions"], q["n_scored"]) == (3, 2)
    first = q["rows"][0]
    assert first["answers"]["tuned"] == said and first["scores"]["tuned"]["exact"] is True
    assert first["answers"]["base"] != said and first["scores"]["base"]["exact"] is False
    assert q["totals"]["tuned"]["exact"] == 0.5 and q["totals"]["base"]["exact"] == 0.0
    assert q["rows"][2]["scores"] == {} and set(q["rows"][2]["tokens"]) == {"base", "tuned"}


def test_eval_cli_data_loss_equals_the_trainers_validation_loss(tuned_run, tmp_path):
    from tests.helpers import write_data

    from mlxsft.backends.mlx.generate import load_views
    from mlxsft.backends.mlx.trainer import MLXTrainer
    from mlxsft.config import load_config
    from mlxsft.data import prepare_split

    data = write_data(tmp_path / "data")
    out = eval_cli(["--adapter", str(tuned_run), "--data", str(data), "--compare"])
    d = out["data"]
    assert (d["split"], d["rows"]) == ("valid", 4) and out["questions"] is None
    base, tuned = d["results"]["base"], d["results"]["tuned"]
    assert base["tokens"] == tuned["tokens"] > 0 and base["loss"] != tuned["loss"]
    assert math.isclose(tuned["perplexity"], math.exp(tuned["loss"]), rel_tol=1e-6)

    # the trainer's own validation on the same model, data and config gives the same number
    cfg = load_config(tuned_run / "config.yaml", {"data": str(data)})
    tok, views = load_views(cfg.model.model, tuned_run)
    split = prepare_split(cfg.data, tok._tokenizer, "valid",
                          chat_template=(tuned_run / "chat_template.jinja").read_text())
    trainer = MLXTrainer(cfg, views["tuned"].model, tok, tmp_path, {}, None)
    loss, tokens = trainer.evaluate(split)
    assert tokens == tuned["tokens"] and math.isclose(loss, tuned["loss"], rel_tol=1e-5)


def test_eval_cli_needs_questions_or_data():
    from mlxsft.cli.main import cli
    from mlxsft.errors import ConfigError

    with pytest.raises(ConfigError, match="--questions FILE or --data PATH"):
        CliRunner().invoke(cli, ["eval", "--model", "x"], catch_exceptions=False)

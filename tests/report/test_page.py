"""The report page without a browser: what it holds, what it escapes, how it thins a long run, what it says when
a run folder lacks a file, curation reports, and ``mlxsft report`` as a user runs it."""

from __future__ import annotations

import json
import re

import pytest

from mlxsft.errors import RunError
from mlxsft.report import build_page, default_out, write_report
from mlxsft.report.downsample import min_max_buckets
from mlxsft.report.svg import MAX_BUCKETS, log_ticks, nice_ticks, smooth
from tests.helpers import run_cli
from tests.report.runs import COUNTS, HOSTILE, QUESTIONS, best_of_k_report, fake_run, filter_report


def _rows(html: str, table_id: str) -> list[str]:
    body = re.search(rf'<table class="questions" id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return re.findall(r"<tr[^>]*>", body)


def test_user_text_is_escaped_everywhere(tmp_path):
    html = build_page([fake_run(tmp_path / "run")])
    assert HOSTILE not in html  # in a question, a reference, an answer, a data row's tokens, the config's name
    assert html.count("<script>") == 1  # the page's own filter script, nothing else
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    assert html.count(escaped) >= 5
    assert f"user↵\nSay {escaped}&lt;|im_end|&gt;" in html  # the data row's context tokens
    assert f"<td>{escaped}</td>" in html  # the reference cell and the config's train.name


def test_questions_come_regressions_first_with_the_learned_counts(tmp_path):
    html = build_page([fake_run(tmp_path / "run")])
    rows = _rows(html, "questions-r0")
    assert len(rows) == len(QUESTIONS)
    outcomes = [re.search(r'data-outcome="(\w+)"', r).group(1) for r in rows]
    assert outcomes == ["regression", "win", "win", "win", "unchanged", "unchanged", "open"]
    assert {o: outcomes.count(o) for o in COUNTS} == COUNTS
    assert '<div class="card-value">4/6</div><div class="card-label">tuned right</div>' in html
    assert "KL(base‖tuned)" in html and "0.125" in html


def test_a_long_run_is_thinned_and_stays_under_2_mb(tmp_path):
    run = fake_run(tmp_path / "long", steps=10_000, every=1)
    out = write_report([run], tmp_path / "long.html")
    size = out.stat().st_size
    assert size <= 2 * 1024 * 1024, size
    html = out.read_text()
    paths = re.findall(r'<path class="mark series" data-run="r0" d="([^"]+)"', html)
    assert len(paths) == 8  # 6 charts, two with validation
    points = [d.count("L") + 1 for d in paths]
    assert max(points) <= 2 * MAX_BUCKETS + 2 and points[0] > MAX_BUCKETS  # thinned, not flattened
    trends = re.findall(r'<path class="mark series trend" data-run="r0"', html)
    assert len(trends) == 4  # both losses, grad norm, throughput: noisy; not the learning rate or memory


def test_the_moving_average_is_debiased_and_follows_the_data():
    assert [y for _, y in smooth([(0, 5.0), (1, 5.0), (2, 5.0)], span=10)] == pytest.approx([5.0, 5.0, 5.0])
    ramp = smooth([(float(i), float(i)) for i in range(1000)], span=20)
    assert ramp[0] == (0.0, 0.0) and 985 < ramp[-1][1] < 990  # lags a ramp by about half the span


def test_thinning_keeps_spikes_and_ends():
    points = [(float(i), 1.0) for i in range(10_000)]
    points[5_003] = (5_003.0, 50.0)
    points[7_001] = (7_001.0, -3.0)
    thin = min_max_buckets(points, 100)
    assert len(thin) <= 202
    assert thin[0] == points[0] and thin[-1] == points[-1]
    assert (5_003.0, 50.0) in thin and (7_001.0, -3.0) in thin
    assert [x for x, _ in thin] == sorted(x for x, _ in thin)
    assert min_max_buckets(points[:50], 100) == points[:50]


def test_ticks_are_round_and_cover_the_data():
    assert nice_ticks(0, 38) == [0, 10, 20, 30, 40]
    assert nice_ticks(1.17, 14.3) == [0, 5, 10, 15]
    assert log_ticks(1.05, 15.4) == [2, 5, 10]


def test_non_finite_and_missing_values_are_left_out(tmp_path):
    run = fake_run(tmp_path / "run", steps=20)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows[3]["train_loss"], rows[4]["grad_norm"] = float("nan"), float("inf")
    for r in rows:
        r.pop("tokens_per_sec", None)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 21, "train_lo')
    html = build_page([run])
    assert "no tokens_per_sec in metrics.jsonl" in html and "NaN" not in html
    loss = re.search(r'data-chart="loss-step".*?d="([^"]+)"', html, re.S).group(1)
    assert loss.count("L") + 1 == 19  # 20 steps, one NaN left out (and the line a kill cut)


def test_an_old_run_folder_says_what_it_lacks(tmp_path):
    run = fake_run(tmp_path / "old", facts=False, compare=False, weights=False)
    html = build_page([run])
    assert "no data_summary.json" in html and "no compare.json" in html
    assert "the memory plan was not recorded" in html and "none yet: the run is still going, or stopped before its first checkpoint" in html
    assert html.count('class="mark series"') == 8  # the curves are all there


def test_several_runs_share_the_charts(tmp_path):
    a = fake_run(tmp_path / "a" / "run", steps=30)
    b = fake_run(tmp_path / "b" / "run", steps=50, seed=1.0, compare=False)
    html = build_page([a, b])
    for chart in ("loss-step", "loss-tokens", "learning-rate", "grad-norm", "throughput", "memory"):
        svg = re.search(rf'<svg class="chart" data-chart="{chart}" data-runs="r0 r1".*?</svg>', html, re.S)
        assert svg, chart
        assert 'data-run="r0"' in svg.group(0) and 'data-run="r1"' in svg.group(0)
    assert "a/run · lora" in html and "b/run · lora" in html  # same folder name: told apart by the parent


def test_curation_reports_are_pages(tmp_path):
    html = build_page([filter_report(tmp_path / "clean.report.json"), best_of_k_report(tmp_path / "best.json")])
    removed = re.search(r'data-chart="removed-c0".*?</svg>', html, re.S).group(0)
    assert re.findall(r'class="bar-value"[^>]*>([\d,]+)<', removed) == ["10", "50", "0", "0", "0", "0", "100", "200",
                                                                        "0"]
    left = re.search(r'data-chart="remaining-c0".*?</svg>', html, re.S).group(0)
    assert re.findall(r'class="bar-value"[^>]*>([\d,]+)<', left)[-1] == "640"
    best = re.search(r'data-chart="best_scores-c1".*?</svg>', html, re.S).group(0)
    assert re.findall(r'class="bar-label"[^>]*>([^<]+)<', best) == ["score 0", "score 0.5", "score 1 (≥ threshold)"]
    assert re.findall(r'class="bar-value"[^>]*>([^<]+)<', best) == ["1", "1", "3"]
    assert "60.0% acceptance" in html
    spread = build_page([best_of_k_report(tmp_path / "judge.json", best=[i / 20 for i in range(20)])])
    assert 'data-chart="best_scores-c0"' in spread and spread.count('class="mark bar"') >= 10  # binned
    assert HOSTILE not in html


def test_inputs_that_are_not_runs_or_reports_fail_in_one_line(tmp_path):
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(RunError, match="neither a `data filter --report` nor"):
        build_page([tmp_path / "other.json"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="not a run folder"):
        build_page([tmp_path / "empty"])
    with pytest.raises(RunError, match="not found"):
        build_page([tmp_path / "nowhere"])


def test_default_out(tmp_path):
    run = fake_run(tmp_path / "run")
    assert default_out([run]) == run / "report.html"
    assert default_out([tmp_path / "x.report.json"]) == tmp_path / "x.report.html"
    assert str(default_out([run, run])) == "report.html"


def test_cli_writes_the_page_and_refuses_a_bad_input(tmp_path):
    run = fake_run(tmp_path / "run")
    ok = run_cli("report", str(run))
    assert ok.returncode == 0, ok.stderr
    assert (run / "report.html").is_file() and "report.html" in ok.stdout
    out = tmp_path / "pages" / "two.html"
    ok = run_cli("report", str(run), str(filter_report(tmp_path / "f.json")), "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    assert 'data-chart="removed-c0"' in out.read_text()
    bad = run_cli("report", str(tmp_path / "nowhere"))
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "nowhere: not found" in bad.stderr

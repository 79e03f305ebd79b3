"""Every number in the config has a declared range; a value outside it is a one-line ConfigError naming the field.

    pytest -q tests/test_config_ranges.py
"""

from __future__ import annotations

import math
import typing

import pytest

from mlxsft.config import Config, Range, _field_type, field_index, load_config, validate
from mlxsft.errors import ConfigError
from tests.helpers import run_cli


def _base(sec: str, name: str) -> type:
    typ = _field_type(sec, name)
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    return typing.get_origin(args[0] if args else typ) or (args[0] if args else typ)


NUMERIC = {name: _base(sec, name) for name, (sec, _) in field_index().items() if _base(sec, name) in (int, float)}

# field: (values just outside its range, values just inside)
CASES: dict[str, tuple[list, list]] = {
    "quantize": ([1, 7], [2, 5, 8]),
    "group_size": ([16, 100, 256], [32, 128]),
    "max_seq_len": ([7], [8]),
    "max_rows": ([0, -1], [1]),
    "rank": ([0], [1]),
    "alpha": ([0.0, -1.0], [1e-6]),
    "dropout": ([-1e-6, 1.0], [0.0, 0.999]),
    "num_layers": ([0, -2], [-1, 1]),
    "learning_rate": ([0.0, -1e-4], [1e-12]),
    "weight_decay": ([-1e-6], [0.0, 0.1]),
    "warmup": ([-1e-6], [0.0, 0.5, 100.0]),
    "min_lr_ratio": ([-0.1, 1.1], [0.0, 1.0]),
    "max_grad_norm": ([-1e-6], [0.0]),
    "momentum": ([-0.1, 1.0], [0.0, 0.99]),
    "epochs": ([0.0, -1.0], [0.01, 3.0]),
    "iters": ([0, -1], [1]),
    "batch_size": ([0], [1]),
    "grad_accum": ([0], [1]),
    "micro_batch_tokens": ([-1], [0, 64]),
    "seed": ([-1, 2**32], [0, 2**32 - 1]),
    "eval_every": ([-1], [0]),
    "eval_batches": ([-1], [0, 1]),
    "save_every": ([-1], [0]),
    "early_stop": ([0, -1], [1]),
    "report_every": ([0], [1]),
    "compare_max_tokens": ([0], [1]),
    "compare_limit": ([0], [1]),
    "skip_nonfinite": ([-1], [0]),
}


def test_every_numeric_field_declares_a_range_that_holds_its_default():
    index = field_index()
    missing = [n for n in NUMERIC if not isinstance(index[n][1].metadata.get("range"), Range)]
    assert missing == [], f"declare range=... in _f(...) for {missing}"
    for name in NUMERIC:
        default = index[name][1].default
        assert default is None or default in index[name][1].metadata["range"], name
    validate(Config())


def test_the_table_covers_every_numeric_field():
    assert set(CASES) == set(NUMERIC), "add the new numeric field to CASES"


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_value_just_outside_the_range_is_one_line_naming_field_and_range(name):
    outside, inside = CASES[name]
    allowed = field_index()[name][1].metadata["range"]
    for value in outside:
        with pytest.raises(ConfigError) as e:
            load_config(None, {name: value})
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"{name}: must be ") and str(allowed) in msg, msg
    for value in inside:
        assert getattr(getattr(load_config(None, {name: value}), field_index()[name][0]), name) == value


@pytest.mark.parametrize("name", sorted(n for n, t in NUMERIC.items() if t is float))
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e400"])
def test_no_float_field_takes_nan_or_inf(name, text):
    with pytest.raises(ConfigError, match=f"^{name}: must be a finite number"):
        load_config(None, {name: text})  # as the command line gives it


@pytest.mark.parametrize("name", sorted(n for n, t in NUMERIC.items() if t is int))
def test_no_int_field_takes_inf(name):
    with pytest.raises(ConfigError, match=f"^{name}: expected int"):
        load_config(None, {name: math.inf})


def test_a_yaml_file_out_of_range_names_the_file_and_field(tmp_path):
    flat = tmp_path / "flat.yaml"
    flat.write_text("epochs: .inf\n")
    with pytest.raises(ConfigError, match=rf"^{flat}: epochs: must be a finite number > 0, got inf$"):
        load_config(flat)
    nested = tmp_path / "nested.yaml"
    nested.write_text("optim:\n  min_lr_ratio: -0.1\n")
    with pytest.raises(ConfigError, match=rf"^{nested}: min_lr_ratio: must be a finite number in \[0, 1\]"):
        load_config(nested)


def test_validate_checks_a_config_built_in_code():
    cfg = Config()
    cfg.train.early_stop = 0
    with pytest.raises(ConfigError, match=r"^early_stop: must be >= 1, got 0$"):
        validate(cfg)


@pytest.mark.parametrize("args", [
    ["--min-lr-ratio", "-0.1"],
    ["--weight-decay", "-1"],
    ["--num-layers", "0"],
    ["--epochs", "inf"],
    ["--early-stop", "0"],
])
def test_cli_rejects_an_out_of_range_flag_in_one_line(args, tmp_path):
    r = run_cli("train", "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "run"), *args)
    name = args[0][2:].replace("-", "_")
    assert r.returncode != 0 and "Traceback" not in r.stderr + r.stdout, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {name}: must be "), r.stderr
    assert not (tmp_path / "run").exists()


def test_cli_rejects_an_out_of_range_yaml_value_in_one_line(tmp_path):
    cfg = tmp_path / "inf.yaml"
    cfg.write_text("train:\n  epochs: .inf\n")
    r = run_cli("train", "--config", str(cfg), "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "run"))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert lines == [f"error: {cfg}: epochs: must be a finite number > 0, got inf"], r.stderr

"""Each tracker's logs read back with that tracker's own library, as ``{metric: {step: value}}``.

    read_tensorboard(run / "tensorboard")       # tensorboard's EventAccumulator
    read_wandb(run / "wandb")                   # wandb's protobuf records (see read_wandb for the framing)
    read_mlflow(run / "mlruns", run_id)         # MlflowClient.get_metric_history
    read_trackio(run / "trackio", project, name)  # trackio's SQLiteStorage, in a subprocess (see there)
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

Curves = dict[str, dict[int, float]]


def read_tensorboard(folder: Path) -> tuple[Curves, str]:
    """(scalars, the ``config`` text summary) from every event file in ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    curves = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}
    config = acc.Tensors("config")[-1].tensor_proto.string_val[0].decode()
    return curves, config


def wandb_records(path: Path) -> list[Any]:
    """The records of a ``.wandb`` transaction log, parsed by wandb's own ``wandb_internal_pb2.Record``.

    wandb 0.31 no longer ships a Python reader of this file (``wandb.sdk.internal.datastore`` went with the
    move to wandb-core), so the framing is unwrapped here: a 7-byte header (``:W&B``, magic 0xBEE1, version 0),
    then LevelDB's log format, 32 KiB blocks of chunks ``crc32c(4) length(2) type(1) data``, type 1 a whole
    record, 2/3/4 its first/middle/last piece.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1, path
    out, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0 and length == 0:  # zero fill at the end of a block
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def read_wandb(folder: Path) -> tuple[Curves, dict, list[str]]:
    """(history by step, the config, the run ids) of every offline run in ``folder`` (a resume adds one)."""
    curves: Curves = {}
    config: dict = {}
    ids = []
    for log in sorted(folder.glob("offline-run-*/run-*.wandb")):
        for r in wandb_records(log):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                ids.append(r.run.run_id)
                config.update({i.key: json.loads(i.value_json) for i in r.run.config.update})
            elif kind == "history":
                items = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
                step = r.history.step.num
                for k, v in items.items():
                    if not k.startswith("_"):
                        curves.setdefault(k, {})[step] = v
            elif kind == "config":
                config.update({i.key: json.loads(i.value_json) for i in r.config.update})
    return curves, config, ids


def read_mlflow(store: Path, run_id: str) -> tuple[Curves, Any]:
    """(every metric's history, the run) from a file store."""
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    run = client.get_run(run_id)
    return {k: {m.step: m.value for m in client.get_metric_history(run_id, k)} for k in run.data.metrics}, run


TRACKIO_READER = """
import json, sys
from trackio.sqlite_storage import SQLiteStorage
project, name = sys.argv[1:3]
logs = SQLiteStorage.get_logs(project, name)
config = SQLiteStorage.get_run_config(project, name)
runs = SQLiteStorage.get_runs(project)
print(json.dumps({"logs": logs, "config": config, "runs": runs}, default=str))
"""


def read_trackio(store: Path, project: str, name: str) -> tuple[Curves, dict, list]:
    """(metrics by step, the config, the project's runs) from trackio's local store. In a subprocess:
    trackio fixes its store (``TRACKIO_DIR``) when it is first imported, once per process."""
    env = {**os.environ, "TRACKIO_DIR": str(store), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", TRACKIO_READER, project, name], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    curves: Curves = {}
    for row in found["logs"]:
        for k, v in row.items():
            if not k.startswith("_") and k not in ("step", "timestamp") and isinstance(v, (int, float)):
                curves.setdefault(k, {})[int(row["step"])] = v
    return curves, found["config"] or {}, found["runs"]

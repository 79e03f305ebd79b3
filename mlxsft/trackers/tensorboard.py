"""``--report-to tensorboard``: event files in ``RUN/tensorboard/`` (``tensorboard --logdir RUN/tensorboard``).

Written with tensorboard's own ``EventFileWriter`` (the one torch's ``SummaryWriter`` uses: it queues events
and writes them from its own thread), so neither TensorFlow nor torch is needed. Each metrics.jsonl number is
a scalar under its metrics.jsonl name; the resolved config is a text summary, ``config``.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from mlxsft.trackers.base import TrackerRun, config_text

LIBRARY = "tensorboard"


class TensorBoard:
    def __init__(self, run: TrackerRun):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event, self._summary = event_pb2, summary_pb2
        self.dir = run.run_dir / "tensorboard"
        self.id: Optional[str] = None  # one folder per run folder: nothing to remember
        self.where = f"event files in {self.dir} (tensorboard --logdir {self.dir})"
        self._writer = EventFileWriter(str(self.dir), max_queue_size=100, flush_secs=10)
        step = run.resumed_at or 0
        if run.resumed_at is not None:
            # TensorBoard hides what an earlier start logged from this step on: the resume logs those steps again
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._add(event_pb2.Event(step=step + 1, session_log=start))
        self._add(event_pb2.Event(step=step, summary=summary_pb2.Summary(value=[self._text("config",
                                                                                           config_text(run.config))])))

    def _add(self, event: Any) -> None:
        event.wall_time = time.time()
        self._writer.add_event(event)

    def _text(self, tag: str, text: str) -> Any:
        from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

        s = self._summary
        block = "".join(f"    {line}\n" for line in text.splitlines())  # markdown code block: keeps the layout
        return s.Summary.Value(
            tag=tag, metadata=s.SummaryMetadata(plugin_data=s.SummaryMetadata.PluginData(plugin_name="text")),
            tensor=tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[block.encode()],
                                          tensor_shape=tensor_shape_pb2.TensorShapeProto(
                                              dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)])))

    def log(self, step: int, values: dict[str, float]) -> None:
        s = self._summary
        self._add(self._event.Event(step=step, summary=s.Summary(
            value=[s.Summary.Value(tag=k, simple_value=v) for k, v in values.items()])))

    def close(self, ok: bool) -> None:
        self._writer.close()  # flushes the queue and stops the writer's thread


def start(run: TrackerRun) -> TensorBoard:
    return TensorBoard(run)

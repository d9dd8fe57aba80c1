"""The figures and lines an operator reads while a wave runs: progress (rates, ETA, per location), events,
the operational log, the terminal view, the stop flag, and the --bw-limit parser. A fake clock: no sleeps."""

from __future__ import annotations

import io
import json
import signal

import pytest
import typer
from rich.console import Console

from migrator.cli import _byte_rate
from migrator.display import LiveView, human_bytes, human_duration
from migrator.errors import WaveStopped
from migrator.events import SCHEMA, Fanout, JsonLines, event
from migrator.oplog import OpLog
from migrator.progress import WaveProgress
from migrator.stopping import Stopper


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_progress_counts_rates_eta_and_locations_from_a_resumed_journal() -> None:
    clock = Clock()
    # 10 rows: 2 removed by an earlier run, 8 pending; the manifest declares 1000 bytes.
    p = WaveProgress(10, {"REMOVED": 2, "PENDING": 8}, bytes_total=1000, locations={"dc": 6, "gcp": 4},
                     bytes_before=200, clock=clock)
    for row in range(1, 11):
        p.begin(row, "REMOVED" if row <= 2 else "PENDING", "dc" if row <= 6 else "gcp", 100 if row <= 2 else 0)
    clock.t += 10
    assert p.moved(3, "COPYING") == "dc"
    assert p.moved(3, "VERIFIED", 100) == "dc"
    assert p.moved(3, "REMOVED") == "dc"
    assert p.moved(7, "HELD") == "gcp"
    assert p.moved(99, "REMOVED") is None   # a row this wave never began
    s = p.snapshot()
    assert s.done == 4 and s.by_state == {"REMOVED": 3, "PENDING": 6, "HELD": 1}
    assert s.bytes_done == 200 + 200 + 100 and s.bytes_this_run == 100   # earlier runs' bytes are not this run's
    assert s.bytes_per_second == pytest.approx(10.0)   # 100 bytes in 10 s
    assert s.eta_seconds == pytest.approx((1000 - 500) / 10.0)
    dc, gcp = s.by_location["dc"], s.by_location["gcp"]
    assert (dc.rows, dc.reached, dc.by_state["REMOVED"]) == (6, 6, 3)
    assert (gcp.rows, gcp.by_state["HELD"], gcp.by_state["PENDING"]) == (4, 1, 3)
    record = s.as_record()
    assert json.loads(json.dumps(record)) == record   # JSON as it stands


def test_progress_rates_are_the_last_minute_and_eta_falls_back_to_rows() -> None:
    clock = Clock()
    p = WaveProgress(4, {"PENDING": 4}, clock=clock)   # no declared bytes: ETA by rows
    for row in range(1, 5):
        p.begin(row, "PENDING", "")
    p.moved(1, "REMOVED")
    clock.t += 120   # the completion leaves the 60 s window
    assert p.snapshot().objects_per_second == 0 and p.snapshot().eta_seconds is None
    p.moved(2, "REMOVED")
    clock.t += 30
    s = p.snapshot()
    assert s.objects_per_second == pytest.approx(1 / 60) and s.eta_seconds == pytest.approx(2 * 60)
    p.moved(3, "REMOVED")
    p.moved(4, "FAILED")
    assert p.snapshot().eta_seconds == 0.0


def test_events_are_versioned_json_lines_and_a_closed_reader_does_not_fail_the_wave() -> None:
    buf = io.StringIO()
    sink = JsonLines(buf)
    Fanout([sink]).emit(event("row", "wave-1", row=3, state="REMOVED"))
    line = json.loads(buf.getvalue())
    assert line["schema"] == SCHEMA == "migrator.events/1" and line["type"] == "row" and line["wave_id"] == "wave-1"
    assert line["time"].endswith("Z")

    class Gone(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    broken = JsonLines(Gone())
    broken.emit(event("row", "w"))   # no raise: the journal, not the reader, is what counts
    broken.emit(event("row", "w"))
    assert broken.failed == "Broken pipe"


def _oplog() -> tuple[OpLog, io.StringIO, Clock]:
    buf, clock = io.StringIO(), Clock()
    return OpLog(JsonLines(buf), clock=clock), buf, clock


def test_the_operational_log_has_one_line_per_step_with_the_request_id_and_progress_once_a_minute() -> None:
    log, buf, clock = _oplog()
    log.emit(event("wave.started", "w", manifest="m.csv", locations={"dc": 3}))
    log.emit(event("row", "w", row=1, state="FAILED", location="dc", source="s3://dc@b/k",
                   reason="source unreadable", detail="403", request_id="REQ-1"))
    log.emit(event("row", "w", row=2, state="REMOVED", location="dc", source="s3://dc@b/j"))
    for _ in range(3):
        log.emit(event("progress", "w", rows=3, done=1))
        clock.t += 20
    clock.t += 40
    log.emit(event("progress", "w", rows=3, done=2))
    log.emit(event("summary", "w", status="complete"))
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [x["step"] for x in lines] == ["wave.started", "FAILED", "REMOVED", "progress", "progress"]
    failed = lines[1]
    assert failed == {**failed, "level": "error", "outcome": "failed", "uri": "s3://dc@b/k", "location": "dc",
                      "request_id": "REQ-1", "reason": "source unreadable", "row": 1, "wave_id": "w"}
    assert lines[2]["level"] == "info" and lines[2]["outcome"] == "done"
    assert "locations" not in lines[0]


def test_the_live_view_shows_bars_states_locations_and_user_text_verbatim() -> None:
    view = LiveView()
    view.emit(event("progress", "wave-9", rows=10, done=4, by_state={"REMOVED": 4, "PENDING": 6},
                    bytes_done=3 * 1024 * 1024, bytes_total=8 * 1024 * 1024, bytes_per_second=1024.0,
                    objects_per_second=0.5, eta_seconds=125.0, elapsed_seconds=8.0,
                    by_location={"dc": {"rows": 10, "reached": 5, "bytes": 1024, "by_state": {"REMOVED": 4}}}))
    view.emit(event("row", "wave-9", row=7, state="HELD", reason="[red]legal hold :smile:"))
    console = Console(file=io.StringIO(), width=120, color_system=None, emoji=False, markup=False)
    console.print(view.render())
    text = console.file.getvalue()   # type: ignore[attr-defined]
    assert "wave wave-9" in text and "4/10" in text and "3.0 MiB/8.0 MiB" in text and "ETA 2m05s" in text
    assert "removed 4" in text and "dc" in text
    assert "row 7 HELD: [red]legal hold :smile:" in text
    view.emit(event("wave.stopping", "wave-9"))
    console.file = io.StringIO()
    console.print(view.render())
    assert "stopping" in console.file.getvalue()


@pytest.mark.parametrize(("seconds", "shown"), [(None, "-"), (5, "5s"), (125, "2m05s"), (7260, "2h01m"),
                                                (90000, "1d01h")])
def test_durations_read_at_a_glance(seconds: float | None, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_bytes_read_at_a_glance() -> None:
    assert (human_bytes(10), human_bytes(1536), human_bytes(5 * 1024 ** 4)) == ("10 B", "1.5 KiB", "5.0 TiB")


def test_the_stopper_names_the_first_signal_and_its_exit_code() -> None:
    s = Stopper()
    s.check()   # nothing asked: no raise
    s.request(signal.SIGTERM)
    s.request(signal.SIGINT)   # the first one counts
    assert s.requested and (s.signal_name, s.exit_code) == ("SIGTERM", 143)
    with pytest.raises(WaveStopped) as caught:
        s.check()
    assert caught.value.exit_code == 143 and "run the same command again" in str(caught.value)


@pytest.mark.parametrize(("text", "rate"), [("0", 0), ("1000", 1000), ("50M", 50 * 1024 ** 2), ("800k", 800 * 1024),
                                            ("1.5G", int(1.5 * 1024 ** 3)), ("2MiB", 2 * 1024 ** 2),
                                            ("10M/s", 10 * 1024 ** 2), (None, None)])
def test_bw_limit_takes_rclone_sizes(text: str | None, rate: int | None) -> None:
    assert _byte_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "-5M", "5X", ""])
def test_a_bad_bw_limit_is_a_usage_error(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        _byte_rate(text)



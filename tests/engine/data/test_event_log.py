"""The event log on disk: durable batches by day, every event once, manifests that match the files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from engine.data.event_log import MANIFEST, EventLog, EventLogError

DAY = 86_400.0
START = 1_733_097_600.0  # 2024-12-02T00:00:00Z


def rows(first: int, n: int, user: str = "u1", step: float = 3_600.0) -> list[dict[str, object]]:
    return [
        {"stream_id": f"{1000 + i}-0", "event_id": f"e{i}", "user_id": user, "item_id": f"i{i % 3}",
         "type": "purchase" if i % 4 == 0 else "click", "timestamp": START + i * step,
         "value": 9.5 if i % 4 == 0 else None}
        for i in range(first, first + n)
    ]  # fmt: skip


def test_batches_are_partitioned_by_utc_day_and_listed_with_counts_and_checksums(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "shop")
    assert log.append(rows(0, 30), batch="1000-0") == 30  # 30 hours: two days
    assert log.days() == ["2024-12-02", "2024-12-03"]
    manifests = [json.loads((tmp_path / "shop" / f"day={d}" / MANIFEST).read_text()) for d in log.days()]
    assert sum(e["rows"] for m in manifests for e in m["files"].values()) == 30
    assert [e["rows"] for e in manifests[0]["files"].values()] == [24]
    assert log.verify() == []
    assert not list((tmp_path / "shop").rglob("*.tmp"))


def test_a_batch_delivered_again_after_a_crash_counts_once(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "shop")
    log.append(rows(0, 10), batch="1000-0")
    log.append(rows(5, 10), batch="1005-0")  # re-delivered 5..9 plus 5 new
    log.append(rows(0, 10), batch="1000-0")  # the very same batch again
    table = log.read()
    assert table.num_rows == 15
    assert table["event_id"].to_pylist() == [f"e{i}" for i in range(15)]  # oldest first


def test_the_same_event_id_of_two_users_is_two_events(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "shop")
    log.append(rows(0, 3, user="u1") + rows(0, 3, user="u2"), batch="b")
    assert log.count() == 6


def test_training_events_stop_at_until_and_fill_missing_values(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "shop")
    log.append(rows(0, 48), batch="b")
    frame = log.training_events(until=START + DAY - 1)
    assert len(frame) == 24
    assert list(frame.columns) == ["user_id", "item_id", "type", "timestamp", "value", "event_id"]
    assert frame.loc[frame["type"] == "click", "value"].eq(1.0).all()
    assert frame.loc[frame["type"] == "purchase", "value"].eq(9.5).all()


def test_a_tampered_or_missing_file_is_reported(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "shop")
    log.append(rows(0, 30), batch="b")
    first, second = (p for p, _ in log.files())
    first.write_bytes(first.read_bytes()[:-8] + b"tampered")
    second.unlink()
    problems = log.verify()
    assert any("checksum" in p for p in problems) and any("missing" in p for p in problems)
    with pytest.raises(EventLogError, match="missing"):
        log.read()


def test_an_empty_log_reads_as_an_empty_table(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "nothing")
    assert log.read().num_rows == 0 and log.summary()["events"] == 0
    assert log.append([], batch="b") == 0


def test_a_batch_name_that_is_not_a_file_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch name"):
        EventLog(tmp_path / "shop").append(rows(0, 1), batch="../escape")


def test_logs_written_before_the_propensity_columns_read_with_nulls(tmp_path: Path) -> None:
    """Schema evolution: a batch file without the exploring impressions' columns (an older log) reads
    beside a new one, its rows null there, and training reads both."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.data.event_log import SCHEMA, EventLog

    old_schema = pa.schema([f for f in SCHEMA if f.name not in
                            ("position", "propensity", "prefix_propensity", "marginal_propensity", "policy")])
    log = EventLog(tmp_path / "events")
    log.append([{"stream_id": "2-0", "event_id": "e2", "user_id": "u1", "item_id": "i2", "type": "impression",
                 "timestamp": 1_800_000_100.0, "request_id": "r1", "position": 3, "propensity": 0.5,
                 "prefix_propensity": 0.1, "marginal_propensity": 0.2, "policy": "{}"}], batch="2-0")
    # an old batch, written the way the log wrote them before (its own schema), listed in the manifest
    folder = next((tmp_path / "events").glob("day=*"))
    old = pa.Table.from_pylist([{"stream_id": "1-0", "event_id": "e1", "user_id": "u1", "item_id": "i1",
                                 "type": "click", "timestamp": 1_800_000_000.0, "value": None,
                                 "request_id": "r1"}], schema=old_schema)
    pq.write_table(old, folder / "1-0-old.parquet")
    manifest = json.loads((folder / "_manifest.json").read_text())
    manifest["files"]["1-0-old.parquet"] = {"rows": 1, "sha256": hashlib.sha256(
        (folder / "1-0-old.parquet").read_bytes()).hexdigest()}
    (folder / "_manifest.json").write_text(json.dumps(manifest))
    assert pq.read_schema(folder / "1-0-old.parquet").get_field_index("position") == -1
    table = log.read()
    assert table.schema == SCHEMA
    rows = table.to_pylist()
    assert [r["event_id"] for r in rows] == ["e1", "e2"]
    assert {k: rows[0][k] for k in ("position", "propensity", "policy")} == {
        "position": None, "propensity": None, "policy": None}
    assert (rows[1]["position"], rows[1]["marginal_propensity"]) == (3, 0.2)
    assert log.verify() == []
    assert len(log.training_events()) == 2

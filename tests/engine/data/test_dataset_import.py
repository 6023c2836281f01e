"""``recops import`` end to end on small files: what is stored, versions, reject shares, crashes mid-import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data.schema import EVENT_WEIGHTS

import engine.data.dataset_import as dataset_import
import engine.data.dataset_store as dataset_store
import engine.data.import_sources as import_sources
from engine.data.dataset_import import ImportOptions, ImportRefused, import_dataset
from engine.data.dataset_store import DatasetStore
from engine.data.import_sources import SourceError
from tests.engine.data.fixture_files import (
    INTERACTION_HEADER,
    CliRunner,
    interaction_rows,
    sha256,
    snapshot,
    write_csv,
    write_parquet,
)

ITEM_HEADER = ["item_id", "title", "category", "price", "colour"]


def _items(n: int = 10) -> list[list[object]]:
    return [[f"i{k}", f"Item {k}", "Books" if k % 2 else "Garden", 2.5 * k, "red" if k % 3 else ""] for k in range(n)]


def _utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=datetime.fromisoformat(text).tzinfo or timezone.utc)
               .timestamp())  # fmt: skip


def test_csv_import_stores_parquet_manifest_and_checksums(tmp_path: Path, cli: CliRunner, store: DatasetStore) -> None:
    rows = interaction_rows()
    interactions = write_csv(tmp_path / "events.csv", INTERACTION_HEADER, rows)
    items = write_csv(tmp_path / "items.csv", ITEM_HEADER, _items())
    code, out, err = cli(["import", "--name", "shop", "--interactions", str(interactions), "--items", str(items)])
    assert code == 0, err
    assert "imported shop v1: 100 interactions, 20 users, 10 items" in out
    folder = store.version_dir("shop", 1)
    assert sorted(p.name for p in folder.iterdir()) == ["interactions.parquet", "items.parquet", "manifest.json"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["name"] == "shop" and manifest["version"] == 1 and manifest["recops_version"]
    assert manifest["rows"] == {"interactions": 100, "items": 10}
    assert manifest["users"] == 20 and manifest["items_with_interactions"] == 10
    assert manifest["time_range"]["min"] == 1_700_000_000 and manifest["time_range"]["max"] == 1_700_000_000 + 60 * 99
    assert manifest["time_range"]["min_utc"] == "2023-11-14T22:13:20Z"
    assert manifest["events"] == {"add_to_cart": 20, "click": 20, "purchase": 20, "rating": 20, "view": 20}
    assert manifest["source"]["interactions"]["sha256"] == sha256(interactions)
    assert manifest["source"]["items"]["sha256"] == sha256(items)
    assert manifest["source"]["interactions"]["file"] == "events.csv"
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256(folder / name) and entry["bytes"] == (folder / name).stat().st_size
    assert manifest["columns"]["item_attributes"] == ["price", "colour"]
    assert manifest["rejects"]["interactions"]["rejected"] == 0

    stored = pq.read_table(folder / "interactions.parquet")
    assert stored.schema.field("timestamp").type == pa.int64()
    assert stored.column("timestamp").to_pylist() == [r[2] for r in rows]
    assert stored.column("user_id").to_pylist() == [r[0] for r in rows]
    # weight: the event's weight (a rating is kept as the rating, not as the weight)
    expected = [EVENT_WEIGHTS[r[3]] for r in rows]
    assert stored.column("weight").to_pylist() == expected
    catalogue = pq.read_table(folder / "items.parquet")
    assert catalogue.column("price").type == pa.float64()
    assert catalogue.column("colour").to_pylist()[:3] == [None, "red", "red"]
    assert (store.root / "shop" / "current").read_text().strip() == "1"


def test_parquet_import_with_typed_columns(tmp_path: Path, store: DatasetStore) -> None:
    """Integer ids, a timestamp column and a float weight, as a Parquet writer would type them."""
    when = [datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc), datetime(2024, 3, 2, 8, 30, tzinfo=timezone.utc)]
    interactions = write_parquet(
        tmp_path / "events.parquet",
        {"user_id": [1, 2], "item_id": [10, 11], "timestamp": pa.array(when, pa.timestamp("ms", tz="UTC")),
         "weight": [0.5, 3.0], "event": ["Add to Cart", "purchase"]},
    )  # fmt: skip
    items = write_parquet(tmp_path / "items.parquet", {"item_id": [10, 11, 12], "title": ["a", None, "c"]})
    result = import_dataset(store, "typed", interactions, items)
    stored = pq.read_table(result.path / "interactions.parquet").to_pylist()
    assert [r["user_id"] for r in stored] == ["1", "2"] and [r["item_id"] for r in stored] == ["10", "11"]
    assert [r["timestamp"] for r in stored] == [int(w.timestamp()) for w in when]
    assert [r["event"] for r in stored] == ["add_to_cart", "purchase"]
    assert [r["weight"] for r in stored] == [0.5, 3.0]  # an explicit weight wins over the event's
    catalogue = pq.read_table(result.path / "items.parquet").to_pylist()
    assert [(r["item_id"], r["title"], r["category"]) for r in catalogue] == [
        ("10", "a", "unknown"), ("11", "11", "unknown"), ("12", "c", "unknown"),
    ]  # fmt: skip
    assert result.manifest["source"]["interactions"]["format"] == "parquet"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1700000000", 1_700_000_000),
        ("1700000000.75", 1_700_000_000),
        ("2024-01-02T03:04:05Z", _utc("2024-01-02T03:04:05+00:00")),
        ("2024-01-02T03:04:05+02:00", _utc("2024-01-02T03:04:05+02:00")),
        ("2024-01-02 03:04:05", _utc("2024-01-02T03:04:05+00:00")),  # no offset: UTC
        ("2024-01-02", _utc("2024-01-02T00:00:00+00:00")),
        ("2024-01-02T03:04:05.250-05:00", _utc("2024-01-02T08:04:05+00:00")),
    ],
)
def test_timestamps_unix_and_iso(tmp_path: Path, store: DatasetStore, text: str, expected: int) -> None:
    # one odd row among plain Unix seconds, so the batch takes the mixed-format path too
    rows = [["u1", "i1", "1700000100"], ["u2", "i2", text]]
    path = write_csv(tmp_path / "t.csv", ["user_id", "item_id", "timestamp"], rows)
    result = import_dataset(store, "times", path, options=ImportOptions(max_reject_share=0.0))
    stamps = pq.read_table(result.path / "interactions.parquet").column("timestamp").to_pylist()
    assert stamps == [1_700_000_100, expected]


def test_iso_only_column_and_millisecond_unit(tmp_path: Path, store: DatasetStore) -> None:
    iso = write_csv(tmp_path / "iso.csv", ["user_id", "item_id", "timestamp"],
                    [["a", "x", "2024-05-01T00:00:00Z"], ["b", "y", "2024-05-01T00:00:10Z"]])  # fmt: skip
    result = import_dataset(store, "iso", iso)
    assert result.manifest["time_range"]["min"] == _utc("2024-05-01T00:00:00+00:00")
    assert result.manifest["time_range"]["max"] - result.manifest["time_range"]["min"] == 10
    millis = write_csv(tmp_path / "ms.csv", ["user_id", "item_id", "timestamp"], [["a", "x", 1_700_000_000_500]])
    with pytest.raises(ImportRefused, match="timestamp out of range"):
        import_dataset(store, "ms", millis)  # read as seconds it is the year 55,841
    result = import_dataset(store, "ms", millis, options=ImportOptions(timestamp_unit="ms"))
    assert result.manifest["time_range"]["min"] == 1_700_000_000


def test_without_items_or_timestamps(tmp_path: Path, store: DatasetStore) -> None:
    path = write_csv(tmp_path / "e.csv", ["USER_ID ", "Item_Id"], [["u1", "b"], ["u2", "a"], ["u1", "a"]])
    result = import_dataset(store, "bare", path)
    assert result.manifest["time_range"] is None and result.manifest["events"] == {"view": 3}
    catalogue = pq.read_table(result.path / "items.parquet").to_pylist()
    assert [(r["item_id"], r["title"], r["category"]) for r in catalogue] == [("b", "b", "unknown"),
                                                                              ("a", "a", "unknown")]  # fmt: skip


def test_column_mapping(tmp_path: Path, cli: CliRunner, store: DatasetStore) -> None:
    """MovieLens' own headers, mapped with --column."""
    ratings = write_csv(tmp_path / "ratings.csv", ["userId", "movieId", "rating", "timestamp"],
                        [[1, 31, 2.5, 1260759144], [1, 1029, 3.0, 1260759179]])  # fmt: skip
    movies = write_csv(tmp_path / "movies.csv", ["movieId", "title", "genres"],
                       [[31, "Dangerous Minds (1995)", "Drama"], [1029, "Dumbo (1941)", "Animation"]])  # fmt: skip
    code, _, err = cli(["import", "--name", "ml", "--interactions", str(ratings), "--items", str(movies),
                          "--column", "user_id=userId", "--column", "item_id=movieId"])  # fmt: skip
    assert code == 0, err
    stored = store.load("ml")
    assert stored.manifest["events"] == {"rating": 2}
    assert stored.dataset.events["value"].tolist() == [2.5, 3.0]
    assert stored.dataset.items["genres"].tolist() == ["Drama", "Animation"]


# --------------------------------------------------------------------------- rejects


def test_bad_rows_are_counted_shown_and_written(tmp_path: Path, cli: CliRunner, store: DatasetStore) -> None:
    rows = interaction_rows(n_users=40)  # 200 rows
    rows[3][0] = "  "  # an empty user id once trimmed
    bad = write_csv(tmp_path / "events.csv", INTERACTION_HEADER, rows)
    code, out, err = cli(["import", "--name", "shop", "--interactions", str(bad)])
    assert code == 0, err
    assert "rejected 1 of 200 rows" in out and "row 4: empty user_id" in out
    rejects = store.version_dir("shop", 1) / "interactions.rejects.csv"
    lines = rejects.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith('4,"empty user_id","  ","i3"')
    manifest = store.manifest("shop")
    assert manifest["rows"]["interactions"] == 199
    assert manifest["rejects"]["interactions"] == {
        "read": 200, "rejected": 1, "share": 0.005, "by_reason": {"empty user_id": 1},
        "file": "interactions.rejects.csv",
    }  # fmt: skip
    assert manifest["files"]["interactions.rejects.csv"]["sha256"] == sha256(rejects)


def test_reject_share_threshold(tmp_path: Path, cli: CliRunner, store: DatasetStore) -> None:
    rows = interaction_rows()  # 100 rows
    rows[10][2] = "yesterday"
    rows[20][2] = "2024-13-45"
    rows[30][1] = ""
    path = write_csv(tmp_path / "events.csv", INTERACTION_HEADER, rows)
    code, out, err = cli(["import", "--name", "shop", "--interactions", str(path)])
    assert code == 2 and err.count("\n") == 1
    assert "3 of 100 rows rejected (3.00%, above the --max-reject-share of 1.00%)" in err
    assert "unparsable timestamp ×2" in err and str(path) in err
    assert "row 11: unparsable timestamp" in out and "row 31: empty item_id" in out
    assert store.versions("shop") == []
    failed = list((store.root / "shop" / "failed").glob("*/interactions.rejects.csv"))
    assert len(failed) == 1 and len(failed[0].read_text().splitlines()) == 4
    code, out, err = cli(["import", "--name", "shop", "--interactions", str(path), "--max-reject-share", "0.03"])
    assert code == 0 and store.versions("shop") == [1]
    assert store.manifest("shop")["rows"]["interactions"] == 97


def test_items_that_do_not_cover_the_interactions(tmp_path: Path, cli: CliRunner, store: DatasetStore) -> None:
    interactions = write_csv(tmp_path / "events.csv", INTERACTION_HEADER, interaction_rows())
    items = write_csv(tmp_path / "items.csv", ITEM_HEADER, _items(8))  # i8 and i9 are missing: 20 rows
    code, out, err = cli(["import", "--name", "shop", "--interactions", str(interactions), "--items", str(items)])
    assert code == 2 and err.count("\n") == 1
    assert "20 of 100 rows rejected" in err and "item_id not in the item file ×20" in err
    assert store.versions("shop") == []
    code, _, err = cli(["import", "--name", "shop", "--interactions", str(interactions), "--items", str(items),
                          "--max-reject-share", "0.2"])  # fmt: skip
    assert code == 0 and store.manifest("shop")["rows"] == {"interactions": 80, "items": 8}


def test_item_file_rejects(tmp_path: Path, store: DatasetStore) -> None:
    items = write_csv(tmp_path / "items.csv", ["item_id", "title"], [["a", "A"], ["b", "B"], ["a", "again"], ["", "x"]])
    interactions = write_csv(tmp_path / "events.csv", ["user_id", "item_id"], [["u", "a"], ["u", "b"]])
    with pytest.raises(ImportRefused, match=r"items.csv: 2 of 4 rows rejected") as refused:
        import_dataset(store, "dup", interactions, items)
    assert refused.value.rejects[0].by_reason == {"duplicate item_id": 1, "empty item_id": 1}
    result = import_dataset(store, "dup", interactions, items, ImportOptions(max_reject_share=0.5))
    titles = pq.read_table(result.path / "items.parquet").column("title").to_pylist()
    assert titles == ["A", "B"]  # the first occurrence of a repeated id is kept
    assert result.items is not None and (result.path / "items.rejects.csv").exists()


def test_malformed_records_are_rejects(tmp_path: Path, store: DatasetStore) -> None:
    lines = ["user_id,item_id,timestamp"] + [f"u{k},i{k},{1_700_000_000 + k}" for k in range(99)] + ["u,i,1,extra"]
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    result = import_dataset(store, "ragged", path)
    assert result.interactions.rejected == 1 and result.manifest["rows"]["interactions"] == 99
    assert result.interactions.examples[0].values == {"raw": "u,i,1,extra"}
    assert result.interactions.examples[0].reason == "wrong number of fields (expected 3, found 4)"


# ------------------------------------------------------------------------- versions


def test_versions_leave_earlier_ones_untouched(tmp_path: Path, store: DatasetStore) -> None:
    first = write_csv(tmp_path / "a.csv", INTERACTION_HEADER, interaction_rows(n_users=5))
    second = write_csv(tmp_path / "b.csv", INTERACTION_HEADER, interaction_rows(n_users=8))
    v1 = import_dataset(store, "shop", first)
    before = snapshot(v1.path)
    v2 = import_dataset(store, "shop", second)
    assert (v1.version, v2.version) == (1, 2) and store.versions("shop") == [1, 2]
    assert snapshot(v1.path) == before
    assert store.current_version("shop") == 2 and store.load("shop").manifest["users"] == 8
    assert store.load("shop", 1).manifest["users"] == 5


def _store_with_v1(tmp_path: Path, store: DatasetStore) -> tuple[Path, dict[str, str]]:
    import_dataset(store, "shop", write_csv(tmp_path / "a.csv", INTERACTION_HEADER, interaction_rows()))
    return write_csv(tmp_path / "big.csv", INTERACTION_HEADER, interaction_rows(n_users=400)), snapshot(store.root)


def _assert_untouched(store: DatasetStore, before: dict[str, str]) -> None:
    assert snapshot(store.root) == before  # v1 files, checksums and the current pointer
    assert store.versions("shop") == [1] and store.current_version("shop") == 1
    assert not [p for p in (store.root / "shop").iterdir() if p.name.startswith(".staging")]


def test_crash_mid_import_leaves_no_partial_version(
    tmp_path: Path, store: DatasetStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, before = _store_with_v1(tmp_path, store)
    calls = []
    real_write = pq.ParquetWriter.write_table

    def failing_write(self: pq.ParquetWriter, table: pa.Table, *args: object, **kwargs: object) -> None:
        calls.append(table.num_rows)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", failing_write)
    monkeypatch.setattr(dataset_import, "ROW_GROUP_ROWS", 1)  # one row group per batch
    with pytest.raises(OSError, match="No space left"):
        import_dataset(store, "shop", source, options=ImportOptions(block_bytes=4096))
    assert len(calls) == 2  # it did fail mid-stream, after a batch had been written
    _assert_untouched(store, before)


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError])
def test_interrupt_before_the_switch_leaves_no_version(
    tmp_path: Path, store: DatasetStore, monkeypatch: pytest.MonkeyPatch, failure: type[BaseException]
) -> None:
    """Everything written and flushed, then the rename never happens (Ctrl-C, a failing disk)."""
    source, before = _store_with_v1(tmp_path, store)

    def interrupted(source_dir: Path, target: Path) -> bool:
        raise failure()

    monkeypatch.setattr(dataset_store, "rename_dir_if_absent", interrupted)
    with pytest.raises(failure):
        import_dataset(store, "shop", source)
    _assert_untouched(store, before)


def test_concurrent_import_takes_the_next_number(
    tmp_path: Path, store: DatasetStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another import publishes v2 between our choice of a number and our rename: we become v3."""
    source, _ = _store_with_v1(tmp_path, store)
    real_rename = dataset_store.rename_dir_if_absent
    raced = []

    def racing_rename(source_dir: Path, target: Path) -> bool:
        if not raced:
            raced.append(target.name)
            target.mkdir()
            (target / "manifest.json").write_text('{"version": 2}')
        return real_rename(source_dir, target)

    monkeypatch.setattr(dataset_store, "rename_dir_if_absent", racing_rename)
    result = import_dataset(store, "shop", source)
    assert raced == ["v2"] and result.version == 3
    assert json.loads((result.path / "manifest.json").read_text())["version"] == 3
    assert store.current_version("shop") == 3


def test_killed_import_leaves_staging_that_the_next_import_removes(tmp_path: Path, store: DatasetStore) -> None:
    """A process killed mid-import cannot clean up: its staging directory goes at the next import."""
    source = write_csv(tmp_path / "a.csv", INTERACTION_HEADER, interaction_rows())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = store.root / "shop" / f".staging-{int(dead.stdout)}-deadbeef"
    abandoned.mkdir(parents=True)
    (abandoned / "interactions.parquet").write_bytes(b"partial")
    mine = store.root / "shop" / f".staging-{os.getpid()}-cafe0000"  # a live process's: kept
    mine.mkdir()
    import_dataset(store, "shop", source)
    assert not abandoned.exists() and mine.exists()
    assert store.versions("shop") == [1]


def test_parquet_written_by_pandas_with_categoricals(tmp_path: Path, store: DatasetStore) -> None:
    frame = pd.DataFrame({
        "user_id": pd.Categorical(["a", "b", "a"]),
        "item_id": ["x", "y", "x"],
        "event": pd.Categorical(["view", "purchase", "view"]),
        "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
    })  # fmt: skip
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    result = import_dataset(store, "pandas", path)
    assert result.manifest["events"] == {"view": 2, "purchase": 1}
    assert result.manifest["time_range"]["max_utc"] == "2024-01-03T00:00:00Z"
    assert result.manifest["users"] == 2


def test_failed_first_import_leaves_no_dataset_folder(
    tmp_path: Path, store: DatasetStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_sources, "_SNIFF_BYTES", 64)  # the bad byte is found mid-stream
    rows = interaction_rows()
    rows[50][3] = "caf\xe9"
    path = write_csv(tmp_path / "e.csv", INTERACTION_HEADER, rows, encoding="latin-1")
    with pytest.raises(SourceError, match="is not utf-8 text"):
        import_dataset(store, "new", path)
    assert not (store.root / "new").exists()

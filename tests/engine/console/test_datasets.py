"""engine.console.datasets: the imported datasets, importing uploaded files and training, audited, on a real engine."""

from __future__ import annotations

import dataclasses
import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from engine.config import Settings
from engine.console import datasets as dv
from engine.data.dataset_store import DatasetStore, datasets_root
from engine.models.registry import ModelRegistry
from engine.runtime import Engine, build_engine
from engine.storage.audit import AuditLog
from engine.storage.keys import Keys
from tests.support.imported_data import NAME, import_small_dataset, write_import_files
from tests.support.logged_events import log_events
from tests.support.synthetic_data import two_taste_dataset


@pytest.fixture
def shop_engine(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[Engine]:
    data_dir = tmp_path / "data"
    import_small_dataset(data_dir)
    engine = build_engine(Settings(data_dir=data_dir, redis_url=redis_url, dataset=NAME), start_listener=False)
    yield engine
    engine.close()


@pytest.fixture
def uploads(tmp_path: Path) -> tuple[dv.Upload, dv.Upload]:
    interactions, items = write_import_files(two_taste_dataset(seed=1), tmp_path / "files")
    return (dv.Upload("my interactions.csv", interactions.read_bytes()), dv.Upload("items.csv", items.read_bytes()))


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: what 'nothing stored changed' compares."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def audit(redis_client: redis.Redis) -> AuditLog:
    return AuditLog(redis_client, Keys())


def test_import_of_uploads_makes_a_new_version_shows_it_and_is_audited(
    shop_engine: Engine, uploads: tuple[dv.Upload, dv.Upload], redis_client: redis.Redis
) -> None:
    before = dv.datasets_frame(shop_engine)
    assert list(before.columns) == dv.DATASET_COLUMNS
    assert before[["name", "current version", "versions"]].values.tolist() == [[NAME, "v1", 1]]
    outcome = dv.import_upload(shop_engine, "ada", NAME, *uploads, max_reject_share=0.01)
    assert outcome.notice.succeeded, outcome.notice.text
    stored = DatasetStore(datasets_root(shop_engine.settings)).load(NAME)
    assert stored.version == 2
    rows = stored.manifest["rows"]
    assert f"Imported **{NAME}** v2: {rows['interactions']:,} interactions" in outcome.notice.text
    assert rows["interactions"] == len(two_taste_dataset(seed=1).events) and outcome.table.empty  # nothing rejected
    after = dv.datasets_frame(shop_engine)
    assert after[["current version", "versions", "interactions", "items"]].values.tolist() == [
        ["v2", 2, rows["interactions"], rows["items"]]]
    assert after["from"][0] == stored.manifest["time_range"]["min_utc"]
    assert stored.manifest["source"]["interactions"]["file"] == "my_interactions.csv"  # the name it was uploaded by
    entry = audit(redis_client).recent(1)[0]
    assert (entry.actor, entry.action, entry.target) == ("ada", "import_dataset", f"{NAME}:v2")


def test_a_parquet_upload_with_rejected_rows_shows_the_first_examples(
    shop_engine: Engine, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"user_id": ["u1", "u2", "", "u3"] * 30, "item_id": ["i1", "i2", "i3", "i1"] * 30,
                          "timestamp": [1_700_000_000 + i for i in range(120)]})
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    upload = dv.Upload("clicks.parquet", buffer.getvalue())
    outcome = dv.import_upload(shop_engine, "ada", "clicks", upload, None, max_reject_share=0.5)
    assert outcome.notice.succeeded, outcome.notice.text
    assert "30 of 120 rows of clicks.parquet rejected (25.00%)" in outcome.notice.text
    assert list(outcome.table.columns) == dv.REJECT_COLUMNS
    assert len(outcome.table) == 5 and set(outcome.table["file"]) == {"clicks.parquet"}
    assert outcome.table["row"].tolist() == [3, 7, 11, 15, 19]
    assert "clicks" in dv.training_choices(shop_engine) and dv.training_choices(shop_engine)[:2] == [NAME, "demo"]


def test_bad_imports_say_why_in_one_line_and_change_nothing(
    shop_engine: Engine, uploads: tuple[dv.Upload, dv.Upload], redis_client: redis.Redis
) -> None:
    root = datasets_root(shop_engine.settings)
    before = tree(root)
    interactions, items = uploads
    no_user = dv.Upload("x.csv", b"item_id,timestamp\ni1,1\n")
    refused = dv.Upload("x.csv", b"user_id,item_id\n,i1\n,i2\nu1,i1\n")
    for args, message in [
        ((NAME, None, None, 0.01), "Choose an interactions file"),
        ((NAME, no_user, None, 0.01), "x.csv"),
        ((NAME, no_user, None, 0.01), "user_id"),
        ((NAME, dv.Upload("x.xlsx", b"PK\x03\x04"), None, 0.01), "x.xlsx"),
        ((NAME, dv.Upload("x.csv", b""), None, 0.01), "x.csv"),
        (("bad name!", interactions, items, 0.01), "invalid dataset name"),
        (("demo", interactions, items, 0.01), "built-in demo world"),
        ((NAME, interactions, items, 2.0), "max-reject-share"),
    ]:
        outcome = dv.import_upload(shop_engine, "ada", *args)  # type: ignore[arg-type]
        assert outcome.notice.level == "error" and message in outcome.notice.text, (args, outcome.notice.text)
        assert "\n" not in outcome.notice.text and "recops-upload-" not in outcome.notice.text
        assert "Traceback" not in outcome.notice.text
    outcome = dv.import_upload(shop_engine, "ada", NAME, refused, None, 0.01)
    assert outcome.notice.level == "error" and "2 of 3 rows rejected" in outcome.notice.text
    assert outcome.table["row"].tolist() == [1, 2]  # the examples of a refused import are shown too
    assert {k: v for k, v in tree(root).items() if "/failed/" not in k} == before  # no version added or changed
    assert audit(redis_client).recent(1) == []


def test_nothing_is_written_when_the_audit_log_does_not_answer(
    shop_engine: Engine, uploads: tuple[dv.Upload, dv.Upload]
) -> None:
    root = datasets_root(shop_engine.settings)
    registry_file = shop_engine.settings.models_dir / "registry.json"
    before, registry_before = tree(root), registry_file.read_bytes()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        offline = dataclasses.replace(shop_engine, redis=redis.Redis(port=held.getsockname()[1],
                                                                      socket_connect_timeout=0.5))
        imported = dv.import_upload(offline, "ada", NAME, *uploads, max_reject_share=0.01)
        trained = dv.train(offline, "ada", NAME, "popularity", "")
    for outcome in (imported, trained):
        assert outcome.notice.level == "error" and "does not answer" in outcome.notice.text
    assert tree(root) == before and registry_file.read_bytes() == registry_before


def test_training_registers_candidates_with_scores_and_is_audited(
    shop_engine: Engine, redis_client: redis.Redis
) -> None:
    registry = ModelRegistry(shop_engine.settings.models_dir)
    served = registry.current_version("popularity", NAME)
    outcome = dv.train(shop_engine, "ada", NAME, "popularity", "# recency\nhalf_life_days = 3\n\n")
    assert outcome.notice.succeeded, outcome.notice.text
    assert list(outcome.table.columns) == dv.RESULT_COLUMNS and len(outcome.table) == 1
    row = outcome.table.iloc[0]
    record = registry.record("popularity", row["version"])
    assert (row["model"], row["stage"], record.stage, record.dataset) == ("popularity", "candidate", "candidate", NAME)
    assert record.lineage["params"]["half_life_days"] == 3.0
    scores = record.lineage["metrics"]["per_user"]
    assert row["P@10 per-user"] == scores["precision_at_10"] and 0.0 < row["NDCG@10 per-user"] <= 1.0
    assert registry.current_version("popularity", NAME) == served  # a candidate: nothing serves it yet
    assert f"popularity {row['version']} (candidate)" in outcome.notice.text
    entry = audit(redis_client).recent(1)[0]
    assert (entry.actor, entry.action, entry.target) == ("ada", "train_models", f"{NAME}:v1")
    assert row["version"] in entry.detail


def test_training_learns_from_the_logged_events_and_says_how_many(shop_engine: Engine) -> None:
    data_dir = shop_engine.settings.data_dir
    written = log_events(data_dir, NAME, [("zz-new", "A01", "purchase"), ("zz-new", "A02", "click"),
                                          ("zz-new", "GONE", "view")])
    outcome = dv.train(shop_engine, "ada", NAME, "item_item", "")
    assert outcome.notice.succeeded, outcome.notice.text
    assert f"Trained on **{NAME}** v1 and {written - 1} logged events: item_item " in outcome.notice.text
    assert "1 logged event left out: its item is not in the catalogue" in outcome.notice.text
    record = ModelRegistry(shop_engine.settings.models_dir).record("item_item", outcome.table.iloc[0]["version"])
    assert record.lineage["events"] == written - 1


def test_bad_training_input_says_why_and_registers_nothing(
    shop_engine: Engine, redis_client: redis.Redis, tmp_path: Path
) -> None:
    registry_file = shop_engine.settings.models_dir / "registry.json"
    before = registry_file.read_bytes()
    one_user = dv.Upload("one.csv", b"user_id,item_id\nu1,i1\nu1,i2\n")
    assert dv.import_upload(shop_engine, "ada", "lonely", one_user, None, 0.01).notice.succeeded
    for dataset, model, params, message in [
        ("nope", "popularity", "", "no dataset named 'nope'"),
        (NAME, "gbdt", "", "gbdt"),
        (NAME, "popularity", "half_life_days", "expected key=value"),
        (NAME, "popularity", "half_life_days=soon", "half_life_days"),
        (NAME, "popularity", "factors=8", "not a parameter of popularity"),
        ("lonely", "popularity", "", "at least 2"),
    ]:
        outcome = dv.train(shop_engine, "ada", dataset, model, params)
        assert outcome.notice.level == "error" and message in outcome.notice.text, (dataset, outcome.notice.text)
        assert outcome.notice.text.endswith("Nothing was trained.") and "\n" not in outcome.notice.text
    assert registry_file.read_bytes() == before
    assert [e.action for e in audit(redis_client).recent(5)] == ["import_dataset"]


def test_param_lines() -> None:
    assert dv.param_lines(" a=1 \n\n# note\nals.factors=8\n") == ["a=1", "als.factors=8"]

"""/datasets, /models and their /admin routes over real HTTP: a `recops serve` process on a data dir of
its own (the small demo world and a copy of its models) against the test Redis."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.data.dataset_store import DatasetStore
from engine.data.split import interaction_events
from engine.models.registry import ModelRegistry
from engine.storage.embedded_redis import EmbeddedRedis
from tests.support.api import ADMIN_TOKEN, ApiProcess, api_env, flush_for_a_new_api, running_api
from tests.support.imported_data import write_import_files
from tests.support.logged_events import log_events
from tests.support.synthetic_data import two_taste_dataset

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _own_data_dir(small_world_dir: Path, data: Path) -> Path:
    """The shared small world (read only) with a copy of its models: promotions here stay here."""
    data.mkdir()
    (data / "world").symlink_to(small_world_dir / "world", target_is_directory=True)
    shutil.copytree(small_world_dir / "models", data / "models")
    return data


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A two-taste shop as an interactions CSV and an item CSV."""
    return write_import_files(two_taste_dataset(seed=0), tmp_path_factory.mktemp("files"))


@pytest.fixture(scope="module")
def own_api(small_world_dir: Path, redis_server: EmbeddedRedis,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    flush_for_a_new_api(redis_server)
    data = _own_data_dir(small_world_dir, tmp_path_factory.mktemp("lifecycle") / "data")
    env = api_env(data, redis_server.url, RECOPS_HOLDOUT_DAYS="3")
    with running_api(env, data.parent / "api.log") as proc:
        yield proc


@pytest.fixture
def client(own_api: ApiProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=own_api.url, timeout=120.0) as c:
        yield c


def _data_dir(api: ApiProcess) -> Path:
    return Path(api.env["RECOPS_DATA_DIR"])


def registry_bytes(api: ApiProcess) -> bytes:
    return (_data_dir(api) / "models" / "registry.json").read_bytes()


def _upload(client: httpx.Client, name: str, files: dict[str, tuple[str, bytes]], **form: str) -> httpx.Response:
    return client.post(f"/admin/datasets/{name}/import", headers=ADMIN, files=files, data=form)


def _items(client: httpx.Client, user: str) -> list[str]:
    body = client.post("/recommendations", params={"user_id": user, "n": 10}).json()
    return [i["item_id"] for i in body["items"]]


# ---- datasets -------------------------------------------------------------------------------------


def test_import_upload_then_list_and_show(client: httpx.Client, own_api: ApiProcess,
                                          files: tuple[Path, Path]) -> None:
    interactions, items = files
    r = _upload(client, "shop", {"interactions": ("ratings.csv", interactions.read_bytes()),
                                 "items": ("items.csv", items.read_bytes())})
    assert r.status_code == 201, r.text
    body = r.json()
    store = DatasetStore(_data_dir(own_api) / "datasets")
    manifest = store.manifest("shop")
    assert body["version"] == manifest["version"] == 1
    assert body["interactions"] == manifest["rows"]["interactions"] == len(two_taste_dataset(seed=0).events)
    assert body["rejects"]["interactions"]["rejected"] == 0 and body["rejects"]["items"]["rejected"] == 0
    assert manifest["source"]["interactions"]["file"] == "ratings.csv"

    listed = client.get("/datasets").json()
    assert [(d["name"], d["current_version"], d["interactions"]) for d in listed] == [
        ("shop", 1, manifest["rows"]["interactions"])]
    assert client.get("/datasets/shop").json() == manifest
    assert client.get("/datasets/shop", params={"version": 1}).json() == manifest
    r = client.get("/datasets/shop", params={"version": 9})
    assert r.status_code == 404 and "no version 9" in r.json()["detail"]
    assert client.get("/datasets/nothing-here").status_code == 404
    assert client.get("/datasets/demo").json()["name"] == "demo"


@pytest.mark.parametrize(("files", "message"), [
    ({"interactions": ("empty.csv", b"")}, "empty.csv is empty (0 bytes)"),
    ({"interactions": ("data.xlsx", b"user_id,item_id\nu1,i1\n")}, "unsupported file type"),
    ({"interactions": ("data.csv", b"user,item_id\nu1,i1\n")}, "user_id"),
    ({"interactions": ("data.csv", b"user_id,item_id\n,i1\n,i2\n")}, "no valid rows"),
    ({"interactions": ("data.csv", b"user_id,item_id\nu1,i1\n"), "users": ("users.csv", b"customer,gender\nu1,F\n")},
     "users.csv: missing required column 'user_id'"),
])
def test_a_bad_upload_is_a_400_and_stores_nothing(client: httpx.Client, own_api: ApiProcess,
                                                  files: dict[str, tuple[str, bytes]], message: str) -> None:
    store = DatasetStore(_data_dir(own_api) / "datasets")
    before = {name: store.versions(name) for name in store.names()}
    r = _upload(client, "shop", files)
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert message in detail and "\n" not in detail and "recops-upload-" not in detail
    assert {name: store.versions(name) for name in store.names()} == before


def test_reject_share_is_a_form_field(client: httpx.Client, own_api: ApiProcess) -> None:
    rows = b"user_id,item_id\n" + b"".join(f"u{i % 3},i{i}\n".encode() for i in range(20)) + b",i0\n"
    assert _upload(client, "mixed", {"interactions": ("mixed.csv", rows)}).status_code == 400  # 1/21 > 1%
    r = _upload(client, "mixed", {"interactions": ("mixed.csv", rows)}, max_reject_share="0.1")
    assert r.status_code == 201, r.text
    assert r.json()["rejects"]["interactions"] == {"read": 21, "rejected": 1, "share": round(1 / 21, 6),
                                                   "by_reason": {"empty user_id": 1}}


def test_a_users_file_is_a_third_upload(client: httpx.Client, own_api: ApiProcess, files: tuple[Path, Path]) -> None:
    interactions, _ = files
    users = "user_id,segment\n" + "".join(f"a{u:02d},{'new' if u % 2 else 'loyal'}\n" for u in range(30))
    r = _upload(client, "shop-users", {"interactions": ("ratings.csv", interactions.read_bytes()),
                                       "users": ("users.csv", users.encode())})
    assert r.status_code == 201, r.text
    assert r.json()["rejects"]["users"] == {"read": 30, "rejected": 0, "share": 0.0, "by_reason": {}}
    manifest = DatasetStore(_data_dir(own_api) / "datasets").manifest("shop-users")
    assert (manifest["rows"]["users"], manifest["users_with_attributes"]) == (30, 30)  # the a-users of 60
    assert manifest["columns"]["user_attributes"] == {"segment": 2}
    assert manifest["source"]["users"]["file"] == "users.csv"


# ---- models ---------------------------------------------------------------------------------------


def test_models_list_is_the_registry_rows(client: httpx.Client, own_api: ApiProcess) -> None:
    registry = ModelRegistry(_data_dir(own_api) / "models")
    rows = client.get("/models").json()
    assert rows == [r.row() for r in registry.records()]
    assert {r["model"] for r in rows if r["dataset"] == "demo" and r["stage"] == "production"} == {
        "popularity", "item_item", "als"}
    assert all({"trained_at", "interactions", "events", "params", "metrics"} <= set(r) for r in rows)
    assert client.get("/models", params={"dataset": "no-such"}).json() == []


def test_train_promote_serves_the_new_version_and_rollback_restores_it(
        client: httpx.Client, own_api: ApiProcess) -> None:
    user = "u00011"
    old = client.post("/recommendations", params={"user_id": user, "n": 10}).json()
    registry = ModelRegistry(_data_dir(own_api) / "models")
    old_version = registry.current_version("als")

    r = client.post("/admin/train", headers=ADMIN,
                    json={"dataset": "demo", "model": "als", "params": {"factors": 8, "iterations": 3}})
    assert r.status_code == 200, r.text
    trained = r.json()
    assert trained["dataset"] == "demo" and trained["dataset_version"] == 1
    [version] = trained["versions"]
    assert version["model"] == "als" and version["stage"] == "candidate"
    assert version["lineage"]["params"]["factors"] == 8 and version["lineage"]["dataset"] == "demo"
    assert version["lineage"]["metrics"]["per_user"]["precision_at_10"] > 0
    assert registry.record("als", version["version"]).stage == "candidate"

    r = client.post("/admin/models/als/promote", headers=ADMIN, json={"version": version["version"]})
    assert r.status_code == 200, r.text
    assert r.json() | {"served": None} == {"action": "promote", "model": "als", "dataset": "demo",
                                           "version": version["version"], "previous": old_version, "served": None}
    assert r.json()["served"]["als"] == version["version"]
    assert registry.current_version("als") == version["version"]
    new = client.post("/recommendations", params={"user_id": user, "n": 10}).json()
    assert new["model"] == "als" and new["cache_tier"] == "miss", (old, new)  # lists are keyed by model version
    assert [i["item_id"] for i in new["items"]] != [i["item_id"] for i in old["items"]]

    r = client.post("/admin/models/als/rollback", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["previous"]) == (old_version, version["version"])
    assert registry.current_version("als") == old_version
    assert _items(client, user) == [i["item_id"] for i in old["items"]]


def test_train_on_an_uploaded_dataset_records_its_lineage(client: httpx.Client, own_api: ApiProcess,
                                                           files: tuple[Path, Path]) -> None:
    interactions, items = files
    r = _upload(client, "shop2", {"interactions": ("i.csv", interactions.read_bytes()),
                                  "items": ("c.csv", items.read_bytes())})
    assert r.status_code == 201, r.text
    r = client.post("/admin/train", headers=ADMIN, json={"dataset": "shop2", "model": "popularity"})
    assert r.status_code == 200, r.text
    [version] = r.json()["versions"]
    assert version["stage"] == "production"  # the first version on a dataset
    assert version["lineage"]["dataset_version"] == 1
    # the rows that carry a preference (impressions do not)
    assert version["lineage"]["interactions"] == len(interaction_events(two_taste_dataset(seed=0).events))
    rows = client.get("/models", params={"dataset": "shop2"}).json()
    assert [(x["model"], x["version"], x["stage"]) for x in rows] == [("popularity", version["version"], "production")]


def test_train_learns_from_the_logged_events_unless_told_not_to(client: httpx.Client, own_api: ApiProcess,
                                                                files: tuple[Path, Path]) -> None:
    interactions, items = files
    r = _upload(client, "shop3", {"interactions": ("i.csv", interactions.read_bytes()),
                                  "items": ("c.csv", items.read_bytes())})
    assert r.status_code == 201, r.text
    written = log_events(_data_dir(own_api), "shop3", [("zz-new", "A01", "purchase"), ("zz-new", "A02", "view"),
                                                       ("zz-new", "NOT-SOLD-HERE", "click")])
    r = client.post("/admin/train", headers=ADMIN, json={"dataset": "shop3", "model": "item_item"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["versions"][0]["lineage"]["events"] == written - 1
    assert body["notes"] == ["1 logged event left out: its item is not in the catalogue of dataset 'shop3' "
                             "version 1"]
    r = client.post("/admin/train", headers=ADMIN, json={"dataset": "shop3", "model": "item_item", "events": False})
    assert r.status_code == 200, r.text
    assert r.json()["versions"][0]["lineage"]["events"] == 0 and r.json()["notes"] == []
    rows = client.get("/models", params={"dataset": "shop3"}).json()
    assert [x["events"] for x in rows] == [written - 1, 0]


@pytest.mark.parametrize(("body", "message"), [
    ({"dataset": "nowhere"}, "no dataset named 'nowhere'"),
    ({"dataset": "demo", "model": "deep_magic"}, "unknown model 'deep_magic'"),
    ({"dataset": "demo", "model": "als", "params": {"bogus": 1}}, "not a parameter of als"),
    ({"dataset": "demo", "model": "als", "params": {"factors": "many"}}, "als needs int"),
    ({"dataset": "demo", "dataset_version": 2}, "only version 1"),
    ({"dataset": "demo", "model": "popularity", "engine": "spark"}, "--engine spark trains als only"),
])
def test_bad_training_input_is_a_400_and_registers_nothing(client: httpx.Client, own_api: ApiProcess,
                                                           body: dict, message: str) -> None:
    before = registry_bytes(own_api)
    r = client.post("/admin/train", headers=ADMIN, json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["detail"]
    assert registry_bytes(own_api) == before


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/admin/models/nosuch/promote", {"version": "v1"}, 404, "unknown model 'nosuch'"),
    ("/admin/models/als/promote", {"version": "20200101T000000000000Z-deadbeef"}, 404, "has no version"),
    ("/admin/models/nosuch/rollback", {}, 404, "unknown model"),
    ("/admin/models/popularity/rollback", {}, 409, "no earlier production version"),
    ("/admin/models/popularity/rollback", {"dataset": "shop"}, 409, "no production version on dataset 'shop'"),
])
def test_refused_switches_leave_the_registry_as_it_was(client: httpx.Client, own_api: ApiProcess, path: str,
                                                       body: dict, status: int, message: str) -> None:
    before = registry_bytes(own_api)
    r = client.post(path, headers=ADMIN, json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert registry_bytes(own_api) == before


def test_promoting_the_production_version_is_a_409(client: httpx.Client, own_api: ApiProcess) -> None:
    registry = ModelRegistry(_data_dir(own_api) / "models")
    before = registry_bytes(own_api)
    r = client.post("/admin/models/item_item/promote", headers=ADMIN,
                    json={"version": registry.current_version("item_item")})
    assert r.status_code == 409 and "already production" in r.json()["detail"]
    r = client.post("/admin/models/item_item/promote", headers=ADMIN,
                    json={"version": registry.current_version("item_item"), "dataset": "shop"})
    assert r.status_code == 409 and "not 'shop'" in r.json()["detail"]
    assert registry_bytes(own_api) == before


def test_admin_routes_need_the_token(client: httpx.Client, own_api: ApiProcess) -> None:
    before = registry_bytes(own_api)
    assert client.post("/admin/models/als/rollback").status_code == 401
    assert client.post("/admin/train", json={"dataset": "demo"}).status_code == 401
    assert client.post("/admin/datasets/x/import", files={"interactions": ("a.csv", b"user_id,item_id\n")},
                       headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert registry_bytes(own_api) == before


def test_a_switch_without_the_audit_log_is_a_503(small_world_dir: Path, tmp_path: Path) -> None:
    """Redis stops after the API started: a promotion cannot be audited, so it is not made."""
    data = _own_data_dir(small_world_dir, tmp_path / "data")
    server = EmbeddedRedis(data_dir=tmp_path / "redis").start()
    try:
        with running_api(api_env(data, server.url), tmp_path / "api.log") as api:
            registry = ModelRegistry(data / "models")
            candidate = registry.save("popularity", registry.load("popularity"), dataset="demo")
            before = registry_bytes(api)
            server.stop()
            with httpx.Client(base_url=api.url, timeout=30.0) as c:
                r = c.post("/admin/models/popularity/promote", headers=ADMIN, json={"version": candidate})
                assert r.status_code == 503, r.text
                assert "audit log" in r.json()["detail"]
                assert c.post("/admin/models/popularity/rollback", headers=ADMIN).status_code == 503
            assert registry_bytes(api) == before
            assert registry.record("popularity", candidate).stage == "candidate"
    finally:
        server.stop()

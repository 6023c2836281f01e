"""`recops import --users`: a user attribute table stored beside the interactions, checked like the item file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data.dataset_store import USERS_FILE, DatasetStore
from tests.engine.data.fixture_files import (
    INTERACTION_HEADER,
    CliRunner,
    interaction_rows,
    sha256,
    snapshot,
    write_csv,
    write_parquet,
)

USER_HEADER = ["user_id", "gender", "zip"]


def user_rows(n: int = 20) -> list[list[object]]:
    """Users u0..u{n-1} of ``interaction_rows``: a gender, and a zip code with a leading zero."""
    return [[f"u{u}", "F" if u % 3 == 0 else "M", f"0{1000 + u}"] for u in range(n)]


def _import(tmp: Path, users: Path, *extra: str) -> list[str]:
    interactions = write_csv(tmp / "interactions.csv", INTERACTION_HEADER, interaction_rows())
    return ["import", "--name", "shop", "--interactions", str(interactions), "--users", str(users), *extra]


def test_users_file_is_stored_with_its_counts_and_checksums(tmp_path: Path, cli: CliRunner,
                                                            store: DatasetStore) -> None:
    # u0..u14 of the 20 who interacted, and u99 who did not; u1 has no gender
    rows = [r for r in user_rows(15) if r[0] != "u1"] + [["u1", "", "01001"], ["u99", "F", "09999"]]
    users = write_csv(tmp_path / "users.csv", USER_HEADER, rows)
    code, out, err = cli(_import(tmp_path, users))
    assert code == 0 and err == "", err
    assert "user attributes: 16 users, 15 of them with interactions; gender (2 values), zip (16 values)" in out
    assert f"no rows of {users} rejected" in out

    manifest = store.manifest("shop")
    assert manifest["rows"] == {"interactions": 100, "items": 10, "users": 16}
    assert manifest["users_with_attributes"] == 15 and manifest["users"] == 20
    assert manifest["columns"]["user_attributes"] == {"gender": 2, "zip": 16}
    stored = store.version_dir("shop", 1) / USERS_FILE
    assert manifest["files"][USERS_FILE] == {"bytes": stored.stat().st_size, "sha256": sha256(stored), "rows": 16}
    assert manifest["source"]["users"]["sha256"] == sha256(users)
    assert manifest["source"]["users"]["columns"] == {"user_id": "user_id", "gender": "gender", "zip": "zip"}
    assert manifest["rejects"]["users"]["rejected"] == 0

    table = store.load("shop").dataset.users
    assert table is not None and list(table.columns) == ["user_id", "gender", "zip"]
    by_user = table.set_index("user_id")
    assert by_user.loc["u3", "gender"] == "F" and by_user.loc["u3", "zip"] == "01003"  # text: the zero stays
    assert pd.isna(by_user.loc["u1", "gender"])  # an empty value is missing, not ""

    code, out, _ = cli(["datasets", "show", "shop"])
    assert code == 0 and re.search(r"\n  user attributes +gender \(2 values\), zip \(16 values\)\n", out)
    assert re.search(rf"\n  users file +users\.csv \(\d+ bytes, sha256 {sha256(users)}\)\n", out)
    code, out, _ = cli(["datasets", "show", "shop", "--json"])
    assert json.loads(out)["files"][USERS_FILE]["rows"] == 16


def test_parquet_users_with_numbers_are_stored_as_labels(tmp_path: Path, cli: CliRunner, store: DatasetStore) -> None:
    users = write_parquet(tmp_path / "users.parquet", {"User_ID": [f"u{u}" for u in range(20)],
                                                       "age": pa.array(range(20, 40), pa.int64()),
                                                       "plan": pa.array(["pro", "free"] * 10).dictionary_encode()})
    code, _, err = cli(_import(tmp_path, users))
    assert code == 0, err
    table = pq.read_table(store.version_dir("shop", 1) / USERS_FILE)
    assert table.schema == pa.schema([("user_id", pa.string()), ("age", pa.string()), ("plan", pa.string())])
    assert table.column("age").to_pylist()[:2] == ["20", "21"]


def test_a_duplicate_user_keeps_its_first_row_and_counts_as_a_reject(tmp_path: Path, cli: CliRunner,
                                                                     store: DatasetStore) -> None:
    rows = user_rows(20) + [["u0", "M", "00000"]]
    users = write_csv(tmp_path / "users.csv", USER_HEADER, rows)
    code, out, err = cli(_import(tmp_path, users, "--max-reject-share", "0.1"))
    assert code == 0, err
    assert f"rejected 1 of 21 rows of {users} (4.76%): duplicate user_id ×1" in out
    assert "row 21: duplicate user_id: user_id='u0'" in out
    table = store.load("shop").dataset.users
    assert table is not None and table.set_index("user_id").loc["u0", "gender"] == "F"  # the first row wins
    manifest = store.manifest("shop")
    assert manifest["rejects"]["users"]["by_reason"] == {"duplicate user_id": 1}
    assert manifest["files"]["users.rejects.csv"]["rows"] == 1


def test_a_dataset_imported_without_users_has_no_users_table(tmp_path: Path, cli: CliRunner,
                                                             store: DatasetStore) -> None:
    interactions = write_csv(tmp_path / "e.csv", INTERACTION_HEADER, interaction_rows())
    code, out, err = cli(["import", "--name", "shop", "--interactions", str(interactions)])
    assert code == 0 and "user attributes" not in out, err
    manifest = store.manifest("shop")
    assert "users" not in manifest["rows"] and "user_attributes" not in manifest["columns"]
    assert USERS_FILE not in manifest["files"] and store.load("shop").dataset.users is None


BAD_USERS: dict[str, tuple[list[str], list[list[object]], str]] = {
    "no user_id": (["customer", "gender"], [["u0", "F"]], "users.csv: missing required column 'user_id' "
                                                          "(found: customer, gender)"),
    "header only": (USER_HEADER, [], "users.csv has a header but no data rows"),
    "duplicates": (USER_HEADER, user_rows(20) + user_rows(5),
                   "users.csv: 5 of 25 rows rejected (20.00%, above the --max-reject-share of 1.00%): "
                   "duplicate user_id ×5"),
    "no valid row": (USER_HEADER, [["", "F", "1"], [" ", "M", "2"]],
                     "users.csv: no valid rows, all 2 rejected: empty user_id ×2"),
    "unsafe name": (["user_id", "tier=gold"], [["u0", "y"]], "users.csv: the column name 'tier=gold' holds '='"),
}


@pytest.mark.parametrize("case", list(BAD_USERS))
def test_bad_users_files_exit_2_and_change_nothing(case: str, tmp_path: Path, cli: CliRunner,
                                                   store: DatasetStore) -> None:
    good = write_csv(tmp_path / "good.csv", USER_HEADER, user_rows())
    assert cli(_import(tmp_path, good))[0] == 0
    before = snapshot(store.root)
    header, rows, message = BAD_USERS[case]
    code, out, err = cli(_import(tmp_path, write_csv(tmp_path / "users.csv", header, rows)))
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), (out, err)
    assert message in err and "Traceback" not in out + err
    after = snapshot(store.root)
    # a refused import keeps its rejected rows aside under failed/, and changes nothing else
    assert {k: v for k, v in after.items() if not k.startswith("shop/failed/")} == before
    assert store.load("shop").version == 1


def test_an_empty_users_file_exits_2_before_anything_is_written(tmp_path: Path, cli: CliRunner,
                                                                store: DatasetStore) -> None:
    users = tmp_path / "users.csv"
    users.write_bytes(b"")
    code, _, err = cli(_import(tmp_path, users))
    assert code == 2 and err == f"error: {users} is empty (0 bytes)\n"
    assert snapshot(store.root) == {}

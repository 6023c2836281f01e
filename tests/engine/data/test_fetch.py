"""MovieLens-100k from the recbole wheel: conversion on a tiny fake wheel, pip offline, the real wheel when at hand."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.data.schema import EVENT_WEIGHTS

from engine.data.fetch import (
    INTER_MEMBER,
    ITEM_MEMBER,
    USER_MEMBER,
    FetchError,
    add_fetch_arguments,
    classic_title,
    convert_wheel,
    fetch_command,
    fetch_ml100k,
    age_group,
    genre_flags,
    has_ml100k,
    write_import_files,
    write_import_users,
)
from engine.data.dataset_import import import_dataset
from engine.data.dataset_store import DatasetStore
from engine.data.movielens import ML100K_GENRES, load_movielens
from tests.conftest import missing
from tests.support.synthetic_data import ml100k_genre_flags

WHEEL_NAME = "recbole-1.2.1-py3-none-any.whl"
# where PyPI serves the wheel; pip's HTTP cache files it under the SHA-224 of this address
WHEEL_URL = (
    "https://files.pythonhosted.org/packages/ab/fe/7d606cb7cd2b166a36b100cb9435d21014ceee16c192d972deb0976967a8/"
    + WHEEL_NAME
)

INTER = [
    "user_id:token\titem_id:token\trating:float\ttimestamp:float",
    "196\t1\t3\t881250949",
    "186\t2\t5.0\t891717742",
    "",
    "196\t3\t1\t878887116",
    "22\t1\t4\t878887117",
]
ITEM = [
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
    "1\tToy Story\t1995\tAnimation Children's Comedy",
    "2\tMisérables, Les\t1995\tDrama Musical",
    "3\tLand Before Time III: The Time of the Great Giving (1995)\tV\tAnimation Children's",
    "4\tunkonwn\tunkonwn\tunknown",
    "5\tGood Morning\t1971\tSpace-Western",
]

USER = [
    "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
    "196\t49\tM\twriter\t55105",
    "186\t39\tF\texecutive\t00000",
    "22\t25\tM\twriter\t40206",
    "7\t17\tF\tstudent\tV3N4P",  # rated nothing: listed all the same
]


CHILDRENS = "Children's"


EXPECTED_U_DATA = ["196\t1\t3\t881250949", "186\t2\t5\t891717742", "196\t3\t1\t878887116", "22\t1\t4\t878887117"]
EXPECTED_U_ITEM = [
    f"1|Toy Story (1995)||||{ml100k_genre_flags('Animation', CHILDRENS, 'Comedy')}",
    f"2|Misérables, Les (1995)||||{ml100k_genre_flags('Drama', 'Musical')}",
    f"3|Land Before Time III: The Time of the Great Giving (1995) (V)||||{ml100k_genre_flags('Animation', CHILDRENS)}",
    f"4|unknown||||{ml100k_genre_flags('unknown')}",
    f"5|Good Morning (1971)||||{ml100k_genre_flags('unknown')}",
]
EXPECTED_U_USER = ["196|49|M|writer|55105", "186|39|F|executive|00000", "22|25|M|writer|40206", "7|17|F|student|V3N4P"]
FAKE_COUNTS = (len(EXPECTED_U_DATA), len(EXPECTED_U_ITEM))


def _fake_wheel(directory: Path, inter: list[str] = INTER, item: list[str] = ITEM, user: list[str] = USER) -> Path:
    """A wheel pip accepts as recbole 1.2.1, holding only small atomic files."""
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / WHEEL_NAME
    dist_info = "recbole-1.2.1.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(INTER_MEMBER, "\n".join(inter) + "\n")
        archive.writestr(ITEM_MEMBER, "\n".join(item) + "\n")
        archive.writestr(USER_MEMBER, "\n".join(user) + "\n")
        archive.writestr(f"{dist_info}/METADATA", "Metadata-Version: 2.1\nName: recbole\nVersion: 1.2.1\n")
        archive.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{dist_info}/RECORD", "")
    return wheel


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="latin-1").splitlines()


# ---- conversion -------------------------------------------------------------------------
def test_classic_title() -> None:
    assert classic_title("Toy Story", "1995") == "Toy Story (1995)"
    assert classic_title("Land Before Time III (1995)", "V") == "Land Before Time III (1995) (V)"
    assert classic_title("unkonwn", "unkonwn") == "unknown"
    assert classic_title(" Heat ", "") == "Heat"


def test_genre_flags() -> None:
    assert genre_flags("Action Sci-Fi") == ml100k_genre_flags("Action", "Sci-Fi").split("|")
    assert genre_flags("") == ml100k_genre_flags("unknown").split("|")
    assert genre_flags("Bollywood Drama") == ml100k_genre_flags("unknown", "Drama").split("|")


def test_convert_fake_wheel_to_classic_files(tmp_path: Path) -> None:
    converted = convert_wheel(_fake_wheel(tmp_path / "wheels"))
    assert converted.u_data == EXPECTED_U_DATA
    assert converted.u_item == EXPECTED_U_ITEM
    assert converted.u_user == EXPECTED_U_USER


def test_age_groups_are_movielens_1m_s() -> None:
    assert [age_group(a) for a in (7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73)] == [
        "under 18", "under 18", "18-24", "18-24", "25-34", "25-34", "35-44", "35-44", "45-49", "45-49",
        "50-55", "50-55", "56+", "56+"]  # fmt: skip


def test_a_wheel_whose_users_miss_a_rater_writes_nothing(tmp_path: Path) -> None:
    _fake_wheel(tmp_path / "wheels", user=USER[:2])
    with pytest.raises(FetchError, match=r"2 users who rated are not in .*ml-100k\.user, e\.g\. 186"):
        fetch_ml100k(tmp_path / "ml-100k", wheel_dir=tmp_path / "wheels", expected=FAKE_COUNTS)
    assert not (tmp_path / "ml-100k").exists()


def test_converted_files_load_as_ml100k(tmp_path: Path) -> None:
    target = tmp_path / "ml-100k"
    _fake_wheel(tmp_path / "wheels")
    fetch_ml100k(target, wheel_dir=tmp_path / "wheels", expected=FAKE_COUNTS)
    assert _lines(target / "u.data") == EXPECTED_U_DATA
    assert _lines(target / "u.item") == EXPECTED_U_ITEM
    assert _lines(target / "u.user") == EXPECTED_U_USER
    assert (target / "u.item").read_bytes().count("é".encode("latin-1")) == 1

    ds = load_movielens(target)
    items = ds.items.set_index("item_id")
    assert ds.n_users == 3 and len(ds.events) == 4 and len(items) == 5
    assert items.loc["2", "title"] == "Misérables, Les (1995)"
    assert items.loc["1", "genres"] == "Animation|Children's|Comedy"
    assert items["category"].to_dict() == {"1": "Animation", "2": "Drama", "3": "Animation", "4": "unknown",
                                           "5": "unknown"}  # fmt: skip
    assert items.loc["1", "avg_rating"] == pytest.approx(3.5)
    assert sorted(ds.events["value"]) == [1.0, 3.0, 4.0, 5.0]
    assert list(target.iterdir()) and not list(target.glob(".*partial"))


def test_import_files_are_read_by_recops_import_as_they_are(tmp_path: Path) -> None:
    target = tmp_path / "ml-100k"
    _fake_wheel(tmp_path / "wheels")
    fetch_ml100k(target, wheel_dir=tmp_path / "wheels", expected=FAKE_COUNTS)
    ratings, items = write_import_files(load_movielens(target), target)
    users = write_import_users(target)
    assert users.read_text(encoding="utf-8").splitlines() == [
        "user_id,age,age_group,gender,occupation,zip_code", "196,49,45-49,M,writer,55105",
        "186,39,35-44,F,executive,00000", "22,25,25-34,M,writer,40206", "7,17,under 18,F,student,V3N4P"]
    assert ratings.read_text(encoding="utf-8").splitlines()[:2] == ["user_id,item_id,rating,timestamp",
                                                                     "196,3,1,878887116"]  # by time
    assert items.read_text(encoding="utf-8").splitlines()[:3] == [
        "item_id,title,category,genres", "1,Toy Story (1995),Animation,Animation|Children's|Comedy",
        '2,"Misérables, Les (1995)",Drama,Drama|Musical']  # quoted: the title holds the separator
    store = DatasetStore(tmp_path / "datasets")
    result = import_dataset(store, "ml", ratings, items, users=users)
    assert result.interactions.rejected == 0 and result.users is not None and result.users.rejected == 0
    assert result.manifest["columns"]["user_attributes"] == {
        "age": 4, "age_group": 4, "gender": 2, "occupation": 3, "zip_code": 4}
    stored = store.load("ml").dataset
    assert stored.users is not None
    assert stored.users.set_index("user_id").loc["186"].to_dict() == {
        "age": "39", "age_group": "35-44", "gender": "F", "occupation": "executive", "zip_code": "00000"}
    assert len(stored.events) == 4 and set(stored.events["type"]) == {"rating"}
    assert stored.events["rating"].tolist() == [1.0, 4.0, 3.0, 5.0]  # by time
    assert set(stored.events["weight"]) == {EVENT_WEIGHTS["rating"]}  # a rating is no weight
    catalogue = stored.items.set_index("item_id")
    assert catalogue.loc["2", "title"] == "Misérables, Les (1995)" and catalogue.loc["2", "category"] == "Drama"
    assert catalogue.loc["3", "genres"] == "Animation|Children's"  # kept as an item attribute
    assert not list(target.glob(".*partial"))


def test_fetch_is_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "ml-100k"
    _fake_wheel(tmp_path / "wheels")
    fetch_ml100k(target, wheel_dir=tmp_path / "wheels", expected=FAKE_COUNTS)
    assert has_ml100k(target, FAKE_COUNTS)
    before = (target / "u.data").stat().st_mtime_ns
    # an empty wheel folder would make pip fail: the second call must not run it
    fetch_ml100k(target, wheel_dir=tmp_path / "no-wheels", expected=FAKE_COUNTS)
    assert (target / "u.data").stat().st_mtime_ns == before


def test_incomplete_target_is_redone(tmp_path: Path) -> None:
    target = tmp_path / "ml-100k"
    target.mkdir()
    (target / "u.data").write_text(EXPECTED_U_DATA[0] + "\n")
    assert not has_ml100k(target, FAKE_COUNTS)
    _fake_wheel(tmp_path / "wheels")
    fetch_ml100k(target, wheel_dir=tmp_path / "wheels", expected=FAKE_COUNTS)
    assert _lines(target / "u.data") == EXPECTED_U_DATA


def test_pip_failure_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FetchError, match=r"pip could not download recbole==1\.2\.1 in .*empty.*exited with"):
        fetch_ml100k(tmp_path / "ml-100k", wheel_dir=tmp_path / "empty")
    assert not (tmp_path / "ml-100k").exists()


def test_wrong_counts_write_nothing(tmp_path: Path) -> None:
    _fake_wheel(tmp_path / "wheels")
    with pytest.raises(FetchError, match="holds 4 ratings and 5 movies, not the 100000 and 1682"):
        fetch_ml100k(tmp_path / "ml-100k", wheel_dir=tmp_path / "wheels")
    assert not (tmp_path / "ml-100k").exists()


@pytest.mark.parametrize(
    ("inter", "item", "message"),
    [
        (INTER, [ITEM[0].replace("class", "genre"), *ITEM[1:]], r"ml-100k\.item line 1: no column class"),
        ([*INTER, "1\t2\t3"], ITEM, r"ml-100k\.inter line 7: expected 4 fields, found 3"),
        ([*INTER[:2], "196\t1\t3.5\t881250949"], ITEM, r"ml-100k\.inter line 3: rating '3\.5' is not a whole number"),
        (INTER, [*ITEM, "6\tThis | That\t1990\tDrama"], r"ml-100k\.item line 7: .*'\|'"),
    ],
    ids=["missing-column", "short-row", "half-star", "pipe-in-title"],
)
def test_malformed_atomic_files(tmp_path: Path, inter: list[str], item: list[str], message: str) -> None:
    with pytest.raises(FetchError, match=message):
        convert_wheel(_fake_wheel(tmp_path, inter, item))


def test_not_the_recbole_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("recbole/__init__.py", "")
    with pytest.raises(FetchError, match=r"has no recbole/dataset_example/ml-100k/ml-100k\.inter"):
        convert_wheel(wheel)


def test_fetch_command_reports_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_fetch_arguments(parser)
    (tmp_path / "empty").mkdir()
    args = parser.parse_args(["--to", str(tmp_path / "out"), "--wheel-dir", str(tmp_path / "empty")])
    assert fetch_command(args) == 1
    assert "fetch-movielens: pip could not download" in capsys.readouterr().err
    assert parser.parse_args([]).to == Path("data/ml-100k")


# ---- the real wheel, only when it is already on this machine -----------------------------
def _local_wheel_dir(tmp_path: Path) -> Path | None:
    """A folder holding the real wheel: $RECOPS_RECBOLE_WHEEL (file or folder), else pip's HTTP cache."""
    given = os.environ.get("RECOPS_RECBOLE_WHEEL")
    if given:
        path = Path(given)
        return path.parent if path.is_file() else path
    done = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None
    hashed = hashlib.sha224(WHEEL_URL.encode()).hexdigest()
    body = Path(done.stdout.strip(), "http-v2", *hashed[:5], hashed + ".body")
    if not body.is_file():
        return None
    (tmp_path / "wheels").mkdir()
    shutil.copyfile(body, tmp_path / "wheels" / WHEEL_NAME)
    return tmp_path / "wheels"


def test_real_ml100k_from_the_wheel(tmp_path: Path) -> None:
    wheels = _local_wheel_dir(tmp_path)
    if wheels is None:
        missing("recbole 1.2.1 wheel not on this machine (set RECOPS_RECBOLE_WHEEL to a file or folder; .ci/run does)")
    target = fetch_ml100k(tmp_path / "ml-100k", wheel_dir=wheels)
    ds = load_movielens(target)
    assert (ds.n_users, ds.n_items, len(ds.events)) == (943, 1682, 100_000)
    items = ds.items.set_index("item_id")
    assert items.loc["1", "title"] == "Toy Story (1995)"
    assert items.loc["1", "avg_rating"] == pytest.approx(3.878, abs=5e-4)
    assert items.loc["267", "title"] == "unknown"
    ratings, counts = np.unique(ds.events["value"], return_counts=True)
    assert dict(zip(ratings.tolist(), counts.tolist(), strict=True)) == {
        1.0: 6110, 2.0: 11370, 3.0: 27145, 4.0: 34174, 5.0: 21201,
    }  # fmt: skip
    # the command adds the files `recops import` reads, and they import whole
    args = argparse.Namespace(to=target, wheel_dir=wheels)
    assert fetch_command(args) == 0
    store = DatasetStore(tmp_path / "datasets")
    result = import_dataset(store, "ml-100k", target / "ratings.csv", target / "items.csv")
    assert (result.manifest["rows"], result.manifest["users"]) == ({"interactions": 100_000, "items": 1_682}, 943)
    assert result.interactions.rejected == 0
    # and with users.csv: ml-100k's 943 users (670 men, 273 women; 21 occupations; 61 ages in 7 groups)
    result = import_dataset(store, "ml-100k", target / "ratings.csv", target / "items.csv", users=target / "users.csv")
    m = result.manifest
    assert (m["rows"]["users"], m["users_with_attributes"], result.users and result.users.rejected) == (943, 943, 0)
    assert m["columns"]["user_attributes"] == {"age": 61, "age_group": 7, "gender": 2, "occupation": 21,
                                               "zip_code": 795}
    genders = store.load("ml-100k").dataset.users["gender"].value_counts().to_dict()  # type: ignore[index]
    assert genders == {"M": 670, "F": 273}

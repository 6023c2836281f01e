"""MovieLens loaders on small hand-written files of both layouts, and every refusal they make."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.movielens import ML100K_GENRES, load_movielens
from engine.data.schema import EVENT_COLUMNS, ITEM_COLUMNS, DatasetError
from tests.support.synthetic_data import ml100k_genre_flags

U_DATA = [
    "1\t10\t5\t881250949",
    "1\t20\t3\t881250950",
    "2\t10\t4\t881250000",
    "3\t30\t1\t881260000",
    "2\t30\t2\t881270000",
]


U_ITEM = [
    f"10|Toy Story (1995)|01-Jan-1995||http://x|{ml100k_genre_flags('Animation', 'Comedy')}",
    f"20|Café Society (1995)|01-Jan-1995||http://x|{ml100k_genre_flags()}",
    f"30|Heat (1995)|01-Jan-1995||http://x|{ml100k_genre_flags('Action', 'Crime', 'Thriller')}",
    f"40|Unrated (1996)|01-Jan-1996||http://x|{ml100k_genre_flags('unknown')}",
]

RATINGS_CSV = [
    "userId,movieId,rating,timestamp",
    "7,1,4.0,964982703",
    "7,3,4.5,964981247",
    "8,1,0.5,964982224",
    "9,2,3.0,964983815",
]
MOVIES_CSV = [
    "movieId,title,genres",
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy",
    '2,"American President, The (1995)",Comedy|Drama|Romance',
    "3,Grumpier Old Men (1995),(no genres listed)",
    "4,Nobody Rated This (2001),Drama",
]


def _write(directory: Path, name: str, lines: list[str], encoding: str = "utf-8") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text("".join(f"{line}\n" for line in lines), encoding=encoding)
    return directory


def _ml100k(tmp_path: Path, data: list[str] = U_DATA, item: list[str] = U_ITEM) -> Path:
    d = tmp_path / "ml-100k"
    _write(d, "u.data", data)
    return _write(d, "u.item", item, encoding="latin-1")


def _ml_latest(tmp_path: Path, ratings: list[str] = RATINGS_CSV, movies: list[str] = MOVIES_CSV) -> Path:
    d = tmp_path / "ml-latest-small"
    _write(d, "ratings.csv", ratings)
    return _write(d, "movies.csv", movies)


# ---- good files ------------------------------------------------------------------------
def test_ml100k_layout(tmp_path: Path) -> None:
    ds = load_movielens(_ml100k(tmp_path))
    items = ds.items.set_index("item_id")
    assert list(ds.items.columns[: len(ITEM_COLUMNS)]) == list(ITEM_COLUMNS)
    assert list(ds.events.columns) == list(EVENT_COLUMNS)
    assert list(items.index) == ["10", "20", "30", "40"]
    assert items.loc["20", "title"] == "Café Society (1995)"  # latin-1 decoded
    assert items["category"].to_dict() == {"10": "Animation", "20": "unknown", "30": "Action", "40": "unknown"}
    assert items.loc["30", "genres"] == "Action|Crime|Thriller"
    np.testing.assert_allclose(items["popularity"], [0.4, 0.2, 0.4, 0.0])
    assert items.loc["10", "avg_rating"] == pytest.approx(4.5)
    assert items.loc["30", "avg_rating"] == pytest.approx(1.5)
    assert np.isnan(items.loc["40", "avg_rating"])

    ev = ds.events
    assert (ev["type"] == "rating").all() and ds.n_users == 3 and len(ev) == 5
    # the file's row order, not time order: Recommenders' seeded split draws per row in that order
    assert list(zip(ev["user_id"], ev["item_id"], ev["value"], ev["timestamp"], strict=True)) == [
        ("1", "10", 5.0, 881250949.0),
        ("1", "20", 3.0, 881250950.0),
        ("2", "10", 4.0, 881250000.0),
        ("3", "30", 1.0, 881260000.0),
        ("2", "30", 2.0, 881270000.0),
    ]
    assert ds.name == "ml-100k"
    assert ds.interactions().matrix.shape == (3, 4)


def test_ml_latest_layout(tmp_path: Path) -> None:
    ds = load_movielens(_ml_latest(tmp_path))
    items = ds.items.set_index("item_id")
    assert items.loc["2", "title"] == "American President, The (1995)"
    assert items["category"].to_dict() == {"1": "Adventure", "2": "Comedy", "3": "unknown", "4": "Drama"}
    np.testing.assert_allclose(items["popularity"], [0.5, 0.25, 0.25, 0.0])
    assert items.loc["1", "avg_rating"] == pytest.approx(2.25)
    assert np.isnan(items.loc["4", "avg_rating"])
    assert sorted(ds.events["value"]) == [0.5, 3.0, 4.0, 4.5]
    assert set(ds.events["user_id"]) == {"7", "8", "9"}


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    ds = load_movielens(_ml100k(tmp_path, data=[U_DATA[0], "", *U_DATA[1:]]))
    assert len(ds.events) == 5
    assert set(ds.events["item_id"]) == {"10", "20", "30"}  # still integer ids, not "10.0"
    assert ds.events["timestamp"].max() == 881270000.0


# ---- refusals ----------------------------------------------------------------------------
def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such directory"):
        load_movielens(tmp_path / "absent")


def test_path_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t2\t3\t4\n")
    with pytest.raises(DatasetError, match="not a directory"):
        load_movielens(tmp_path / "u.data")


def test_unrecognised_layout_names_the_expected_files(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DatasetError) as err:
        load_movielens(tmp_path)
    message = str(err.value)
    for expected in ("u.data", "u.item", "ratings.csv", "movies.csv", "readme.txt"):
        assert expected in message


@pytest.mark.parametrize(("present", "absent"), [("u.data", "u.item"), ("movies.csv", "ratings.csv")])
def test_half_a_layout(tmp_path: Path, present: str, absent: str) -> None:
    (tmp_path / present).write_text("x\n")
    with pytest.raises(DatasetError, match=f"found {present} but not {absent}"):
        load_movielens(tmp_path)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (
            [*U_DATA[:2], "1\tabc\t5\t881250949", *U_DATA[2:]],
            r"u\.data line 3: .*'1\\tabc\\t5\\t881250949'.*item 'abc'",
        ),
        ([*U_DATA[:3], "3\t30\t9\t881260000"], r"u\.data line 4: .*rating '9' is not a rating between 0.5 and 5"),
        ([*U_DATA[:1], "2\t10\t4"], r"u\.data line 2: .*timestamp '' is not a Unix timestamp"),
        ([*U_DATA[:4], "2\t30\t2\t881270000\t7"], r"u\.data line 5: expected 4 fields, found 5"),
        (["2\t30\t2\t881270000\t7", *U_DATA], r"u\.data line 1: expected 4 fields, found 5"),
        ([U_DATA[0], "", "1\t-20\t3\t881250950"], r"u\.data line 3: .*item '-20'"),
    ],
    ids=["not-a-number", "out-of-range", "missing-field", "extra-field", "extra-field-first-row", "after-blank"],
)
def test_malformed_u_data_names_file_and_line(tmp_path: Path, data: list[str], where: str) -> None:
    with pytest.raises(DatasetError, match=where):
        load_movielens(_ml100k(tmp_path, data=data))


def test_malformed_u_item_names_file_and_line(tmp_path: Path) -> None:
    bad = U_ITEM[2].replace("http://x|0|1|", "http://x|0|2|", 1)
    assert bad != U_ITEM[2]
    with pytest.raises(DatasetError, match=r"u\.item line 3: .*is not a 0/1 genre flag"):
        load_movielens(_ml100k(tmp_path, item=[*U_ITEM[:2], bad, U_ITEM[3]]))


def test_malformed_ratings_csv_counts_the_header_line(tmp_path: Path) -> None:
    ratings = [*RATINGS_CSV[:3], "8,1,four,964982224", RATINGS_CSV[4]]
    with pytest.raises(DatasetError, match=r"ratings\.csv line 4: .*rating 'four'"):
        load_movielens(_ml_latest(tmp_path, ratings=ratings))


def test_wrong_header_is_refused(tmp_path: Path) -> None:
    ratings = ["user,movie,rating,timestamp", *RATINGS_CSV[1:]]
    with pytest.raises(DatasetError, match=r"ratings\.csv line 1: expected the header userId,movieId,rating,timestamp"):
        load_movielens(_ml_latest(tmp_path, ratings=ratings))


@pytest.mark.parametrize("layout", ["ml-100k", "ml-latest"])
@pytest.mark.parametrize("content", ["empty", "blank-lines"])
def test_empty_ratings(tmp_path: Path, layout: str, content: str) -> None:
    rows = [] if content == "empty" else ["", ""]
    if layout == "ml-100k":
        path, name = _ml100k(tmp_path, data=rows), "u.data"
    else:
        header = RATINGS_CSV[:1] if content == "blank-lines" else []
        path, name = _ml_latest(tmp_path, ratings=header + rows), "ratings.csv"
    with pytest.raises(DatasetError, match=rf"{name}: no ratings"):
        load_movielens(path)


def test_rating_of_an_unknown_movie(tmp_path: Path) -> None:
    ratings = [*RATINGS_CSV, "9,99,3.0,964983815"]
    with pytest.raises(DatasetError, match=r"ratings\.csv line 6: movie id 99 is not in movies\.csv"):
        load_movielens(_ml_latest(tmp_path, ratings=ratings))


def test_duplicate_movie_id(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"u\.item line 5: movie id 10 appears twice"):
        load_movielens(_ml100k(tmp_path, item=[*U_ITEM, U_ITEM[0]]))

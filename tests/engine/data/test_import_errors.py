"""What `recops import` refuses: exit 2, one line on stderr naming the problem, nothing stored changed."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import engine.data.import_sources as import_sources
from engine.data.dataset_import import import_dataset
from engine.data.dataset_store import DatasetStore
from tests.engine.data.fixture_files import (
    INTERACTION_HEADER,
    CliRunner,
    interaction_rows,
    snapshot,
    write_csv,
    write_parquet,
)


@pytest.fixture
def existing(tmp_path: Path, store: DatasetStore) -> dict[str, str]:
    """A stored v1 of "shop", and the snapshot every refused import must leave as it is."""
    import_dataset(store, "shop", write_csv(tmp_path / "ok.csv", INTERACTION_HEADER, interaction_rows()))
    return snapshot(store.root)


def _refused(cli: CliRunner, store: DatasetStore, before: dict[str, str], argv: list[str]) -> str:
    code, out, err = cli(argv)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err + out
    assert snapshot(store.root) == before
    return err


def _import(path: Path, *extra: str) -> list[str]:
    return ["import", "--name", "shop", "--interactions", str(path), *extra]


FileMaker = Callable[[Path], Path]


def _latin1(tmp: Path) -> Path:
    return write_csv(tmp / "latin.csv", ["user_id", "item_id", "title"], [["u", "i", "Crème brûlée"]], "latin-1")


def _renamed_parquet(tmp: Path) -> Path:
    path = write_parquet(tmp / "x.parquet", {"user_id": ["u"], "item_id": ["i"]})
    return path.rename(tmp / "actually-parquet.csv")


CASES: dict[str, tuple[FileMaker, str]] = {
    "missing user_id": (
        lambda t: write_csv(t / "e.csv", ["customer", "item_id"], [["u", "i"]]),
        "e.csv: missing required column 'user_id' (found: customer, item_id)",
    ),
    "missing in parquet": (
        lambda t: write_parquet(t / "e.parquet", {"user_id": ["u"], "sku": ["i"]}),
        "e.parquet: missing required column 'item_id' (found: user_id, sku)",
    ),
    "no header": (
        lambda t: write_csv(t / "e.csv", ["196", "242", "3"], [["186", "302", "3"]]),
        "missing required column 'user_id' (found: 196, 242, 3) (the first line must be a header)",
    ),
    "wrong file type": (
        lambda t: write_csv(t / "e.xlsx", ["user_id", "item_id"], [["u", "i"]]),
        "unsupported file type (.xlsx)",
    ),
    "zip content": (lambda t: _write(t / "e.csv", b"PK\x03\x04rest of a workbook"), "e.csv is a zip archive"),
    "parquet named csv": (_renamed_parquet, "actually-parquet.csv is a Parquet file, not comma-separated text"),
    "binary": (lambda t: _write(t / "e.csv", b"user_id,item_id\n\x00\x01\x02"), "e.csv holds binary data"),
    "not parquet": (
        lambda t: _write(t / "e.parquet", b"user_id,item_id\nu,i\n"),
        "e.parquet is not a readable Parquet file",
    ),
    "wrong encoding": (
        _latin1,
        "latin.csv is not utf-8 text (byte 0xe8 on line 2); save it as UTF-8 or pass --encoding",
    ),
    "duplicate header": (
        lambda t: write_csv(t / "e.csv", ["user_id", "item_id", "User_ID"], [["u", "i", "v"]]),
        "e.csv: duplicate column 'User_ID' in the header",
    ),
    "zero bytes": (lambda t: _write(t / "e.csv", b""), "e.csv is empty (0 bytes)"),
    "blank": (lambda t: _write(t / "e.csv", b"\n\n  \n"), "e.csv has no header line"),
    "header only": (lambda t: _write(t / "e.csv", b"user_id,item_id\n"), "e.csv has a header but no data rows"),
    "no such file": (lambda t: t / "missing.csv", "missing.csv: no such file"),
    "a directory": (lambda t: t, "is not a file"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_unusable_interaction_file(
    case: str, tmp_path: Path, cli: CliRunner, store: DatasetStore, existing: dict[str, str]
) -> None:
    make, message = CASES[case]
    (tmp_path / "in").mkdir()
    path = make(tmp_path / "in")
    assert message in _refused(cli, store, existing, _import(path))


ITEM_CASES: dict[str, tuple[FileMaker, str]] = {
    "missing item_id": (
        lambda t: write_csv(t / "items.csv", ["sku", "title"], [["i1", "A"]]),
        "items.csv: missing required column 'item_id' (found: sku, title)",
    ),
    **{case: CASES[case] for case in ("wrong encoding", "duplicate header", "zero bytes", "header only")},
}


@pytest.mark.parametrize("case", list(ITEM_CASES))
def test_unusable_item_file(
    case: str, tmp_path: Path, cli: CliRunner, store: DatasetStore, existing: dict[str, str]
) -> None:
    make, message = ITEM_CASES[case]
    (tmp_path / "in").mkdir()
    items = make(tmp_path / "in")
    interactions = write_csv(tmp_path / "ok2.csv", INTERACTION_HEADER, interaction_rows())
    err = _refused(cli, store, existing, _import(interactions, "--items", str(items)))
    assert str(items) in err and message in err


def test_encoding_error_past_the_first_block(
    tmp_path: Path, cli: CliRunner, store: DatasetStore, existing: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-UTF-8 byte deep in the file stops the import mid-stream; what was written aside is dropped."""
    monkeypatch.setattr(import_sources, "_SNIFF_BYTES", 64)
    rows = interaction_rows(n_users=50)
    rows[200][3] = "caf\xe9"
    path = write_csv(tmp_path / "late.csv", INTERACTION_HEADER, rows, encoding="latin-1")
    err = _refused(cli, store, existing, _import(path))
    assert "late.csv is not utf-8 text (after data row" in err
    code, out, _ = cli([*_import(path, "--encoding", "latin-1"), "--max-reject-share", "0"])
    assert code == 0 and "imported shop v2: 250 interactions" in out
    assert "caf\xe9" in store.manifest("shop")["events"]


def test_compressed_csv(tmp_path: Path, cli: CliRunner, store: DatasetStore) -> None:
    plain = write_csv(tmp_path / "e.csv", INTERACTION_HEADER, interaction_rows())
    packed = tmp_path / "e.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    code, _, err = cli(_import(packed))
    assert code == 0, err
    assert store.manifest("shop")["rows"]["interactions"] == 100


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", "../escape"], "invalid dataset name '../escape'"),
        (["--name", "a b"], "invalid dataset name 'a b'"),
        (["--name", "demo"], "'demo' is the built-in demo world"),
        (["--max-reject-share", "1.5"], "--max-reject-share must be within 0..1"),
        (["--column", "user_id"], "--column 'user_id': expected NAME=SOURCE"),
        (["--column", "price=cost"], "cannot map column 'price'"),
        (["--encoding", "klingon"], "unknown encoding 'klingon'"),
    ],
)
def test_bad_options(
    argv: list[str], message: str, tmp_path: Path, cli: CliRunner, store: DatasetStore, existing: dict[str, str]
) -> None:
    path = write_csv(tmp_path / "e.csv", INTERACTION_HEADER, interaction_rows())
    args = ["import", "--interactions", str(path), *(argv if "--name" in argv else ["--name", "shop", *argv])]
    assert message in _refused(cli, store, existing, args)


def test_real_process_prints_one_line(tmp_path: Path, data_dir: Path) -> None:
    """The installed entry point, not only main(): no traceback, exit status 2."""
    path = write_csv(tmp_path / "e.csv", ["user", "item_id"], [["u", "i"]])
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "import", "--name", "x", "--interactions", str(path)],
        capture_output=True, text=True, env={"RECOPS_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin",
                                             "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"error: {path}: missing required column 'user_id' (found: user, item_id)"]
    assert not data_dir.exists() or not any((data_dir / "datasets").rglob("v*"))

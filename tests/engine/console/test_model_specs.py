"""engine.console.model_specs: the model specs the experiment editor offers (``als@production``, ``als@candidate``,
``als@7``), their labels, and version numbers read from a real registry."""

from __future__ import annotations

from pathlib import Path

from engine.console import model_specs
from engine.models.popularity import PopularityRecommender
from engine.models.registry import ModelRegistry, VersionRecord
from tests.support.synthetic_data import two_taste_dataset


def test_version_numbers_are_the_creation_order_per_model_and_dataset(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    interactions = two_taste_dataset().interactions()
    saved = {(d, h): registry.save("popularity", PopularityRecommender(half_life_days=h).fit(interactions), dataset=d)
             for d, h in (("demo", 1.0), ("shop", 2.0), ("demo", 3.0), ("demo", 4.0))}
    numbers = model_specs.version_numbers(registry.records("demo"))
    assert numbers == {saved["demo", 1.0]: 1, saved["demo", 3.0]: 2, saved["demo", 4.0]: 3}
    assert numbers == {v: registry.version_number("popularity", v) for v in numbers}  # the registry's own rule
    assert model_specs.version_numbers(registry.records("shop")) == {saved["shop", 2.0]: 1}


RECORDS = [VersionRecord("als", "a1", "demo", "archived", {"trained_at": "2026-12-01T10:00:00+00:00"}, 1),
           VersionRecord("als", "a2", "demo", "production", {"trained_at": "2026-12-02T10:00:00+00:00"}, 2),
           VersionRecord("als", "a3", "demo", "candidate", {"trained_at": "2026-12-03T10:30:00+00:00"}, 3),
           VersionRecord("popularity", "p1", "demo", "production", {}, 1)]
NUMBERS = model_specs.version_numbers(RECORDS)


def test_choices_name_every_stage_and_version_newest_first() -> None:
    assert model_specs.choices(RECORDS, NUMBERS) == [
        "als", "als@production", "als@candidate", "als@3", "als@2", "als@1",
        "popularity", "popularity@production", "popularity@1"]  # no candidate of popularity: no @candidate
    labels = model_specs.labels(RECORDS, NUMBERS)
    assert labels["als@3"] == "als@3 · candidate, trained 2026-12-03 10:30"
    assert labels["popularity@1"].startswith("popularity@1 · production")
    assert model_specs.label("als@3", labels) == labels["als@3"]
    assert model_specs.label("als@candidate", labels) == "als@candidate"  # stages and typed specs as they are
    assert model_specs.choices([], {}) == []


def test_a_spec_joins_its_model_and_selector() -> None:
    assert model_specs.spec("als", 7) == "als@7" and model_specs.spec("als", "candidate") == "als@candidate"

"""Model specs: every form parses, resolves on a real registry to the version it names, and a spec
naming nothing says which spec and what the registry has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.models.model_spec import ModelSpec, ModelSpecError, ResolvedModel, spec_resolver
from engine.models.popularity import PopularityRecommender
from engine.models.registry import ModelRegistry
from tests.support.synthetic_data import two_taste_dataset


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("als", ModelSpec("als")),
        ("als@production", ModelSpec("als", stage="production")),
        ("ease@candidate", ModelSpec("ease", stage="candidate")),
        ("item_item@7", ModelSpec("item_item", number=7)),
        ("popularity@20261202T031500123456Z-1a2b3c4d",
         ModelSpec("popularity", version="20261202T031500123456Z-1a2b3c4d")),
    ],
)
def test_every_form_parses_and_prints_back(text: str, expected: ModelSpec) -> None:
    spec = ModelSpec.parse(text)
    assert spec == expected and str(spec) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "a model spec is a model name"),
        ("svd", "unknown model 'svd'; known: als, ease, item_item, popularity"),
        ("svd@3", "unknown model 'svd'"),
        ("als@0", "version numbers start at 1"),
        ("als@archived", "after '@' expected production or candidate, a version number"),
        ("als@", "got ''"),
        ("als@latest", "got 'latest'"),
        ("als@2026-12-02", "a full version id like"),
    ],
)
def test_malformed_specs_say_why(text: str, message: str) -> None:
    with pytest.raises(ModelSpecError, match=re.escape(message)):
        ModelSpec.parse(text)


@pytest.fixture
def registry(tmp_path: Path) -> tuple[ModelRegistry, list[str]]:
    """Three popularity versions on dataset "shop" (1 production, 2 and 3 candidates) and one on "other"."""
    interactions = two_taste_dataset().interactions()
    registry = ModelRegistry(tmp_path / "models")
    versions = [registry.save("popularity", PopularityRecommender(half_life_days=h).fit(interactions), dataset="shop")
                for h in (7.0, 3.0, 1.0)]
    registry.save("popularity", PopularityRecommender().fit(interactions), dataset="other")
    return registry, versions


def test_specs_resolve_to_the_version_they_name(registry: tuple[ModelRegistry, list[str]]) -> None:
    reg, (first, second, third) = registry
    resolve = spec_resolver(reg, "shop")
    assert resolve("popularity") == ResolvedModel("popularity", first, 1, "production")
    assert resolve("popularity@production") == resolve("popularity")
    assert resolve("popularity@candidate") == ResolvedModel("popularity", third, 3, "candidate")  # the newest
    assert resolve("popularity@2") == ResolvedModel("popularity", second, 2, "candidate")
    assert resolve(f"popularity@{second}") == resolve("popularity@2")
    assert resolve("popularity@3").label == f"popularity@{third}"
    # numbers count per dataset: "other" has its own first version
    assert spec_resolver(reg, "other")("popularity@1").stage == "production"

    # a promotion moves the stages, never the numbers
    reg.promote("popularity", third)
    assert resolve("popularity") == ResolvedModel("popularity", third, 3, "production")
    assert resolve("popularity@candidate").version == second
    assert resolve("popularity@1").stage == "archived"


def test_registry_numbers_versions_per_model_and_dataset(registry: tuple[ModelRegistry, list[str]]) -> None:
    reg, versions = registry
    assert [reg.version_number("popularity", v) for v in versions] == [1, 2, 3]
    assert [reg.version_by_number("popularity", k, "shop") for k in (1, 2, 3)] == versions
    assert [r.number for r in reg.records("shop")] == [1, 2, 3]
    assert reg.record("popularity", versions[1]).row()["number"] == 2
    with pytest.raises(KeyError, match=r"no version 4 on dataset 'shop' \(versions 1..3\)"):
        reg.version_by_number("popularity", 4, "shop")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("popularity@9", "popularity@9: no version 9; popularity on 'shop' has 3 versions: #1 "),
        ("ease@99", "ease@99: no version of 'ease' on dataset 'shop'; models there: popularity"),
        ("als", "als: no version of 'als' on dataset 'shop'; models there: popularity"),
        ("popularity@20991231T000000000000Z-deadbeef",
         "no version 20991231T000000000000Z-deadbeef (a version of another dataset cannot serve 'shop')"),
    ],
)
def test_a_spec_naming_nothing_lists_what_exists(
    registry: tuple[ModelRegistry, list[str]], text: str, message: str
) -> None:
    reg, versions = registry
    with pytest.raises(ModelSpecError) as caught:
        spec_resolver(reg, "shop")(text)
    assert message in str(caught.value)
    if text.startswith("popularity@"):
        assert all(v in str(caught.value) for v in versions) and "(production)" in str(caught.value)


def test_no_candidate_and_another_datasets_version(registry: tuple[ModelRegistry, list[str]]) -> None:
    reg, _ = registry
    with pytest.raises(ModelSpecError, match="popularity@candidate: no candidate version; popularity on 'other'"):
        spec_resolver(reg, "other")("popularity@candidate")
    foreign = reg.versions("popularity", "other")[0]
    with pytest.raises(ModelSpecError, match="a version of another dataset cannot serve 'shop'"):
        spec_resolver(reg, "shop")(f"popularity@{foreign}")
    with pytest.raises(ModelSpecError, match="no model is trained there"):
        spec_resolver(reg, "empty")("popularity")

"""Fuzzing the running API from its own OpenAPI document (schemathesis): valid and invalid inputs alike must
never produce a 5xx, and every error must be a JSON ``{"detail": ...}`` message.

The /admin routes are fuzzed too, with the bearer token, except the model reload (it reloads the models
from disk, seconds per call, and takes no input to fuzz) and training (seconds to minutes per call, and a
valid body would add versions to the registry other test modules share; tests/engine/api/
test_lifecycle_routes.py covers its input checks).
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import response_schema_conformance

from engine.api import create_app
from tests.support.api import ADMIN_TOKEN, ApiProcess

pytestmark = pytest.mark.xdist_group("fuzz")

EXAMPLES_PER_OPERATION = 30
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# A warm-up computes every list it is asked for (seconds for hundreds of users): the fuzzed document
# caps its sizes so that the run stays short; the inputs are otherwise those the API accepts.
WARM_CAPS = {"user_ids": ("maxItems", 20), "top_n": ("maximum", 20)}


def _capped_warm_body(document: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(document)
    properties = document["components"]["schemas"]["WarmBody"]["properties"]
    for name, (keyword, cap) in WARM_CAPS.items():
        for option in properties[name]["anyOf"]:
            if keyword in option:
                option[keyword] = cap
    return document


def _schema() -> schemathesis.schemas.BaseSchema:
    # The document comes from the app object, so that pytest can collect one test per operation
    # before any server runs (schemathesis' lazy fixture loader does not work with this pytest);
    # test_the_fuzzed_document_is_the_served_one checks that it is the one the API serves.
    loaded = schemathesis.openapi.from_dict(_capped_warm_body(create_app().openapi()))
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=EXAMPLES_PER_OPERATION,
        deterministic=True,
    )
    return loaded.exclude(path=["/admin/models/reload", "/admin/train"])


schema = _schema()


def test_the_fuzzed_document_is_the_served_one(api: ApiProcess) -> None:
    assert httpx.get(api.url + "/openapi.json").json() == create_app().openapi()


@schemathesis.check
def errors_are_json_messages(ctx: schemathesis.CheckContext, response: Response, case: Case) -> bool | None:
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    if not content_type.startswith("application/json"):
        raise AssertionError(f"{response.status_code} answered as {content_type!r}, not JSON")
    body = response.json()
    if not isinstance(body, dict) or not body.get("detail"):
        raise AssertionError(f"{response.status_code} without a 'detail' message: {body!r}")
    return True


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_error_and_json_errors(case: Case, api: ApiProcess) -> None:
    headers = ADMIN if case.path.startswith("/admin") else None
    response = case.call(base_url=api.url, headers=headers, timeout=30)
    case.validate_response(response, checks=[not_a_server_error, errors_are_json_messages])
    if response.status_code < 400:
        # a success must look the way the document says it does
        case.validate_response(response, checks=[response_schema_conformance])

"""The OpenAPI document is true: schemathesis, against the live kernel on both databases, as an admin
and as a station, finds no server error, no undocumented status code and no answer off its schema.

Bounded: a few examples per operation, for a fixed seed (repeatable) and a random one (printed, to
reproduce a failure with ``MES_FUZZ_SEED``).
"""

from __future__ import annotations

import asyncio
import os
import random

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from live_server import served_fixture  # noqa: F401  (the `served` fixture)
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mes_kernel.openapi import error_statuses

FIXED_SEED = 20261130
EXAMPLES = int(os.environ.get("MES_FUZZ_EXAMPLES", "3"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Operations that would end the fuzzing session itself or wait on device hardware no test has.
SKIP = {("POST", "/api/v1/auth/logout")}


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip().startswith(("- ", "curl "))]
    return "; ".join(lines) or str(exc)[:300]


def _fuzz(schema, base_url: str, headers: dict[str, str], seed: int) -> list[str]:
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in SKIP:
            _runner(operation, base_url, headers, seed, failures)()
    return failures


def _runner(operation, base_url: str, headers: dict[str, str], seed: int, failures: list[str]):
    """One operation's hypothesis test: a few generated requests, each answer checked."""
    label = f"{operation.method.upper()} {operation.path}"

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy())
    def run(case):
        response = case.call(base_url=base_url, headers=headers, timeout=60)
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException as exc:  # noqa: B036  schemathesis' FailureGroup; one report names them all
            failures.append(f"{label} -> {response.status_code}: {_first_line(exc)}")

    return run


@pytest.mark.slow
async def test_fuzzing_finds_no_server_error_and_no_undocumented_answer(
    served, client, admin_headers, station_headers, make_lot
):
    await make_lot("LOT-FUZZ-1", units=2)
    schema = schemathesis.openapi.from_dict((await client.get("/openapi.json")).json())
    random_seed = int(os.environ.get("MES_FUZZ_SEED") or random.randrange(2**32))
    print(f"fuzz seeds: {FIXED_SEED}, {random_seed}")
    failures = []
    for seed in (FIXED_SEED, random_seed):
        # The station first, reading and writing; then an admin, who may also delete the station.
        failures += await asyncio.to_thread(_fuzz, schema, served, station_headers, seed)
        failures += await asyncio.to_thread(_fuzz, schema, served, admin_headers, seed)
    assert not failures, f"seed {random_seed}:\n" + "\n".join(sorted(set(failures)))


async def test_every_route_documents_the_kernel_error_shape(client):
    doc = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            documented = {int(s) for s in operation["responses"] if s[0] in "45"}
            assert set(error_statuses(path, operation)) <= documented, (method, path)
            for status in documented:
                content = operation["responses"][str(status)]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]

"""The whole API fuzzed from the committed OpenAPI document (schemathesis) against the real server: no 5xx,
and every answer (status, content type, body, headers) is one the document declares. Deterministic
(derandomized Hypothesis, fixed seed) and bounded in examples: about a minute on a two-core machine.

Server-sent event streams are served with a one-second lifetime here, so their 200s end and are checked
like any other answer (status and content type; an event stream has no JSON body to validate).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

from service.api.drivers import mint_token
from tests.e2e.server import Server

DOCUMENT = Path(__file__).parents[2] / "openapi" / "openapi.json"
ADMIN_TOKEN = "fuzz-admin-token"
JWT_SECRET = "jwt-secret-for-the-fuzzer-0123456789abcdef"

DRIVER_TOKEN = mint_token(JWT_SECRET, "fuzzer", ttl_s=86_400)

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20261129,
        # The admin token for admin operations, a driver's token for drivers' ones (by security scheme).
        "auth": {"openapi": {"adminToken": {"bearer": ADMIN_TOKEN}, "driverToken": {"bearer": DRIVER_TOKEN}}},
        # PostgreSQL text cannot hold NUL: any string carrying one is a 400 (problems.py), which the
        # document does not repeat on every string.
        "generation": {"deterministic": True, "allow-x00": False},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
        },
        # 422 is how the API answers a well-formed request it cannot act on (no connector could ever meet
        # the requirements, a URL it refuses to post to, a backwards time range): each is documented.
        "checks": {
            "positive_data_acceptance": {"expected-statuses": ["2xx", "3xx", 401, 403, 404, 409, 422, 429]}
        },
    }
)
schema = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG)

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
    checks.positive_data_acceptance,
    checks.missing_required_header,
    checks.unsupported_method,
    checks.allow_header_conformance,
    checks.ignored_auth,
]


@pytest.fixture(scope="module")
def fuzzed_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("fuzz") / "data",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        jwt_secret=JWT_SECRET,
        driver_rate_limit="1000000",  # the fuzzer is one driver sending thousands of requests
        sse_lifetime_s="1",
        sse_keepalive_s="0.5",
    )
    try:
        server.start()
        yield server
        output = server.stop()
        assert "unhandled error" not in output, output
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@schema.parametrize()
@settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented_whatever_it_is_sent(
    case: schemathesis.Case[Any], fuzzed_server: Server, session: requests.Session
) -> None:
    case.call_and_validate(base_url=fuzzed_server.url, session=session, checks=CHECKS, timeout=30)

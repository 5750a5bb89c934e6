"""The committed OpenAPI document is what the app serves."""

from __future__ import annotations

from pathlib import Path

from service.cli import openapi_document

COMMITTED = Path(__file__).parents[2] / "openapi" / "openapi.json"


def test_committed_openapi_document_matches_the_app() -> None:
    assert COMMITTED.read_text() == openapi_document(), (
        "openapi/openapi.json is out of date: regenerate it with `make openapi` and commit it"
    )

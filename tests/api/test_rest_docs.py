"""The docs and the OpenAPI document stay complete: every route is in docs/api.md, every JSON
request body has an example, every route documents the JSON error body."""
import re

import pytest

from tests.helpers import ROOT


@pytest.fixture(scope="module")
def openapi(tmp_path_factory, embedder):
    from api.app import create_app
    from api.settings import Settings

    return create_app(Settings(data_dir=tmp_path_factory.mktemp("doc")), embedder=embedder).openapi()


def _operations(openapi):
    for path, ops in openapi["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


def test_every_route_is_in_docs_api_md(openapi):
    text = (ROOT / "docs" / "api.md").read_text()
    missing = [f"{m} {p}" for m, p, _ in _operations(openapi) if f"`{m} {p}`" not in text]
    assert not missing, f"routes missing from docs/api.md: {missing}"
    documented = set(re.findall(r"`(GET|POST|PATCH|PUT|DELETE) (/[^`]*)`", text))
    stale = documented - {(m, p) for m, p, _ in _operations(openapi)}
    assert not stale, f"docs/api.md lists routes the app does not have: {stale}"


def test_every_json_body_has_an_example(openapi):
    schemas = openapi["components"]["schemas"]
    for method, path, op in _operations(openapi):
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is None:
            continue
        ref = body["schema"].get("$ref", "").rsplit("/", 1)[-1]
        assert schemas[ref].get("examples"), f"{method} {path}: request body {ref} has no example"


def test_every_schema_has_an_example_and_the_examples_validate(openapi):
    """Responses too: a reader of the OpenAPI page sees a filled-in body for every model, and an
    example that drifted from its model fails here."""
    from pydantic import BaseModel

    import api.chat.schemas as chat_schemas
    import api.schemas as schemas

    bare = [name for name, schema in openapi["components"]["schemas"].items()
            if "examples" not in schema and "example" not in schema]
    assert bare == []
    models = {name: obj for module in (schemas, chat_schemas) for name, obj in vars(module).items()
              if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == module.__name__}
    for name, model in models.items():
        for example in (model.model_config.get("json_schema_extra") or {}).get("examples", []):
            model.model_validate(example)


def test_every_route_documents_errors_and_v1_routes_their_auth(openapi):
    assert {"HTTPBearer", "APIKeyHeader"} <= set(openapi["components"]["securitySchemes"])
    for method, path, op in _operations(openapi):
        assert "ErrorBody" in str(op["responses"].get("401", {})), f"{method} {path}"
        if path.startswith("/v1/"):
            assert op.get("security"), f"{method} {path} does not declare its key"

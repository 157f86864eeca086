"""The OpenAPI 3.1 document at /openapi.json and its page at /docs (§1), driven in process through the real
app: valid OpenAPI 3.1, every served route documented (the hot routes too), auth and §2 errors declared."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from fastapi.routing import iter_route_contexts
from openapi_spec_validator import OpenAPIV31SpecValidator
from starlette.testclient import TestClient

from gateway.api import openapi
from gateway.api.openapi_ops import OPS
from gateway.app import create_app
from gateway.db import migrate
from gateway.settings import Settings

ADMIN = {"Authorization": "Bearer adm"}
HOT_BODIES = {
    "/v1/chat/completions": {"application/json": "ChatCompletionRequest"},
    "/v1beta/openai/chat/completions": {"application/json": "ChatCompletionRequest"},
    "/v1/images/generations": {"application/json": "ImagesGenerateRequest"},
    "/v1/images/edits": {
        "application/json": "ImagesEditRequest",
        "multipart/form-data": "ImagesEditMultipart",
    },
}


def _config(db: Path) -> dict[str, Any]:
    return {
        "database": {"url": f"sqlite+aiosqlite:///{db}"},
        "admin": {"token": "adm"},
        "storage": {"backend": "none"},
        "channels": [{"name": "m", "kind": "mock", "models": ["mock-chat", "mock-image"]}],
    }


def _settings(db: Path) -> Settings:
    return Settings(**_config(db))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = _settings(tmp_path / "gateway.db")
    with ThreadPoolExecutor(max_workers=1) as pool:  # migrate.upgrade runs its own event loop
        pool.submit(migrate.upgrade, settings.database.url).result()
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def doc(client: TestClient) -> dict[str, Any]:
    resp = client.get("/openapi.json")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def schema_of(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """A component schema as a standalone JSON Schema (its $refs resolve inside the document)."""
    return {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}


def is_valid(doc: dict[str, Any], name: str, instance: object) -> bool:
    return jsonschema.Draft202012Validator(schema_of(doc, name)).is_valid(instance)


def test_openapi_json_is_valid_openapi_31_with_the_chat_and_images_request_bodies(client: TestClient) -> None:
    resp = client.get("/openapi.json")  # no token: the document is public
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-request-id"]
    doc = resp.json()
    assert doc["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(doc).validate()  # raises on any violation of the 3.1 schema
    for path, bodies in HOT_BODIES.items():
        body = doc["paths"][path]["post"]["requestBody"]
        assert body["required"] is True
        refs = {media: content["schema"]["$ref"] for media, content in body["content"].items()}
        assert refs == {media: f"#/components/schemas/{name}" for media, name in bodies.items()}
    schemas = doc["components"]["schemas"]
    assert {"model", "messages"} <= set(schemas["ChatCompletionRequest"]["required"])
    assert {"model", "prompt"} <= set(schemas["ImagesGenerateRequest"]["required"])
    assert {"model", "prompt", "images"} <= set(schemas["ImagesEditRequest"]["required"])
    form = schemas["ImagesEditMultipart"]
    assert {"model", "prompt", "image"} <= set(form["required"])
    assert form["properties"]["image"]["items"] == {"type": "string", "format": "binary"}
    assert all({"type": "null"} not in prop.get("anyOf", []) for prop in form["properties"].values()), (
        "a form field cannot be null"
    )


def test_request_schemas_accept_what_the_gateway_accepts_and_keep_unknown_fields(doc: dict[str, Any]) -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "vendor_field": {"x": 1}}
    assert is_valid(doc, "ChatCompletionRequest", chat)
    assert not is_valid(doc, "ChatCompletionRequest", {"messages": chat["messages"]})
    assert not is_valid(doc, "ChatCompletionRequest", {**chat, "messages": []})
    edit = {"model": "m", "prompt": "p", "images": [{"image_url": "https://example.com/a.png"}]}
    assert is_valid(doc, "ImagesEditRequest", edit)
    assert not is_valid(doc, "ImagesEditRequest", {**edit, "n": 11})
    assert is_valid(doc, "ImagesGenerateRequest", {"model": "m", "prompt": "p", "quality": "high", "x": 1})


def test_every_served_route_is_documented_and_nothing_else(client: TestClient, doc: dict[str, Any]) -> None:
    edge: Any = client.app
    routed = {
        (method.lower(), route.path_format)
        for route in iter_route_contexts(edge.api.routes)
        if getattr(route, "include_in_schema", False)
        for method in route.methods or ()
        if method != "HEAD"
    }
    hot = {("post", path) for path in edge.routes}
    documented = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert documented == routed | hot
    assert documented == set(OPS), "each route needs its row in gateway/api/openapi_ops.py"
    assert {"/openapi.json", "/docs"}.isdisjoint(doc["paths"])


def test_auth_is_declared_bearer_for_clients_and_admin_bearer_for_the_admin_api(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["adminBearer"] == {**schemes["adminBearer"], "type": "http", "scheme": "bearer"}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            names = {name for requirement in operation.get("security", []) for name in requirement}
            if path.startswith(("/v1", "/dashboard")):  # the dashboard billing routes: also without /v1
                assert "bearerAuth" in names and "401" in operation["responses"], (method, path)
            elif path.startswith("/admin") or path == "/metrics":  # /metrics: unless metrics.public
                assert names == {"adminBearer"} and "401" in operation["responses"], (method, path)
            else:
                assert names == set(), (method, path)


def test_error_answers_are_documented_with_the_section_2_shape(
    client: TestClient, doc: dict[str, Any]
) -> None:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert "422" not in operation["responses"], (method, path)  # rewritten to 400 (§2)
            for status, answer in operation["responses"].items():
                assert answer["headers"]["x-request-id"] == {"$ref": "#/components/headers/RequestId"}
                if int(status) >= 400 and path != "/readyz":
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
    real = [
        client.get("/v1/me"),
        client.post("/v1/chat/completions", json={}),
        client.get("/admin/tokens", headers={"Authorization": "Bearer wrong"}),
        client.post("/v1/images/generations", content=b"{", headers={"Authorization": "Bearer x"}),
    ]
    for resp in real:
        assert resp.status_code == 401 and is_valid(doc, "ErrorResponse", resp.json()), resp.text
    error = {"message": "m", "type": "t", "param": None, "code": None}
    assert not is_valid(doc, "ErrorResponse", {"error": {**error, "extra": 1}})
    assert not is_valid(doc, "ErrorResponse", {"error": {k: v for k, v in error.items() if k != "param"}})


def test_answers_are_documented_with_openai_shapes(doc: dict[str, Any]) -> None:
    chat = doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert chat["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletion"}
    assert "text/event-stream" in chat
    assert {"id", "object", "created", "model", "choices"} <= set(
        doc["components"]["schemas"]["ChatCompletion"]["required"]
    )
    images = doc["paths"]["/v1/images/generations"]["post"]["responses"]["200"]["content"]
    assert images["application/json"]["schema"] == {"$ref": "#/components/schemas/ImagesResponse"}
    assert {"created", "data"} <= set(doc["components"]["schemas"]["ImagesResponse"]["required"])
    created = doc["paths"]["/admin/tokens"]["post"]["responses"]
    assert "201" in created and "200" not in created


def test_the_document_is_built_once_and_served_from_memory(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real_build = openapi.build

    def counting_build(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(openapi, "build", counting_build)
    edge: Any = client.app
    edge.api.openapi.__self__._doc = None  # as on a fresh process
    first = client.get("/openapi.json").content
    assert client.get("/openapi.json").content == first
    assert client.get("/docs").status_code == 200
    assert calls == [1]


def test_docs_page_lists_every_operation_even_without_swagger_ui(
    client: TestClient, doc: dict[str, Any]
) -> None:
    resp = client.get("/docs")  # no token
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    page = resp.text
    assert 'href="openapi.json"' in page and "swagger-ui-bundle.js" in page
    for path, item in doc["paths"].items():
        assert f"<code>{path}</code>" in page
        for method in item:
            assert f"<code>{method.upper()}</code>" in page
    assert "ChatCompletionRequest" in page and "ImagesEditMultipart" in page


def test_readiness_failure_is_a_section_2_error_beside_the_checks(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    settings = _settings(tmp_path)  # the "database file" is a directory: SQLite cannot open it
    with TestClient(create_app(settings)) as c:
        resp = c.get("/readyz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "unavailable" and body["checks"]["database"] != "ok"
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == "not_ready" and "database" in body["error"]["message"]
    assert is_valid(doc, "Readiness", body)


def test_other_methods_on_a_documented_path_are_405_with_allow(
    client: TestClient, doc: dict[str, Any]
) -> None:
    for path, item in doc["paths"].items():
        url = path.replace("{key}", "2026/01/01/x.png").replace("{token_id}", "tok_x")
        url = url.replace("{name}", "m").replace("{action}", "disable")
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            if method.lower() in item:
                continue
            resp = client.request(method, url)
            assert resp.status_code == 405, (method, path, resp.text)
            assert resp.json()["error"]["code"] == "method_not_allowed"
            allowed = {m.strip() for m in resp.headers.get("allow", "").split(",")} - {"HEAD"}
            assert allowed == {m.upper() for m in item}, (method, path, resp.headers)


def test_a_post_that_reaches_the_router_is_answered_as_the_edge_answers_it(client: TestClient) -> None:
    created = client.post("/admin/tokens", json={"name": "t"}, headers={"Authorization": "Bearer adm"})
    auth = {"Authorization": f"Bearer {created.json()['key']}"}
    edge: Any = client.app
    direct = TestClient(edge.api)  # the router, without the Edge's fast lane in front
    body = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}
    for c in (client, direct):
        answer = c.post("/v1/chat/completions", json=body, headers=auth)
        assert (
            answer.status_code == 200
            and answer.json()["choices"][0]["message"]["content"] == "Mock reply to: hi"
        )
        streamed = c.post("/v1/chat/completions", json={**body, "stream": True}, headers=auth)
        assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
        refused = c.post("/v1/images/generations", json={"model": "mock-image", "prompt": "p"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


def test_every_parameter_is_described_and_ignored_ones_are_declared(doc: dict[str, Any]) -> None:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            for parameter in operation["parameters"]:
                if "$ref" not in parameter:
                    assert parameter.get("description"), (method, path, parameter["name"])
    usage = doc["paths"]["/dashboard/billing/usage"]["get"]["parameters"]
    assert {p.get("name") for p in usage} >= {"start_date", "end_date"}  # sent by NextChat, not read
    records = doc["paths"]["/admin/usage/records"]["get"]
    names = {p.get("name") for p in records["parameters"]}
    assert names >= {
        "token",
        "model",
        "group",
        "channel",
        "status",
        "from",
        "to",
        "cursor",
        "limit",
        "format",
    }
    assert set(records["responses"]["200"]["content"]) == {"application/json", "text/csv"}


def test_a_description_of_a_parameter_the_route_lacks_fails_the_build(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = OPS[("get", "/admin/channels/{name}")]
    monkeypatch.setitem(OPS, ("get", "/admin/channels/{name}"), replace(row, params={"nmae": "typo"}))
    edge: Any = client.app
    with pytest.raises(ValueError, match="nmae"):
        openapi.build(edge.api, edge.routes)


def conforms(doc: dict[str, Any], method: str, path: str, resp: Any) -> None:
    """The answer's status and media type are documented for the operation, and its body fits the schema."""
    answers = doc["paths"][path][method]["responses"]
    assert str(resp.status_code) in answers, (method, path, resp.status_code, resp.text)
    assert resp.headers["x-request-id"]
    media = resp.headers["content-type"].split(";")[0]
    content = answers[str(resp.status_code)]["content"]
    assert media in content, (method, path, media)
    if media == "application/json":
        schema = {**content[media]["schema"], "components": doc["components"]}
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(resp.json()))
        assert not errors, (method, path, resp.text, errors[0].message if errors else None)


def test_account_usage_and_channel_answers_are_as_documented(
    client: TestClient, doc: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = client.post("/admin/tokens", json={"name": "t", "quota_usd": 5}, headers=ADMIN)
    user = {"Authorization": f"Bearer {created.json()['key']}"}
    for prompt in ("one", "two"):  # usage records from real traffic
        chat = {"model": "mock-chat", "messages": [{"role": "user", "content": prompt}]}
        assert client.post("/v1/chat/completions", json=chat, headers=user).status_code == 200
    image = {"model": "mock-image", "prompt": "p", "response_format": "b64_json"}
    assert client.post("/v1/images/generations", json=image, headers=user).status_code == 200
    edge: Any = client.app
    assert client.portal is not None and client.portal.call(edge.api.state.runtime.usage.flush)
    config = tmp_path / "config.yaml"  # what /admin/reload reads: the running settings again
    config.write_text(yaml.safe_dump(_config(tmp_path / "gateway.db")))
    monkeypatch.setenv("GATEWAY_CONFIG", str(config))
    first = client.get("/admin/usage/records", params={"limit": 2}, headers=ADMIN)
    assert len(first.json()["data"]) == 2 and first.json()["next_cursor"]
    records, summary, one, switch = (
        "/admin/usage/records",
        "/admin/usage/summary",
        "/admin/channels/{name}",
        "/admin/channels/{name}/{action}",
    )
    calls: list[tuple[str, str, str, dict[str, Any], int]] = [
        ("get", "/v1/me", "/v1/me", {}, 200),
        *(("get", p, p, {}, 200) for p in doc["paths"] if "/dashboard/billing/" in p),
        ("get", "/dashboard/billing/usage", "/dashboard/billing/usage", {"start_date": "2026-01-01"}, 200),
        ("get", records, records, {"cursor": first.json()["next_cursor"]}, 200),
        ("get", records, records, {"format": "csv", "status": "success"}, 200),
        ("get", records, records, {"from": "2026-13-01"}, 400),
        *(
            ("get", summary, summary, {"group_by": by}, 200)
            for by in ("model", "token", "group", "channel", "day")
        ),
        ("get", summary, summary, {}, 400),
        ("get", "/admin/channels", "/admin/channels", {}, 200),
        ("get", one, "/admin/channels/m", {}, 200),
        ("get", one, "/admin/channels/nope", {}, 404),
        ("post", switch, "/admin/channels/m/disable", {}, 200),
        ("post", switch, "/admin/channels/m/enable", {}, 200),
        ("post", switch, "/admin/channels/m/explode", {}, 400),
        ("post", switch, "/admin/channels/nope/enable", {}, 404),
        ("post", "/admin/reload", "/admin/reload", {"scope": "all"}, 200),
        ("post", "/admin/reload", "/admin/reload", {"scope": "everywhere"}, 400),
    ]
    for method, path, url, params, status in calls:
        headers = ADMIN if path.startswith("/admin") else user
        resp = client.request(method.upper(), url, params=params, headers=headers)
        assert resp.status_code == status, (method, url, params, resp.text)
        conforms(doc, method, path, resp)
    for method, path, url, _, _ in calls:  # without a token: the 401 each declares
        conforms(doc, method, path, client.request(method.upper(), url))


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/v1/chat/completions", "max_tokens", "5"),
        ("/v1/chat/completions", "max_completion_tokens", True),
        ("/v1/chat/completions", "n", 1.5),
        ("/v1/chat/completions", "temperature", "0.5"),
        ("/v1/chat/completions", "top_p", False),
        ("/v1/images/generations", "n", "1"),
        ("/v1/images/generations", "partial_images", True),
        ("/v1/images/generations", "output_compression", "50"),
    ],
)
def test_a_number_the_document_refuses_is_refused(
    client: TestClient, doc: dict[str, Any], path: str, field: str, value: object
) -> None:
    """The JSON bodies' numbers are JSON numbers, as the document says (and OpenAI checks): no string,
    no boolean, no fraction for an integer."""
    created = client.post("/admin/tokens", json={"name": "t"}, headers=ADMIN)
    user = {"Authorization": f"Bearer {created.json()['key']}"}
    if path == "/v1/chat/completions":
        body: dict[str, Any] = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}
        model = "ChatCompletionRequest"
    else:
        body, model = {"model": "mock-image", "prompt": "p"}, "ImagesGenerateRequest"
    assert not is_valid(doc, model, {**body, field: value})
    resp = client.post(path, json={**body, field: value}, headers=user)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == field

"""§4.6 in process: `Prefer: respond-async` gives 202 and a job; GET answers the result or the §2 error,
to the job's own token only; what is refused before a job exists is refused at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.jobs.conftest import auth, new_key, submit, wait_done

PROMPT = {"model": "mock-image", "prompt": "a red fox"}
ERROR_KEYS = {"message", "type", "param", "code"}


def test_respond_async_gives_202_and_a_queued_job(client: TestClient) -> None:
    key = new_key(client)
    resp = client.post("/v1/images/generations", json=PROMPT, headers=auth(key, Prefer="respond-async"))
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert set(job) == {"id", "object", "status", "created"}
    assert job["id"].startswith("imgjob_") and job["object"] == "image.job" and job["status"] == "queued"
    assert isinstance(job["created"], int)
    assert resp.headers["preference-applied"] == "respond-async"
    assert resp.headers["location"] == f"/v1/images/jobs/{job['id']}"
    assert resp.headers["x-request-id"]


def test_the_job_answers_the_normal_images_response(client: TestClient) -> None:
    key = new_key(client)
    sync = client.post("/v1/images/generations", json=PROMPT, headers=auth(key))
    assert sync.status_code == 200
    job = wait_done(client, key, submit(client, key, PROMPT))
    assert job["status"] == "succeeded" and "error" not in job
    assert job["completed_at"] >= job["created"]
    # Same prompt, same mock image: the job's result is what the synchronous call answered.
    assert job["result"]["data"] == sync.json()["data"]
    assert job["result"]["data"][0]["b64_json"]


def test_an_edit_runs_as_a_job_too(client: TestClient) -> None:
    key = new_key(client)
    first = client.post("/v1/images/generations", json=PROMPT, headers=auth(key)).json()["data"][0]
    body = {"model": "mock-image", "prompt": "make it blue",
            "images": [{"image_url": f"data:image/png;base64,{first['b64_json']}"}]}  # fmt: skip
    job = wait_done(client, key, submit(client, key, body, "/v1/images/edits"))
    assert job["status"] == "succeeded"
    assert job["result"]["data"][0]["b64_json"] != first["b64_json"]


def test_another_tokens_get_is_not_found(client: TestClient) -> None:
    owner, other = new_key(client, "owner"), new_key(client, "other")
    job_id = submit(client, owner, PROMPT)
    wait_done(client, owner, job_id)
    for key, path in ((other, job_id), (owner, "imgjob_doesnotexist"), (owner, "x" * 500)):
        resp = client.get(f"/v1/images/jobs/{path}", headers=auth(key))
        assert resp.status_code == 404, resp.text
        error = resp.json()["error"]
        assert set(error) == ERROR_KEYS
        assert error["type"] == "invalid_request_error" and error["code"] == "job_not_found"
    assert client.get(f"/v1/images/jobs/{job_id}").status_code == 401


def test_a_failed_upstream_call_gives_a_failed_job_with_the_error(client: TestClient) -> None:
    key = new_key(client)
    sync = client.post("/v1/images/generations", json={**PROMPT, "model": "broken-image"}, headers=auth(key))
    assert sync.status_code == 502
    job = wait_done(client, key, submit(client, key, {**PROMPT, "model": "broken-image"}))
    assert job["status"] == "failed" and "result" not in job
    assert set(job["error"]) == ERROR_KEYS
    assert job["error"] == sync.json()["error"]  # the same §2 error object the synchronous call gets
    assert job["error"]["type"] == "upstream_error"


def test_what_is_refused_before_a_job_exists_is_refused_at_once(client: TestClient) -> None:
    key = new_key(client)
    headers = auth(key, Prefer="respond-async")
    unknown = client.post("/v1/images/generations", json={**PROMPT, "model": "nope"}, headers=headers)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    invalid = client.post("/v1/images/generations", json={"model": "mock-image"}, headers=headers)
    assert invalid.status_code == 400 and invalid.json()["error"]["param"] == "prompt"
    no_key = client.post("/v1/images/generations", json=PROMPT, headers={"Prefer": "respond-async"})
    assert no_key.status_code == 401


def test_a_stream_request_stays_a_stream(client: TestClient) -> None:
    key = new_key(client)
    body = {**PROMPT, "stream": True, "partial_images": 1}
    resp = client.post("/v1/images/generations", json=body, headers=auth(key, Prefer="respond-async"))
    # Taken down the stream path (which the mock upstream refuses), not queued as a job.
    assert resp.status_code == 400, resp.text
    assert "does not stream images" in resp.json()["error"]["message"]
    assert "preference-applied" not in resp.headers


@pytest.mark.parametrize(
    ("prefer", "is_async"),
    [("respond-async", True), ("RESPOND-ASYNC", True), ("wait=10, respond-async", True),
     ("respond-async; foo=bar", True), ("handling=lenient", False), ("respond-asyncx", False)],
)  # fmt: skip
def test_prefer_header_forms(client: TestClient, prefer: str, is_async: bool) -> None:
    key = new_key(client)
    resp = client.post("/v1/images/generations", json=PROMPT, headers=auth(key, Prefer=prefer))
    assert resp.status_code == (202 if is_async else 200)
    if is_async:
        wait_done(client, key, resp.json()["id"])


def test_with_storage_a_jobs_images_are_urls_even_when_base64_is_asked(
    app_factory: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = app_factory(storage={"backend": "local", "local": {"root": str(tmp_path / "images")}})
    key = new_key(client)
    job = wait_done(client, key, submit(client, key, {**PROMPT, "response_format": "b64_json", "n": 2}))
    assert job["status"] == "succeeded"
    items: list[dict[str, Any]] = job["result"]["data"]
    assert len(items) == 2
    for item in items:
        assert "b64_json" not in item
        assert item["url"].startswith("http") and "/files/" in item["url"]
        key_path = item["url"].split("/files/", 1)[1]
        assert (tmp_path / "images" / key_path).read_bytes().startswith(b"\x89PNG")


def test_without_storage_a_result_over_the_cap_fails_the_job(app_factory: Callable[..., TestClient]) -> None:
    client = app_factory(jobs={"max_result_mb": 0.0001, "sweep_interval_seconds": 3600})  # ~100 bytes
    key = new_key(client)
    job = wait_done(client, key, submit(client, key, PROMPT))
    assert job["status"] == "failed"
    assert job["error"]["code"] == "job_result_too_large" and set(job["error"]) == ERROR_KEYS

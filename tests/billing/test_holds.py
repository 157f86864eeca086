"""A priced call reports the quota it holds while it runs (and 0 once settled): an async job keeps that on its
row, so that another node can refund it if this one dies mid-call (§4.6)."""

from __future__ import annotations

from pathlib import Path

from gateway.billing import holds
from gateway.pipeline import images as pipeline
from gateway.pipeline.images import ImageRequest
from tests.billing.support import new_token, running, runtime, settings, settle


def test_a_priced_call_reports_its_reservation_then_zero(tmp_path: Path) -> None:
    config = settings(
        tmp_path / "g.db",
        channels=[{"name": "m", "kind": "mock", "models": ["mock-image"]}],
        pricing={"models": {"mock-image": {"per_call": 0.02}}},
    )
    with running(config) as client:
        _, key = new_token(client, quota_usd=1.0)
        rt = runtime(client)
        seen: list[int] = []

        async def call() -> None:
            caller = await rt.auth.resolve(key)
            req = ImageRequest("images.generate", {"model": "mock-image", "prompt": "p", "n": 2},
                               "mock-image", None, None)  # fmt: skip
            with holds.reporting_to(seen.append):
                await pipeline.generate(
                    rt, caller, req, request_id="req_holds", endpoint="/v1/images/generations"
                )

        assert client.portal is not None
        client.portal.call(call)
        settle(client)
    assert seen == [40_000, 0]  # 2 images x 0.02 USD reserved, then settled

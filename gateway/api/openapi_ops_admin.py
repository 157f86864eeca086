"""The OpenAPI table's rows for the admin API (§7): tokens, usage, channels and reload. Each says what its
query parameters mean and what each error status means for it (§2)."""

from __future__ import annotations

from pydantic import BaseModel

from gateway.api.openapi_op import Op
from gateway.api.schemas.admin import Token, TokenCreate, TokenDeleted, TokenList, TokenPatch, TokenWithKey
from gateway.api.schemas.channels import Channel, ChannelList, Reloaded
from gateway.api.schemas.usage import UsageRecordList, UsageSummary

_TIME = "ISO 8601 date or date-time (UTC when it has no offset), or Unix seconds"
_FILTERS = {
    "token": "only this token's records (its id, `tok_…`)",
    "model": "only records of this model, as the client asked for it",
    "group": "only records of this token group",
    "channel": "only records this channel answered (or last tried)",
    "status": "only successful or only failed requests",
    "from": f"only records at or after this time: {_TIME}",
    "to": f"only records before this time: {_TIME}",
}
_BAD_TIME = "`from` / `to` that is not a date, a time or Unix seconds"
_NO_CHANNEL = "No channel with this name (`channel_not_found`)."
_TOKEN_ID = {"token_id": "the token's id (`tok_…`), as created or listed"}


def _admin(
    operation_id: str,
    summary: str,
    ok: type[BaseModel],
    errors: tuple[int, ...],
    *,
    description: str = "",
    body: type[BaseModel] | None = None,
    ok_status: int = 200,
    ok_media: tuple[str, ...] = ("application/json",),
    ok_description: str = "OK",
    params: dict[str, str] | None = None,
    error_text: dict[int, str] | None = None,
) -> Op:
    return Op(
        operation_id,
        summary,
        "admin",
        "admin",
        ok,
        errors,
        description,
        body=body,
        ok_status=ok_status,
        ok_media=ok_media,
        ok_description=ok_description,
        params=params or {},
        error_text=error_text or {},
    )


_TOKEN_OPS: dict[tuple[str, str], Op] = {
    ("post", "/admin/tokens"): _admin(
        "createToken",
        "Create a token (its key is shown only in this answer)",
        TokenWithKey,
        (400, 401, 413, 503),
        body=TokenCreate,
        ok_status=201,
    ),
    ("get", "/admin/tokens"): _admin(
        "listTokens",
        "List tokens",
        TokenList,
        (400, 401, 503),
        description="Ordered by id, cursor-paged.",
        params={
            "group": "only tokens of this group",
            "status": "only `active` or only `disabled` tokens",
            "q": "only tokens whose name contains this (any case) or whose key starts with it",
            "cursor": "the `next_cursor` of the previous page",
            "limit": "tokens per page (at most 500)",
        },
    ),
    ("get", "/admin/tokens/{token_id}"): _admin(
        "getToken", "One token", Token, (401, 404, 503), params=_TOKEN_ID
    ),
    ("patch", "/admin/tokens/{token_id}"): _admin(
        "updateToken",
        "Change a token (any field but the key); `add_quota_usd` adds atomically",
        Token,
        (400, 401, 404, 413, 503),
        body=TokenPatch,
        params=_TOKEN_ID,
    ),
    ("delete", "/admin/tokens/{token_id}"): _admin(
        "deleteToken",
        "Revoke a token: its key stops working at once",
        TokenDeleted,
        (401, 404, 503),
        params=_TOKEN_ID,
    ),
    ("post", "/admin/tokens/{token_id}/rotate"): _admin(
        "rotateToken",
        "A new key for the token (shown only in this answer); the old key stops working at once",
        TokenWithKey,
        (401, 404, 503),
        params=_TOKEN_ID,
    ),
}

_USAGE_OPS: dict[tuple[str, str], Op] = {
    ("get", "/admin/usage/records"): _admin(
        "listUsageRecords",
        "Usage records: filtered, newest first, cursor-paged, or all of them as CSV",
        UsageRecordList,
        (400, 401, 503),
        description="One record per request that reached routing (§6.5). `format=csv` streams every "
        "matching record (newest first, the record's fields as columns, `attempts` as JSON) with no paging.",
        ok_media=("application/json", "text/csv"),
        ok_description="A page of records (JSON), or every matching record (`format=csv`)",
        params={
            **_FILTERS,
            "cursor": "the `next_cursor` of the previous page",
            "limit": "records per page; not used with `format=csv`",
            "format": "`json` (a page) or `csv` (every matching record, streamed)",
        },
        error_text={
            400: f"An invalid query parameter (`param` names it): {_BAD_TIME}, a `cursor` that is not a "
            "`next_cursor`, a `limit` outside 1-1000, an unknown `status` or `format`, a filter too long or "
            "holding a NUL character."
        },
    ),
    ("get", "/admin/usage/summary"): _admin(
        "getUsageSummary",
        "Usage summed per model, token, group, channel or UTC day",
        UsageSummary,
        (400, 401, 503),
        description="Requests, images, tokens and cost (micro-USD) per key, and their totals, over the "
        "records the filters match.",
        params={"group_by": "one row per model, token, group, channel, UTC day or UTC hour", **_FILTERS},
        error_text={
            400: "A missing or unknown `group_by`, or another invalid query parameter (`param` names it): "
            f"{_BAD_TIME}, an unknown `status`, a filter too long or holding a NUL character."
        },
    ),
}

_CHANNEL_OPS: dict[tuple[str, str], Op] = {
    ("get", "/admin/channels"): _admin(
        "listChannels",
        "Every channel and key: state and recent health",
        ChannelList,
        (401, 503),
        description="In config order. Keys are named by index; no key, base URL or header is shown.",
    ),
    ("get", "/admin/channels/{name}"): _admin(
        "getChannel",
        "One channel and its keys: state and recent health",
        Channel,
        (401, 404, 503),
        params={"name": "the channel's name in the config"},
        error_text={404: _NO_CHANNEL},
    ),
    ("post", "/admin/channels/{name}/{action}"): _admin(
        "switchChannel",
        "Switch a channel on or off at run time, on every node",
        Channel,
        (400, 401, 404, 503),
        description="Until the next switch or restart; a reload keeps it. Answers the channel's new state.",
        params={
            "name": "the channel's name in the config",
            "action": "`enable` or `disable`",
        },
        error_text={
            400: "`action` is neither `enable` nor `disable` (`param` names it), or the channel is switched "
            "off in the config file (`channel_disabled_in_config`): change the file and reload.",
            404: _NO_CHANNEL,
        },
    ),
    ("post", "/admin/reload"): _admin(
        "reloadConfig",
        "Re-read the config file and apply its live sections (channels, groups, pricing, retry, chat, admin)",
        Reloaded,
        (400, 401, 503),
        description="A bad file changes nothing. Other sections that changed (the database, the server, …) "
        "are named in `needs_restart` and keep their running values until a restart.",
        params={"scope": "`node`: this node; `all`: this node, and every other one is asked over Redis"},
        error_text={
            400: "The config file was not reloaded and the running config stays (`invalid_config`): there "
            "is none, it is not valid YAML, or a key is invalid (the message names it); or an unknown "
            "`scope` (`param` names it)."
        },
    ),
}

ADMIN_OPS: dict[tuple[str, str], Op] = {**_TOKEN_OPS, **_USAGE_OPS, **_CHANNEL_OPS}

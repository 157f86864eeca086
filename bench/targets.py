"""The systems under test: the gateway (`python -m gateway serve`), the bare reference proxy (chat) and the
bare re-hosting proxy (images).

A target starts one fresh process per measurement (peak RSS is over the process life), pinned to one core,
with one worker, talking to the fake upstream, and is ready when its /healthz answers 200.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench.procs import Children, StartError, free_port, log_tail, wait_until_ready
from bench.scenarios import GEMINI_MODEL, IMAGE_MODEL, MODEL

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
UPSTREAM_KEY = "sk-upstream-bench"
REFERENCE_KEY = "sk-bench-reference"
BASELINE_KEY = "sk-bench-baseline"
S3_BUCKET = "bench"
PUBLIC_BASE_URL = "http://cdn.invalid/bench"  # image URLs need no presigning and point nowhere
SETUP_TIMEOUT_S = 120.0
# GPT image models refuse `response_format`: the operator marks the channel so, and no call is wasted on it
CHANNEL_OPTIONS = "    response_format: unsupported\n"


@dataclass(frozen=True)
class StartContext:
    children: Children
    upstream_base: str  # e.g. http://127.0.0.1:9100/v1
    cpu: int | None
    workdir: Path  # a fresh temporary directory, removed after the measurement
    log_dir: Path
    python: str
    services: dict[str, str] = field(default_factory=dict)  # helper name -> base URL, e.g. "s3"
    workers: int = 1  # `gateway serve --workers N`; the bare proxies have one process


@dataclass(frozen=True)
class Running:
    base_url: str
    key: str
    proc: subprocess.Popen[bytes]


class Target(Protocol):
    name: str
    label: str

    def start(self, ctx: StartContext) -> Running: ...


def child_env() -> dict[str, str]:
    """The environment for targets: GATEWAY_* overrides dropped (the config file is the whole config), and
    loopback kept away from any HTTP proxy."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("GATEWAY_")}
    no_proxy = ",".join(x for x in (env.get("NO_PROXY", ""), "127.0.0.1,localhost") if x)
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _ProxyTarget:
    """A bench/ proxy script: it checks one key, forwards to the fake upstream, and does `extra_args`."""

    script = ""
    key = ""

    def __init__(self, name: str, label: str) -> None:
        self.name = name
        self.label = label

    def extra_args(self, ctx: StartContext) -> list[str]:
        return []

    def start(self, ctx: StartContext) -> Running:
        port = free_port()
        argv = [
            ctx.python,
            str(BENCH_DIR / self.script),
            "--port",
            str(port),
            "--upstream",
            ctx.upstream_base,
        ]
        argv += ["--key", self.key, "--upstream-key", UPSTREAM_KEY, *self.extra_args(ctx)]
        log = ctx.log_dir / f"{self.name}.log"
        proc = ctx.children.spawn(argv, log=log, cpu=ctx.cpu, env=child_env(), cwd=REPO_DIR)
        base_url = f"http://127.0.0.1:{port}"
        wait_until_ready(f"{base_url}/healthz", proc, log)
        return Running(base_url=base_url, key=self.key, proc=proc)


class ReferenceTarget(_ProxyTarget):
    """bench/reference_proxy.py: aiohttp, one key, forward (chat, and images passed through), nothing else."""

    script = "reference_proxy.py"
    key = REFERENCE_KEY

    def __init__(self, name: str = "reference", label: str = "reference proxy (aiohttp)") -> None:
        super().__init__(name, label)


class BaselineRehostTarget(_ProxyTarget):
    """bench/baseline_rehost.py: aiohttp, one key, forward, decode base64 once, boto3 upload, nothing else."""

    script = "baseline_rehost.py"
    key = BASELINE_KEY

    def __init__(self, name: str = "baseline", label: str = "baseline re-hosting proxy (aiohttp + boto3)"):
        super().__init__(name, label)

    def extra_args(self, ctx: StartContext) -> list[str]:
        s3 = ctx.services["s3"]
        return ["--s3-endpoint", s3, "--bucket", S3_BUCKET, "--public-base-url", PUBLIC_BASE_URL]


GATEWAY_CONFIG = """\
server: {{host: 127.0.0.1, port: {port}, sse_keepalive_seconds: 10}}
database: {{url: {db_url}}}
storage: {storage}
logging: {{level: WARNING}}
channels:
  - name: upstream
    kind: openai
    base_url: {upstream_base}
    api_keys: [{upstream_key}]
    models: [{models}]
{channel_options}  - name: gemini
    kind: gemini
    base_url: {upstream_root}
    api_keys: [{upstream_key}]
    models: [{gemini_models}]
{pricing}"""

# `--billing`: every model priced and the token given a quota, so each request reserves and settles.
BILLING_QUOTA_USD = "1000000000"
PRICING = """pricing:
  unpriced: reject
  models:
{models}"""
PRICE = "    {model}: {{per_call: 0.001}}\n"

# The fake S3 speaks plain http; a production S3 is reached over https, where `sign_payload: auto` sends
# `UNSIGNED-PAYLOAD`. `never` gives the bench that behaviour (both the gateway and the re-hosting baseline).
S3_STORAGE = (
    "{{backend: s3, s3: {{endpoint_url: {endpoint}, region: us-east-1, bucket: {bucket}, access_key_id: x, "
    "secret_access_key: y, addressing_style: path, sign_payload: never, public_base_url: {public}}}}}"
)


def storage_config(ctx: StartContext) -> str:
    """The fake S3 when the measurement started one (images), else no storage (chat)."""
    if "s3" not in ctx.services:
        return "{backend: none}"
    return S3_STORAGE.format(
        endpoint=json.dumps(ctx.services["s3"]), bucket=S3_BUCKET, public=json.dumps(PUBLIC_BASE_URL)
    )


class GatewayTarget:
    """`python -m gateway serve` with a fresh SQLite database, one channel to the fake upstream and one token.
    Auth, routing and usage records stay on: this is the default configuration."""

    def __init__(
        self,
        models: tuple[str, ...] = (MODEL, IMAGE_MODEL),
        channel_options: str = CHANNEL_OPTIONS,
        gemini_models: tuple[str, ...] = (GEMINI_MODEL,),
        billing: bool = False,
    ) -> None:
        self.name = "gateway"
        self.label = "gateway (python -m gateway serve)" + (", priced, token with a quota" if billing else "")
        self.models = models
        self.channel_options = channel_options  # extra YAML lines of the channel, already indented
        self.billing = billing
        self.gemini_models = gemini_models  # served by a second, `kind: gemini`, channel to the same upstream

    def _run_cli(self, ctx: StartContext, args: list[str], log: Path) -> str:
        proc = ctx.children.spawn(
            [ctx.python, "-m", "gateway", *args], log=log, capture_stdout=True, env=child_env(), cwd=REPO_DIR
        )
        try:
            stdout, _ = proc.communicate(timeout=SETUP_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise StartError(f"`gateway {args[0]}` did not finish in {SETUP_TIMEOUT_S:.0f} s") from exc
        finally:
            ctx.children.stop(proc)
        text = stdout.decode(errors="replace")
        with log.open("a") as log_file:
            log_file.write(text)
        if proc.returncode != 0:
            raise StartError(
                f"`gateway {' '.join(args[:2])}` exited with {proc.returncode}:\n{log_tail(log)}"
            )
        return text

    def _pricing(self) -> str:
        if not self.billing:
            return ""
        models = (*self.models, *self.gemini_models)
        return PRICING.format(models="".join(PRICE.format(model=json.dumps(m)) for m in models))

    def start(self, ctx: StartContext) -> Running:
        port = free_port()
        config = ctx.workdir / "gateway.yaml"
        db_url = f"sqlite+aiosqlite:///{ctx.workdir / 'gateway.db'}"
        config.write_text(
            GATEWAY_CONFIG.format(
                port=port,
                db_url=json.dumps(db_url),
                storage=storage_config(ctx),
                upstream_base=json.dumps(ctx.upstream_base),
                upstream_key=json.dumps(UPSTREAM_KEY),
                models=", ".join(json.dumps(m) for m in self.models),
                channel_options=self.channel_options,
                upstream_root=json.dumps(ctx.upstream_base.removesuffix("/v1")),
                gemini_models=", ".join(json.dumps(m) for m in self.gemini_models),
                pricing=self._pricing(),
            )
        )
        log = ctx.log_dir / f"{self.name}.log"
        ctx.log_dir.mkdir(parents=True, exist_ok=True)
        (ctx.log_dir / config.name).write_text(config.read_text())  # kept with the logs, for a rerun by hand
        self._run_cli(ctx, ["migrate", "--config", str(config)], log)
        quota = ["--quota-usd", BILLING_QUOTA_USD] if self.billing else []
        out = self._run_cli(
            ctx, ["tokens", "create", "--config", str(config), "--name", "bench", "--json", *quota], log
        )
        key = parse_token_key(out)
        argv = [ctx.python, "-m", "gateway", "serve", "--config", str(config)]
        if ctx.workers > 1:
            argv += ["--workers", str(ctx.workers)]
        proc = ctx.children.spawn(argv, log=log, cpu=ctx.cpu, env=child_env(), cwd=REPO_DIR)
        base_url = f"http://127.0.0.1:{port}"
        wait_until_ready(f"{base_url}/healthz", proc, log)
        return Running(base_url=base_url, key=key, proc=proc)


def parse_token_key(stdout: str) -> str:
    """The `key` of the JSON object printed by `gateway tokens create --json` (whole output or a line)."""
    candidates = [stdout.strip(), *reversed(stdout.strip().splitlines())]
    for text in candidates:
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("key"), str) and data["key"]:
            return str(data["key"])
    raise StartError(f"`gateway tokens create --json` printed no JSON object with a key: {stdout[:500]!r}")


def make_targets(names: list[str], gateway_impl: str = "gateway", billing: bool = False) -> list[Target]:
    """`gateway_impl="reference"` (or "baseline") puts that proxy in the gateway's seat: a harness self-test
    whose ratios should come out near 1.0."""
    targets: list[Target] = []
    for name in names:
        if name == "gateway" and gateway_impl == "reference":
            targets.append(ReferenceTarget("gateway", "reference proxy in the gateway seat"))
        elif name == "gateway" and gateway_impl == "baseline":
            targets.append(BaselineRehostTarget("gateway", "baseline proxy in the gateway seat"))
        elif name == "gateway":
            targets.append(GatewayTarget(billing=billing))
        elif name == "reference":
            targets.append(ReferenceTarget())
        elif name == "baseline":
            targets.append(BaselineRehostTarget())
        else:
            raise ValueError(f"unknown target {name!r}; choose from gateway, reference, baseline")
    return targets

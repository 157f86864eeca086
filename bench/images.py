"""The images re-hosting benchmark, in one command: the gateway against a bare re-hosting proxy, same run.

    .venv/bin/python -m bench.images            # full run, about 2 minutes
    .venv/bin/python -m bench.images --quick    # smoke run, about 1 minute

The fake upstream answers every `POST /v1/images/generations` with one PNG as `b64_json` (as GPT image
models do); the client asks for `response_format: url`, so each target decodes the image, uploads it to a
fake S3 and answers its URL. The `gemini20mb` scenario has the gateway alone against a Gemini-shaped
upstream (a 4K answer: 20 MB of PNG as `inlineData`), compared with the 16 MB scenario's baseline.
Prints Markdown tables and PASS/FAIL against the targets (peak RSS growth under 3x the image bytes in
flight, req/s at least 0.8x the baseline's, or 0.5x the 16 MB one's for Gemini, no errors); writes JSON
to bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/images.py`: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import images_report  # noqa: E402
from bench.png import make_png  # noqa: E402
from bench.procs import install_signal_handlers  # noqa: E402
from bench.runner import Kind, run  # noqa: E402
from bench.scenarios import GEMINI_MODEL, IMAGE_MODEL, IMAGE_SCENARIOS, Scenario, select  # noqa: E402
from bench.targets import BaselineRehostTarget, GatewayTarget, Target  # noqa: E402
from gateway.images.sniff import sniff  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
QUICK_DURATION_S = 4.0
QUICK_WARMUP_S = 1.0
WARMUP_S = 3.0
# GPT image models refuse `response_format`: the operator marks the channel so, and no call is wasted on it
CHANNEL_OPTIONS = "    response_format: unsupported\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_DURATION_S:.0f} s per scenario")
    p.add_argument("--rounds", type=int, default=1, help="repeat everything; report the median round")
    p.add_argument("--duration", type=float, help="seconds of measured load per scenario (default 15)")
    p.add_argument("--warmup", type=float, help=f"seconds of warm-up load (default {WARMUP_S:.0f})")
    p.add_argument(
        "--scenarios",
        default=",".join(s.name for s in IMAGE_SCENARIOS),
        help="comma list: 16mb,1mb,gemini20mb (gemini20mb is compared with the 16mb baseline)",
    )
    p.add_argument("--targets", default="gateway,baseline", help="comma list: gateway,baseline")
    p.add_argument(
        "--gateway-impl",
        choices=("gateway", "baseline"),
        default="gateway",
        help="'baseline' seats the baseline proxy as the gateway: a harness self-test (ratios ~1.0)",
    )
    p.add_argument("--driver", choices=("auto", "wrk", "python"), default="auto", help="auto: wrk if on PATH")
    p.add_argument("--billing", action="store_true", help="price the model and give the token a quota")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout of the load driver, s")
    p.add_argument("--python", default=sys.executable, help="interpreter for the targets and helpers")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores with taskset")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> list[Scenario]:
    scenarios = select([n.strip() for n in args.scenarios.split(",") if n.strip()], IMAGE_SCENARIOS)
    duration = args.duration if args.duration is not None else (QUICK_DURATION_S if args.quick else None)
    if duration is None:
        return scenarios
    return [dataclasses.replace(s, duration_s=duration) for s in scenarios]


def make_targets(names: list[str], gateway_impl: str, billing: bool = False) -> list[Target]:
    targets: list[Target] = []
    for name in names:
        if name == "gateway" and gateway_impl == "gateway":
            targets.append(
                GatewayTarget(
                    models=(IMAGE_MODEL,),
                    channel_options=CHANNEL_OPTIONS,
                    gemini_models=(GEMINI_MODEL,),
                    billing=billing,
                )
            )
        elif name == "gateway":
            targets.append(BaselineRehostTarget("gateway", "baseline proxy in the gateway seat"))
        elif name == "baseline":
            targets.append(BaselineRehostTarget())
        else:
            raise ValueError(f"unknown target {name!r}; choose from gateway, baseline")
    return targets


def check_png_generator(scenarios: list[Scenario]) -> None:
    """The fake upstream makes its PNG with bench/png.py: check that it gives a real PNG of the asked size."""
    for scenario in scenarios:
        png = make_png(scenario.image_bytes)
        info = sniff(png)
        if len(png) != scenario.image_bytes or info is None or info.mime != "image/png":
            raise SystemExit(f"bench/png.py made a bad {scenario.image_bytes}-byte PNG: {info}")


IMAGES = Kind(
    "images",
    "Images re-hosting benchmark",
    "baseline",
    images_report.judge,
    images_report.results_table,
    images_report.storage_notes,
)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    scenarios = plan(args)
    check_png_generator(scenarios)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    targets = make_targets(names, args.gateway_impl, billing=args.billing)
    warmup = args.warmup if args.warmup is not None else (QUICK_WARMUP_S if args.quick else WARMUP_S)
    return run(args, IMAGES, scenarios, targets, warmup)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the children were stopped on the way out
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)

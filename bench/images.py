"""The images benchmark: the gateway against a bare pass-through proxy (and a bare re-hosting one), same run.

    .venv/bin/python -m bench.images            # full run, about 3 minutes
    .venv/bin/python -m bench.images --quick    # smoke run, about 1.5 minutes

The fake upstream answers every images request with one PNG in base64 (`b64_json` as GPT image models do,
or `inlineData` of a Gemini `generateContent`). `pass-*` and `gemini-4k`: the client asks `b64_json`, the
gateway and the bare reference proxy pass the image through. `rehost-*`: the client asks `url`, so the image
is decoded, uploaded to a fake S3 and answered as a URL, by the gateway and by the bare re-hosting baseline;
the gateway's req/s is compared with the reference's pass-through of the same answer (or, for `rehost-1mb`,
with the baseline). Prints Markdown tables and PASS/FAIL; writes JSON to bench/results/.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/images.py`: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.runner import Command, entry  # noqa: E402
from bench.runner import main as run_main  # noqa: E402
from bench.scenarios import IMAGE_SCENARIOS  # noqa: E402

IMAGES = Command(
    "images", "Images benchmark", IMAGE_SCENARIOS, "gateway,reference,baseline", "baseline", __doc__ or ""
)


def main(argv: list[str] | None = None) -> int:
    return run_main(IMAGES, argv)


if __name__ == "__main__":
    entry(IMAGES)

"""wfbus benchmarks, side by side with the tools people would otherwise use.

    python -m bench [--scale 1.0] [--only NAME ...] [--out bench/results]

Runs against the real servers on 127.0.0.1 (started with scripts/services/ctl; this command starts
none itself), alternates wfbus and its peer in each repetition, takes medians, and writes
bench/results/latest.json and latest.md with the machine described.  Ratios are the headline.
`--scale 0.001` is the smoke run the test suite uses so this cannot rot.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .runner import Bench
from .scenarios import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every event count (smoke: 0.001)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="repetitions per comparison (medians)"
    )
    parser.add_argument(
        "--only", nargs="*", default=None, help=f"scenarios: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    bench = Bench(scale=args.scale, repeat=args.repeat)
    try:
        for name, scenario in SCENARIOS.items():
            if args.only and name not in args.only:
                continue
            print(f"== {name}", file=sys.stderr, flush=True)
            scenario(bench)
    finally:
        bench.cleanup()
    report = bench.report()
    print(report["markdown"])
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.scale == 1.0 else f"-scale{args.scale:g}"
    (args.out / f"latest{suffix}.json").write_text(json.dumps(report["data"], indent=2) + "\n")
    (args.out / f"latest{suffix}.md").write_text(report["markdown"] + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

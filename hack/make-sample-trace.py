"""Regenerate rebalancer/simulate/data/grid-sample-2022.csv.gz from the shared grid data.

    python hack/make-sample-trace.py ../shared/data/grid/carbon-intensity-hourly-2022.csv.gz

Keeps every zone and the four weeks from Monday 2022-03-07 00:00 UTC (672 hours), rows and values
exactly as in the source; gzip with no timestamp, so the output is byte-for-byte reproducible.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

START = "2022-03-07T00:00:00Z"
END = "2022-04-04T00:00:00Z"  # first hour dropped
OUT = Path(__file__).resolve().parent.parent / "rebalancer" / "simulate" / "data" / "grid-sample-2022.csv.gz"


def sample(source_text: str) -> str:
    lines = source_text.splitlines()
    # ISO times in one format sort as text, so the window is a string comparison.
    kept = [line for line in lines[1:] if START <= line.split(",", 1)[0] < END]
    return "\n".join([lines[0], *kept]) + "\n"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    text = gzip.decompress(Path(sys.argv[1]).read_bytes()).decode("utf-8")
    OUT.write_bytes(gzip.compress(sample(text).encode("utf-8"), compresslevel=9, mtime=0))
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())

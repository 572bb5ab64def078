"""Regenerate rebalancer/simulate/data/grid-sample-2022.csv.gz from the shared grid data.

    python hack/make-sample-trace.py ../shared/data/grid

Keeps the hours from 2022-01-01 00:00 UTC to 2022-04-04 00:00 UTC (2,232 hours): the first nine
weeks are the warm-up of the README example (`--start 2022-03-07T00:00:00Z`), the last four its
window.

- BR, DE, ES, NO, US-CAL-CISO: the rows exactly as in carbon-intensity-hourly-2022.csv.gz.
- IE, SE-SE3, US-MIDA-PJM (the embedded default's and the local demo's zones, for which the shared
  data has no hourly series): STAND-INS. Each is a real hourly series of a similar grid (DE for IE
  and US-MIDA-PJM, NO for SE-SE3) scaled so that its 2022 mean is the zone's own 2022 annual mean
  lifecycle intensity (zone-annual-mean-lifecycle-g-per-kwh.csv); the direct column by the same
  factor. Right on average, not hour by hour: good for trying the demo's configuration, not for
  estimating savings in those zones.

gzip with no timestamp, so the output is byte-for-byte reproducible.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from pathlib import Path

START = "2022-01-01T00:00:00Z"
END = "2022-04-04T00:00:00Z"  # first hour dropped
YEAR = "2022"
# zone -> the real zone whose hourly shape it borrows
STAND_INS = {"IE": "DE", "SE-SE3": "NO", "US-MIDA-PJM": "DE"}
OUT = Path(__file__).resolve().parent.parent / "rebalancer" / "simulate" / "data" / "grid-sample-2022.csv.gz"


def annual_means(text: str) -> dict[str, float]:
    return {row["zonecode"]: float(row[YEAR]) for row in csv.DictReader(io.StringIO(text))}


def stand_in_scale(rows: list[list[str]], means: dict[str, float]) -> dict[str, float]:
    """zone -> factor bringing its proxy's 2022 mean lifecycle intensity to the zone's own."""
    totals: dict[str, list[float]] = {}
    for row in rows:
        totals.setdefault(row[1], []).append(float(row[3]))
    return {
        zone: means[zone] / (sum(totals[proxy]) / len(totals[proxy])) for zone, proxy in STAND_INS.items()
    }


def sample(source_text: str, means_text: str) -> str:
    lines = source_text.splitlines()
    rows = [line.split(",") for line in lines[1:]]
    scale = stand_in_scale(rows, annual_means(means_text))
    # ISO times in one format sort as text, so the window is a string comparison.
    kept = [row for row in rows if START <= row[0] < END]
    out = [",".join(row) for row in kept]
    for row in kept:
        for zone, proxy in STAND_INS.items():
            if row[1] == proxy:
                factor = scale[zone]
                out.append(f"{row[0]},{zone},{float(row[2]) * factor:.2f},{float(row[3]) * factor:.2f}")
    # Hour by hour, zones in name order within each hour, as the source is laid out.
    out.sort(key=lambda line: tuple(line.split(",", 2)[:2]))
    return "\n".join([lines[0], *out]) + "\n"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    grid = Path(sys.argv[1])
    text = gzip.decompress((grid / f"carbon-intensity-hourly-{YEAR}.csv.gz").read_bytes()).decode("utf-8")
    means = (grid / "zone-annual-mean-lifecycle-g-per-kwh.csv").read_text(encoding="utf-8")
    OUT.write_bytes(gzip.compress(sample(text, means).encode("utf-8"), compresslevel=9, mtime=0))
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())

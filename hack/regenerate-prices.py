"""Regenerate the Azure rows of core/data/prices.json from saved Azure Retail Prices responses.

A maintainer's tool, never run in CI. It reads what the live provider reads, through the same
parsers (core.signals.prices.azure: the row rules, the price in effect, the split rule), so the
bundled fallback and a live price agree on every figure. Each figure is written with its source
and date: the VM, its hourly prices and when they took effect, the file, when it was saved.

Save the responses first (no credentials needed), one directory, one file per region and page:

    mkdir -p saved && for region in eastus westeurope; do
      curl -sG https://prices.azure.com/api/retail/prices \\
        --data-urlencode "\\$filter=serviceName eq 'Virtual Machines' and armRegionName eq '$region' \\
and armSkuName eq 'Standard_D2s_v5'" > "saved/$region.page1.json"
    done   # follow NextPageLink into page2, page3, ... when a page has one

then preview, and write when the diff looks right:

    python hack/regenerate-prices.py saved --saved-on 2026-12-07
    python hack/regenerate-prices.py saved --saved-on 2026-12-07 --write

Spot: the VM's own `... Spot` meter when the region has one; otherwise the row keeps the
bundled estimate (said so in its source).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.catalog import PRICES_FILE, parse_price_table  # noqa: E402
from core.signals.http import as_list, as_object  # noqa: E402
from core.signals.prices.azure import vm_prices_in_effect  # noqa: E402
from core.signals.prices.split import VCPU_TO_GIB_PRICE_RATIO, split_vm_price, vm_shape  # noqa: E402

TABLE = REPO / "core" / "data" / PRICES_FILE
DIGITS = 7


def rows_of(directory: Path, region: str) -> tuple[list[dict[str, object]], list[str]]:
    """Every Items row of the region's saved pages (``<region>.page<N>.json``, or ``<region>.json``)."""
    files = sorted(directory.glob(f"{region}.page*.json")) or sorted(directory.glob(f"{region}.json"))
    rows: list[dict[str, object]] = []
    for path in files:
        body = as_object(json.loads(path.read_text(encoding="utf-8")))
        items = as_list(body.get("Items")) if body is not None else None
        if items is None:
            raise SystemExit(f"{path}: not an Azure Retail Prices response (no Items list)")
        rows += [row for row in (as_object(item) for item in items) if row is not None]
    return rows, [path.name for path in files]


def entry(
    region: str, *, vm: str, directory: Path, saved_on: date, bundled: dict[str, object]
) -> dict[str, object] | None:
    rows, files = rows_of(directory, region)
    if not files:
        return None
    shape = vm_shape("azure", vm)
    if shape is None:
        raise SystemExit(f"{vm}: no shape in core/data/vm-shapes.csv")
    vcpus, memory = shape
    # The price in effect on the day the responses were saved, as the live provider would have read it.
    chosen = vm_prices_in_effect(
        rows, arm_region=region, vm=vm, now=datetime.combine(saved_on, time.max, UTC)
    )
    if False not in chosen:
        raise SystemExit(f"{region}: no Linux on-demand hourly row for {vm} in {', '.join(files)}")
    effective, price = chosen[False]
    on_demand = split_vm_price(price, vcpus=vcpus, memory_gib=memory)
    where = f"{', '.join(files)} saved {saved_on.isoformat()}"
    source = (
        f"Azure {vm} ({vcpus:g} vCPU, {memory:g} GiB) Linux pay-as-you-go ${price:g}/h effective "
        f"{effective.date().isoformat()}, Azure Retail Prices API ({where}); "
        "split with r = 0.031611/0.004237 (docs/prices.md)"
    )
    if True in chosen:
        spot_effective, spot_price = chosen[True]
        spot = split_vm_price(spot_price, vcpus=vcpus, memory_gib=memory)
        spot_vcpu, spot_gib = spot.vcpu_hour_usd, spot.gib_hour_usd
        source += (
            f"; spot ${spot_price:g}/h effective {spot_effective.date().isoformat()} (the VM's Spot meter)"
        )
    else:
        ratio = float(str(bundled.get("spotVcpuHour", 0))) / float(str(bundled.get("vcpuHour", 1)))
        spot_vcpu, spot_gib = on_demand.vcpu_hour_usd * ratio, on_demand.gib_hour_usd * ratio
        source += f"; spot = on-demand x {ratio:.2f}, the bundled ESTIMATE (no Spot meter saved)"
    return {
        "vcpuHour": round(on_demand.vcpu_hour_usd, DIGITS),
        "gibHour": round(on_demand.gib_hour_usd, DIGITS),
        "spotVcpuHour": round(spot_vcpu, DIGITS),
        "spotGibHour": round(spot_gib, DIGITS),
        "cloud": "azure",
        "source": source,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("saved", type=Path, help="directory of saved responses, <region>.page<N>.json")
    parser.add_argument("--saved-on", required=True, type=date.fromisoformat, help="the day they were saved")
    parser.add_argument("--vm", default="Standard_D2s_v5", help="the reference VM (default Standard_D2s_v5)")
    parser.add_argument("--write", action="store_true", help=f"rewrite {TABLE.relative_to(REPO)}")
    args = parser.parse_args()
    table: dict[str, dict[str, object]] = json.loads(TABLE.read_text(encoding="utf-8"))
    changed = 0
    for region, current in sorted(table.items()):
        if current.get("cloud") != "azure":
            continue
        fresh = entry(region, vm=args.vm, directory=args.saved, saved_on=args.saved_on, bundled=current)
        if fresh is None:
            print(f"{region}: no saved response, kept", file=sys.stderr)
            continue
        before, after = current.get("vcpuHour"), fresh["vcpuHour"]
        spot_before, spot_after = current.get("spotVcpuHour"), fresh["spotVcpuHour"]
        print(f"{region}: vcpuHour {before} -> {after}, spotVcpuHour {spot_before} -> {spot_after}")
        table[region] = fresh
        changed += 1
    text = json.dumps(table, indent=2, ensure_ascii=False) + "\n"
    parse_price_table(text)  # the loader's own checks, before anything is written
    assert abs(VCPU_TO_GIB_PRICE_RATIO - 0.031611 / 0.004237) < 1e-12
    if args.write and changed:
        TABLE.write_text(text, encoding="utf-8")
        print(f"wrote {changed} region(s) to {TABLE.relative_to(REPO)}; update core/data/SOURCES.md's date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

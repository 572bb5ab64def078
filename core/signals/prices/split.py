"""The split rule: one VM's hourly price into a per-vCPU and a per-GiB part, and the VM shapes.

    gib_hour = P / (v·r + m)        vcpu_hour = r·gib_hour        r = 0.031611 / 0.004237

r is the ratio of GCP's N2 us-central1 per-vCPU and per-GiB on-demand SKUs, the one the bundled
table was made with (core/data/SOURCES.md), so a live price and a bundled one are split alike.
"""

from __future__ import annotations

from functools import cache
from typing import Final

from core.catalog import CatalogError, _csv_number, _csv_rows, read_data_file
from core.signals.base import ProviderError, ProviderErrorKind
from core.signals.prices.base import ResourcePrices

VCPU_TO_GIB_PRICE_RATIO: Final = 0.031611 / 0.004237
VM_SHAPES_FILE: Final = "vm-shapes.csv"
_HEADER: Final = ["cloud", "vm", "vcpus", "memory_gib"]


def split_vm_price(price_usd_per_hour: float, *, vcpus: float, memory_gib: float) -> ResourcePrices:
    gib_hour = price_usd_per_hour / (vcpus * VCPU_TO_GIB_PRICE_RATIO + memory_gib)
    return ResourcePrices(vcpu_hour_usd=VCPU_TO_GIB_PRICE_RATIO * gib_hour, gib_hour_usd=gib_hour)


def parse_vm_shapes(text: str, name: str = VM_SHAPES_FILE) -> dict[tuple[str, str], tuple[float, float]]:
    """``cloud,vm,vcpus,memory_gib`` -> {(cloud, vm): (vcpus, GiB)}."""
    shapes: dict[tuple[str, str], tuple[float, float]] = {}
    for line, (cloud, vm, vcpus, memory) in _csv_rows(text, name, _HEADER):
        where = f"{name}:{line}"
        if (cloud, vm) in shapes:
            raise CatalogError(f"{where}: duplicate {cloud} {vm}")
        shapes[(cloud, vm)] = (
            _csv_number(vcpus, f"{where}.vcpus", minimum=0.0, maximum=1024.0, exclusive_min=True),
            _csv_number(memory, f"{where}.memory_gib", minimum=0.0, maximum=32768.0, exclusive_min=True),
        )
    return shapes


@cache
def load_vm_shapes() -> dict[tuple[str, str], tuple[float, float]]:
    """The bundled reference VM shapes (a small table: add a row to use another reference VM)."""
    return parse_vm_shapes(read_data_file(VM_SHAPES_FILE))


def vm_shape(cloud: str, vm: str) -> tuple[float, float] | None:
    return load_vm_shapes().get((cloud, vm))


def reference_shape(cloud: str, vm: str) -> tuple[float, float]:
    """(vCPUs, GiB) of a provider's reference VM; ProviderError(CONFIG) naming the setting if unknown."""
    shape = vm_shape(cloud, vm)
    if shape is None:
        raise ProviderError(
            ProviderErrorKind.CONFIG,
            f"{cloud}: pricing.{cloud}.referenceVm {vm!r} has no bundled shape (core/data/{VM_SHAPES_FILE})",
        )
    return shape

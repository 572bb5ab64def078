"""AwsPriceProvider (botocore) against a local server speaking EC2's Query protocol and the Price
List API's JSON 1.1, which checks every request's SigV4 signature with botocore's own signer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from core.config import AwsPriceSettings
from core.model import Region
from core.signals.base import ProviderError, ProviderErrorKind
from core.signals.prices.aws import AwsPriceProvider, aws_from_env, spot_median_usd
from core.signals.prices.base import PriceFetch, RegionPrices
from core.signals.prices.split import split_vm_price
from tests.price_servers import AWS_ACCESS_KEY, AWS_SECRET_KEY, FakeAws, Scripted, fake_aws

pytest.importorskip("botocore")

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
VIRGINIA, IRELAND = Region(name="us-east-1", zone="US-MIDA-PJM"), Region(name="eu-west-1", zone="IE")
SPOT = {
    "us-east-1": [
        ("us-east-1a", 0.050, "2026-11-20T08:00:00.000Z"),
        ("us-east-1a", 0.031, "2026-11-20T11:00:00.000Z"),  # the zone's latest
        ("us-east-1b", 0.035, "2026-11-20T10:00:00.000Z"),
        ("us-east-1c", 0.040, "2026-11-20T09:30:00.000Z"),
    ]
}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAws]:
    # botocore's default chain, from the environment only (no config files, no instance metadata).
    for name, value in {
        "AWS_ACCESS_KEY_ID": AWS_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET_KEY,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with fake_aws({"us-east-1": 0.096, "eu-west-1": 0.107}, SPOT) as state:
        yield state


def provider(server: FakeAws) -> AwsPriceProvider:
    return aws_from_env(
        {
            "AWS_ENDPOINT_URL_EC2": server.url,
            "AWS_ENDPOINT_URL_PRICING": server.url,
            "ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS": "true",
        },
        settings=AwsPriceSettings(),
        clock=lambda: NOW,
    )


def fetch(server: FakeAws, *regions: Region) -> PriceFetch:
    p = provider(server)
    try:
        return p.fetch(regions or (VIRGINIA,))
    finally:
        p.close()


def test_on_demand_from_the_price_list_spot_the_median_of_the_zones_latest(server: FakeAws) -> None:
    result = fetch(server, VIRGINIA, IRELAND)
    virginia = result["us-east-1"]
    assert isinstance(virginia, RegionPrices)
    assert virginia.on_demand == split_vm_price(0.096, vcpus=2, memory_gib=8)
    # Latest per zone: a 0.031, b 0.035, c 0.040 -> 0.035 (a's older 0.050 and other products ignored).
    assert virginia.spot == split_vm_price(0.035, vcpus=2, memory_gib=8)
    ireland = result["eu-west-1"]
    assert isinstance(ireland, RegionPrices) and ireland.spot is None
    assert server.bad_signatures == []
    # Every request was signed and checked; spot history came in pages of two.
    spot_requests = [
        h for _, h in server.requests if "x-amz-target" not in h and "/us-east-1/ec2/" in h["authorization"]
    ]
    assert len(spot_requests) == 2


def test_a_wrong_secret_fails_the_signature_check_and_is_auth(
    server: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(ProviderError) as info:
        fetch(server)
    assert info.value.kind is ProviderErrorKind.AUTH
    assert server.bad_signatures == ["signature mismatch"]
    assert "not-the-secret" not in str(info.value)


def test_throttling_stops_the_round_with_its_retry_after(server: FakeAws) -> None:
    server.script.append(
        Scripted(
            status=400,
            headers={"Retry-After": "90", "content-type": "application/x-amz-json-1.1"},
            body=b'{"__type": "ThrottlingException", "message": "Rate exceeded"}',
        )
    )
    with pytest.raises(ProviderError) as info:
        fetch(server, VIRGINIA, IRELAND)
    assert info.value.kind is ProviderErrorKind.RATE_LIMITED and info.value.retry_after_seconds == 90
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("scripted", "kind"),
    [
        (Scripted(status=503, body=b"<html>down</html>"), ProviderErrorKind.UNAVAILABLE),
        (Scripted(status=302, headers={"Location": "http://elsewhere.example/"}), ProviderErrorKind.CONFIG),
        (
            Scripted(
                status=200, body=b"\x00garbage{", headers={"content-type": "application/x-amz-json-1.1"}
            ),
            ProviderErrorKind.BAD_RESPONSE,
        ),
        (Scripted(status=200, body=b"[" + b"1," * (3 * 1024 * 1024) + b"1]"), ProviderErrorKind.BAD_RESPONSE),
    ],
)
def test_errors_are_that_regions(server: FakeAws, scripted: Scripted, kind: ProviderErrorKind) -> None:
    server.script.append(scripted)
    result = fetch(server, VIRGINIA, IRELAND)
    error = result["us-east-1"]
    assert isinstance(error, ProviderError) and error.kind is kind, error
    assert isinstance(result["eu-west-1"], RegionPrices)


def test_a_region_the_price_list_does_not_know(server: FakeAws) -> None:
    error = fetch(server, Region(name="ap-nowhere-1", zone="DE"))["ap-nowhere-1"]
    assert isinstance(error, ProviderError) and error.kind is ProviderErrorKind.NOT_FOUND


def test_endless_paging_stops_at_the_cap(server: FakeAws) -> None:
    server.page_size = 0  # every page empty, every page with a NextToken
    server.script.extend(
        Scripted(
            status=200,
            headers={"content-type": "application/x-amz-json-1.1"},
            body=b'{"FormatVersion": "aws_v1", "PriceList": [], "NextToken": "again"}',
        )
        for _ in range(25)
    )
    error = fetch(server)["us-east-1"]
    assert isinstance(error, ProviderError) and "more than 20 pages" in error.message


def test_plain_http_endpoints_need_the_opt_in(server: FakeAws) -> None:
    with pytest.raises(ProviderError, match="ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS"):
        aws_from_env({"AWS_ENDPOINT_URL_EC2": server.url}, settings=AwsPriceSettings())
    assert server.requests == []


def test_spot_median_is_per_zone_latest() -> None:
    rows = [
        {
            "AvailabilityZone": "a",
            "SpotPrice": "0.1",
            "Timestamp": NOW,
            "InstanceType": "m5.large",
            "ProductDescription": "Linux/UNIX",
        },
        {
            "AvailabilityZone": "b",
            "SpotPrice": "0.3",
            "Timestamp": NOW,
            "InstanceType": "m5.large",
            "ProductDescription": "Linux/UNIX",
        },
        {
            "AvailabilityZone": "b",
            "SpotPrice": "9",
            "Timestamp": NOW,
            "InstanceType": "m5.large",
            "ProductDescription": "Windows",
        },
    ]
    assert spot_median_usd(rows, vm="m5.large") == pytest.approx(0.2)
    assert spot_median_usd([], vm="m5.large") is None

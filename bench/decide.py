"""CPU time to parse and decide one admission review, in process (no HTTP, no TLS).

The reviews are bench/webhook.py's "a different pod in every review": 20,000 of them go through
parse_review and decide, with the webhook's placement memo. It reports the best of five passes, in
microseconds a review. Run it from two trees in turn to compare them (each reads its own code):

    python bench/decide.py                 # this tree
    python ../other/bench/decide.py        # another checkout, same machine, interleave the runs
    python bench/decide.py --profile       # where the time goes (cProfile, 25 lines)
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import json
import pstats
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from core.config import parse_config_text
from core.signals.prices.refresher import PriceRefresher
from core.signals.refresher import SignalCache, SignalRefresher
from tests.conftest import MOCK_CONFIG
from webhook.admission.mutate import PlacementMemo, ReviewOutcome, decide
from webhook.admission.review import parse_review

REVIEWS = 20_000


def distinct_bodies(count: int) -> list[bytes]:
    """bench/webhook.py's review with a different pod each time, encoded as the API server sends it."""
    spec = importlib.util.spec_from_file_location("bench_webhook", HERE / "webhook.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [json.dumps(module.distinct_review(index)).encode() for index in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", action="store_true", help="print where the time goes instead")
    args = parser.parse_args()
    config = parse_config_text(MOCK_CONFIG)
    # The signals as the webhook holds them: its refresher, once, over the configuration's mock grid,
    # with the price signal's quotes in every snapshot.
    refresher = SignalRefresher(config=config, cache=SignalCache(), prices=PriceRefresher(config=config))
    refresher.refresh_once()
    signals = refresher.snapshot()
    bodies = distinct_bodies(REVIEWS)
    memo = PlacementMemo()

    def one_pass() -> ReviewOutcome:
        outcome = None
        for body in bodies:
            outcome = decide(parse_review(body), signals=signals, config=config, memo=memo)
        assert outcome is not None
        return outcome

    one_pass()  # warm: the memo holds the placement, as in a running webhook
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        one_pass()
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())
        return 0
    best_seconds = float("inf")
    for _ in range(5):
        started = time.process_time()
        outcome = one_pass()
        best_seconds = min(best_seconds, time.process_time() - started)
    print(
        f"parse + decide: {best_seconds / REVIEWS * 1e6:.1f} us a review "
        f"({outcome.outcome}: {outcome.reason})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The stateless calls answer as a fresh engine does (issue 13: one policy module).

Plain books (linear, flat rate, isolated) take the one-pass column path; every other book
(tiers, multipliers, inverse markets, cross rows with wallets) goes to an engine loaded for
the call. Here the column path is checked against the engine path on realistic gapped books
for every policy, and the engine path is checked by hand on books only it can take.
"""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adl
from adl import stateless
from adl._io import markets_for, position_arrays

POLICIES = ["bitmex", "binance", "hyperliquid", "min_max_leverage", "size_pro_rata", "wealth_pro_rata",
            "levered_pro_rata", "capped_pro_rata", "dydx"]
RANKED = [p for p in POLICIES if adl._adl.ranks(p)]


def gapped(seed: int, gaps: list[float], text_ids: bool = False) -> tuple[pl.DataFrame, dict[str, float], dict[str, adl.Market]]:
    """A venue book (five symbols at real prices, 1-125x, isolated) with each mark moved by a
    gap; with ``text_ids`` the accounts are strings whose sorted order is not the numbers' (and
    not the order the rows name them in)."""
    v = adl.venue_book(300, cross_share=0.0, seed=seed)
    if text_ids:
        book = v.positions.with_columns(pl.format("u{}", (pl.col("account") * 7919) % 1000).alias("account"))
        v = v._replace(positions=book)
    marks = {s: round(m * (1.0 + g), v.markets[s].price_decimals) for (s, m), g in zip(sorted(v.marks.items()), gaps)}
    return v.positions, marks, dict(v.markets)


def on_engine(book: pl.DataFrame, marks: dict[str, float], policy: str, markets: dict[str, adl.Market],
              seed: int = 0) -> tuple[adl.Engine, object]:
    a = position_arrays(book, text_ids=True)
    specs = markets_for(a.names, markets)
    eng = stateless._engine(book, a, [marks[n] for n in a.names], policy, specs, None, None, None, seed)  # type: ignore[arg-type]
    return eng, a


GAPS = st.lists(st.sampled_from([-0.3, -0.2, -0.1, -0.05, 0.0, 0.05, 0.1, 0.2, 0.3]), min_size=5, max_size=5)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), gaps=GAPS, policy=st.sampled_from(RANKED), text_ids=st.booleans())
def test_rank_on_a_plain_book_is_the_engine_queue(seed: int, gaps: list[float], policy: str, text_ids: bool) -> None:
    book, marks, markets = gapped(seed, gaps, text_ids)
    fast = adl.rank(book, marks, policy=policy, markets=markets)
    eng, a = on_engine(book, marks, policy, markets)
    slow = stateless._rank_on_engine(book, a, eng)  # type: ignore[arg-type]
    assert fast["rank"].null_count() < fast.height, "nobody eligible: the book does not test anything"
    for col in ("rank", "lights"):
        assert fast[col].to_list() == slow[col].to_list(), col
    off = (fast["percentile"] - slow["percentile"]).abs().max()
    assert off is None or off <= 1e-12  # type: ignore[operator]
    eligible = fast["rank"].is_not_null()
    rel = ((fast["score"] - slow["score"]).abs() / slow["score"].abs().clip(1e-300)).filter(eligible)
    assert rel.max() <= 1e-9  # type: ignore[operator]


@settings(max_examples=18, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), gaps=GAPS, policy=st.sampled_from(POLICIES), side=st.sampled_from(["long", "short"]),
       share=st.sampled_from([0.001, 0.05, 0.3, 0.9]), walk=st.integers(0, 2**32), text_ids=st.booleans())
def test_deleverage_on_a_plain_book_places_the_lots_the_engine_places(
    seed: int, gaps: list[float], policy: str, side: str, share: float, walk: int, text_ids: bool
) -> None:
    book, marks, markets = gapped(seed, gaps, text_ids)
    symbol = "ETH"
    opposite = book.filter((pl.col("symbol") == symbol) & (pl.col("side") != side))
    grid = 10.0 ** -markets[symbol].qty_decimals
    qty = max(grid, round(float(opposite["qty"].sum()) * share / grid) * grid)
    # The ADL price: a bankruptcy price a little beyond the mark, against the bankrupt side.
    price = round(marks[symbol] * (0.98 if side == "long" else 1.02), markets[symbol].price_decimals)
    args = dict(mark=marks, side=side, qty=qty, price=price, symbol=symbol, policy=policy, markets=markets, seed=walk)
    eng, a = on_engine(book, marks, policy, markets, seed=walk)
    try:
        fast = adl.deleverage(book, **args)  # type: ignore[arg-type]
    except adl.InsufficientLiquidityError as e:
        with pytest.raises(adl.InsufficientLiquidityError) as slow_err:
            stateless._fills_on_engine(book, a, eng, symbol, 1 if side == "long" else -1, qty, price)  # type: ignore[arg-type]
        assert slow_err.value.available == pytest.approx(e.available)
        return
    slow = stateless._fills_on_engine(book, a, eng, symbol, 1 if side == "long" else -1, qty, price)  # type: ignore[arg-type]
    assert fast.select("account", "qty", "rank").rows() == slow.select("account", "qty", "rank").rows()
    assert fast.schema == slow.schema and fast["account"].dtype == book["account"].dtype
    assert fast["qty"].sum() == pytest.approx(qty)


TIERED = pl.DataFrame({
    "account": [1, 2, 3], "side": ["short"] * 3, "qty": [10.0, 10.0, 200.0],
    "entry_price": [110.0, 110.0, 110.0], "margin": [100.0, 100.0, 2_000.0],
})


def test_tiers_reach_the_binance_score() -> None:
    # Binance: max(0,u)/max(1,W) * MM/(W+u) at mark 100. Short 10 @ 110: u = 100, W = 100,
    # notional 1,000; short 200 @ 110: u = 2,000, W = 2,000, notional 20,000.
    # Tiers (0, 1 %), (10,000, 5 %, amount 400): MM = 10 for the small ones, 0.05*20,000 - 400 = 600.
    # Scores: 100/100 * 10/200 = 0.05; 2,000/2,000 * 600/4,000 = 0.15. A flat 1 % would give
    # 200/4,000 = 0.05 for the large one and rank it after accounts 1 and 2 (ties by account).
    m = adl.Market(0, 0, tiers=[(0, 0.01), (10_000, 0.05, 400.0)])
    out = adl.rank(TIERED, 100.0, policy="binance", markets=m)
    assert out["score"].to_list() == pytest.approx([0.05, 0.05, 0.15])
    assert out["rank"].to_list() == [2, 3, 1]
    flat = adl.rank(TIERED, 100.0, policy="binance", markets=adl.Market(0, 0, maintenance_rate=0.01))
    assert flat["rank"].to_list() == [1, 2, 3]


def test_inverse_deleverage_at_the_adl_price() -> None:
    # Inverse, multiplier 1 (one contract = 1 quote unit), prices as -1/P to 8 decimals: shorts
    # 1,000 @ 50,000 with margin 0.004 coin (value 0.02 coin, 5x); mark and ADL price 40,000
    # (PnL 1,000 * (1/40,000 - 1/50,000) = +0.005 coin each). BitMEX score: PnL% x leverage;
    # equal books tie, so the lower account goes first: 1,500 = account 1's 1,000 + 500 of 2.
    book = pl.DataFrame({"account": [1, 2], "side": ["short", "short"], "qty": [1_000.0, 1_000.0],
                         "entry_price": [50_000.0, 50_000.0], "margin": [0.004, 0.004]})
    m = adl.Market(0, 8, inverse=True)
    fills = adl.deleverage(book, 40_000.0, side="long", qty=1_500.0, price=40_000.0, markets=m)
    assert fills.select("account", "qty", "rank").rows() == [(1, 1_000.0, 1), (2, 500.0, 2)]
    ranked = adl.rank(book, 40_000.0, markets=m)
    assert ranked["rank"].to_list() == [1, 2]


def test_cross_rows_rank_with_their_wallets() -> None:
    # Two cross shorts 10 @ 100 at mark 90 (u = +100 each, notional N = 900), wallets 0 and
    # 900: under hyperliquid a short scores (E/P)(N/e), e its account's TNC: 100 for account 1
    # and 1,000 for account 2, so (100/90)(900/100) = 10 and (100/90)(900/1,000) = 1.
    book = pl.DataFrame({"account": [1, 2], "side": ["short", "short"], "qty": [10.0, 10.0],
                         "entry_price": [100.0, 100.0], "margin": [0.0, 0.0], "margin_mode": ["cross", "cross"]})
    wallets = pl.DataFrame({"account": [1, 2], "cash": [0.0, 900.0]})
    out = adl.rank(book, 90.0, policy="hyperliquid", accounts=wallets, markets=adl.Market(0, 0))
    assert out["rank"].to_list() == [1, 2]
    assert out["score"].to_list() == pytest.approx([100 / 90 * 900 / 100, 100 / 90 * 900 / 1_000])
    # The same rows with no wallets: account 1 and 2 both have TNC 100 and tie (by account).
    bare = adl.rank(book, 90.0, policy="hyperliquid", markets=adl.Market(0, 0))
    assert bare["rank"].to_list() == [1, 2] and bare["score"][0] == pytest.approx(bare["score"][1])
    fills = adl.deleverage(book, 90.0, side="long", qty=15.0, price=95.0, policy="hyperliquid",
                           accounts=wallets, markets=adl.Market(0, 0))
    assert fills.select("account", "qty").rows() == [(1, 10.0), (2, 5.0)]


def test_pro_rata_policies_still_refuse_to_rank_on_any_book() -> None:
    m = adl.Market(0, 0, tiers=[(0, 0.01)])
    with pytest.raises(adl.InvalidInputError) as e:
        adl.rank(TIERED, 100.0, policy="size_pro_rata", markets=m)
    assert e.value.field == "policy"

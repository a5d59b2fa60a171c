"""Ranking policies other than BitMEX (issue 3, in progress): hand-computed cases."""

from __future__ import annotations

from fractions import Fraction

import polars as pl
import pytest
from conftest import book
from hypothesis import given, settings
from hypothesis import strategies as st

import adl

WHOLE = adl.Market(qty_decimals=0, price_decimals=0)


def test_binance_rank_hand_computed() -> None:
    # Mark 96, mmr 0.5 %: MM = 0.005 · 960 = 4.8 for 10 lots. score = max(0,u)/max(1,W) · MM/(W+u).
    rows = [
        (1, "short", 10, 100, 20),   # u 40, W 20, e 60:  2 · 0.08 = 0.16
        (2, "short", 10, 100, 60),   # u 40, W 60, e 100: (2/3) · 0.048 = 0.032
        (3, "short", 10, 97, 50),    # u 10, W 50, e 60:  0.2 · 0.08 = 0.016
        (4, "short", 10, 90, 100),   # u -60, e 40: a loser, score 0, last
        (5, "short", 10, 90, 50),    # e -10: bankrupt, not eligible
    ]
    out = adl.rank(book(rows), mark=96.0, policy="binance", markets=WHOLE)
    assert out["rank"].to_list() == [1, 2, 3, 4, None]
    assert out["score"].to_list()[:4] == pytest.approx([0.16, 0.032, 0.016, 0.0], rel=1e-12)
    assert out["lights"].to_list() == [4, 3, 2, 1, None]   # 6 - ceil(5 r / 4)


def test_binance_maintenance_rate_comes_from_the_market() -> None:
    rows = [(1, "short", 10, 100, 20)]
    out = adl.rank(book(rows), mark=96.0, policy="binance", markets=adl.Market(0, 0, maintenance_rate=0.01))
    assert out["score"].to_list() == pytest.approx([2 * 9.6 / 60])


def test_engine_queue_follows_the_policy() -> None:
    # X (account 1): short 10 @200, margin 1000: BitMEX 0.52 · 960/2040 = 0.2447,
    #   Binance 1040 · 4.8 / (1000 · 2040) = 0.00245.
    # Y (account 2): short 10 @97, margin 60: BitMEX (1/97) · 960/70 = 0.1414,
    #   Binance 10 · 4.8 / (60 · 70) = 0.01143.
    # Bankrupt long 10 @100, margin 30: P_bk = 97; the fund is empty, so all 10 lots are ADL'd
    # against whoever ranks first: X under BitMEX, Y under Binance.
    rows = [(9, "long", 10, 100, 30), (1, "short", 10, 200, 1000), (2, "short", 10, 97, 60)]
    first = {}
    for policy in ("bitmex", "binance"):
        eng = adl.Engine(policy=policy, cash_decimals=2, qty_decimals=0, price_decimals=0)  # type: ignore[arg-type]
        eng.load(book(rows))
        eng.set_marks(96.0)
        fills = eng.liquidate(9, side="long").fills
        assert fills.select("qty", "price", "rank").rows() == [(10.0, 97.0, 1)]
        first[policy] = fills["account"][0]
    assert first == {"bitmex": 1, "binance": 2}
    ind = eng.indicator().filter(pl.col("side") == "short").sort("rank")
    assert ind["score"].to_list() == pytest.approx([1040 * 4.8 / (1000 * 2040)])


def test_unknown_policy() -> None:
    with pytest.raises(adl.InvalidInputError, match="policy"):
        adl.rank(book([(1, "short", 1, 1, 1)]), mark=1.0, policy="lottery")  # type: ignore[arg-type]
    with pytest.raises(adl.InvalidInputError, match="policy"):
        adl.Engine(policy="lottery")  # type: ignore[arg-type]


def test_size_pro_rata_stateless_and_engine() -> None:
    # 7 lots over shorts of 5, 3, 2 (shares 3.5, 2.1, 1.4): 4, 2, 1 by largest remainder.
    rows = [(1, "short", 5, 100, 50), (2, "short", 3, 100, 30), (3, "short", 2, 100, 20), (4, "short", 1, 90, 1)]
    fills = adl.deleverage(book(rows), mark=96.0, side="long", qty=7.0, price=96.0, policy="size_pro_rata", markets=WHOLE)
    assert fills.select("account", "qty", "rank", "score").rows() == [(1, 4.0, None, None), (2, 2.0, None, None), (3, 1.0, None, None)]
    with pytest.raises(adl.InsufficientLiquidityError):
        adl.deleverage(book(rows), mark=96.0, side="long", qty=11.0, price=96.0, policy="size_pro_rata", markets=WHOLE)
    with pytest.raises(adl.InvalidInputError, match="does not rank"):
        adl.rank(book(rows), mark=96.0, policy="size_pro_rata", markets=WHOLE)
    eng = adl.Engine(policy="size_pro_rata", cash_decimals=2, qty_decimals=0, price_decimals=0)
    eng.load(book([(9, "long", 7, 100, 28), *rows]))
    eng.set_marks(96.0)
    res = eng.liquidate(9, side="long", fill_price=95.0, force=True)
    assert res.fills.select("account", "qty", "price", "rank").rows() == [(1, 4.0, 96.0, None), (2, 2.0, 96.0, None), (3, 1.0, 96.0, None)]
    assert eng.indicator().height == 0


def test_hyperliquid_at_the_mark_in_python() -> None:
    # Same book as the Rust case: fund 4 covers 2 lots at 95; 8 lots ADL at the mark 96
    # against the profitable shorts #3 (rank 1) and #1; bad debt = 8 · (97 - 96) = 8.
    rows = [(9, "long", 10, 100, 30), (1, "short", 10, 100, 20), (2, "short", 10, 95, 50), (3, "short", 5, 98, 10)]
    eng = adl.Engine(policy="hyperliquid", insurance_fund=4.0, cash_decimals=2, qty_decimals=0, price_decimals=0)
    eng.load(book(rows))
    eng.set_marks(96.0)
    res = eng.liquidate(9, side="long", fill_price=95.0)
    assert res.fills.select("kind", "account", "qty", "price", "rank").rows() == [
        ("external", None, 2.0, 95.0, None),
        ("adl", 3, 5.0, 96.0, 1),
        ("adl", 1, 3.0, 96.0, 2),
    ]
    assert (res.from_fund, res.bad_debt) == (4.0, 8.0)
    ranked = adl.rank(book(rows[1:]), mark=96.0, policy="hyperliquid", markets=WHOLE)
    assert ranked["rank"].to_list() == [2, None, 1]          # the losing short is never eligible
    assert ranked["score"].to_list()[0] == pytest.approx(100 / 96 * 960 / 60)


def test_adl_price_override() -> None:
    # BitMEX queue but filled at the mark: the bankrupt long's 8 ADL lots cost the fund
    # nothing it does not have; the 8 beyond its margin are bad debt, as above.
    rows = [(9, "long", 10, 100, 30), (1, "short", 10, 100, 20)]
    eng = adl.Engine(adl_price="mark", cash_decimals=2, qty_decimals=0, price_decimals=0)
    eng.load(book(rows))
    eng.set_marks(96.0)
    res = eng.liquidate(9, side="long")
    assert res.fills.select("account", "qty", "price").rows() == [(1, 10.0, 96.0)]
    assert res.bad_debt == 10.0                      # 10 · (97 - 96)
    with pytest.raises(adl.InvalidInputError, match="adl_price"):
        adl.Engine(adl_price="midpoint")  # type: ignore[arg-type]


def test_dydx_walk_is_reproducible_and_capped_at_500_accounts() -> None:
    shorts = [(a, "short", 1 + a % 3, 100, 10) for a in range(1, 21)]
    f1 = adl.deleverage(book(shorts), mark=96.0, side="long", qty=9.0, price=96.0, policy="dydx", seed=5, markets=WHOLE)
    f2 = adl.deleverage(book(shorts), mark=96.0, side="long", qty=9.0, price=96.0, policy="dydx", seed=5, markets=WHOLE)
    assert f1.equals(f2)
    assert f1["qty"].sum() == 9.0 and f1["rank"].null_count() == f1.height
    # Consecutive accounts, wrapping around: a walk in account order.
    accounts = f1["account"].to_list()
    assert all(b == a % 20 + 1 for a, b in zip(accounts, accounts[1:]))
    # Some seed starts elsewhere.
    starts = {
        adl.deleverage(book(shorts), mark=96.0, side="long", qty=1.0, price=96.0, policy="dydx", seed=s, markets=WHOLE)[
            "account"
        ][0]
        for s in range(10)
    }
    assert len(starts) > 1
    # 600 one-lot shorts: a walk reaches at most 500 accounts.
    many = [(a, "short", 1, 100, 10) for a in range(1, 601)]
    with pytest.raises(adl.InsufficientLiquidityError) as info:
        adl.deleverage(book(many), mark=96.0, side="long", qty=550.0, price=96.0, policy="dydx", markets=WHOLE)
    assert info.value.missing == 50.0
    eng = adl.Engine(policy="dydx", seed=3, cash_decimals=2, qty_decimals=0, price_decimals=0)
    eng.load(book([(9999, "long", 550, 100, 2200), *many]))
    eng.set_marks(96.0)
    res = eng.liquidate(9999, side="long", fill_price=95.0, force=True)
    assert (res.adl_qty, res.external_qty) == (500.0, 50.0)
    assert res.fills.filter(pl.col("kind") == "bad_debt")["qty"].to_list() == [50.0]


def test_fair_allocators_in_contract_space() -> None:
    # Mark 96, shorts (profit u = 10·(E - 96)): #1 10 @100 m20 (u 40, e 60, ℓ 16);
    # #2 10 @98 m20 (u 20, e 40, ℓ 24); #3 10 @95 m50 (a loser: u -10, e 40).
    rows = [(1, "short", 10, 100, 20), (2, "short", 10, 98, 20), (3, "short", 10, 95, 50)]

    def fills(policy: str, qty: float) -> list[tuple[int, float]]:
        f = adl.deleverage(book(rows), mark=96.0, side="long", qty=qty, price=96.0, policy=policy, markets=WHOLE)  # type: ignore[arg-type]
        return sorted(f.select("account", "qty").rows())

    # wealth_pro_rata: lots ∝ u⁺ = 40:20 -> 6 lots = 4 + 2.
    assert fills("wealth_pro_rata", 6.0) == [(1, 4.0), (2, 2.0)]
    # levered_pro_rata: ∝ ℓ·u⁺ = 640:480 -> 7 lots = 4 + 3.
    assert fills("levered_pro_rata", 7.0) == [(1, 4.0), (2, 3.0)]
    # Winners hold 20; a 25-lot ADL takes them whole and 5 of the loser (by size).
    assert fills("wealth_pro_rata", 25.0) == [(1, 10.0), (2, 10.0), (3, 5.0)]
    # min_max_leverage: a queue by leverage among winners: #2 (24) before #1 (16).
    ranked = adl.rank(book(rows), mark=96.0, policy="min_max_leverage", markets=WHOLE)
    assert ranked["rank"].to_list() == [2, 1, None]
    assert ranked["score"].to_list()[:2] == pytest.approx([16.0, 24.0])
    # The engine does the same.
    eng = adl.Engine(policy="wealth_pro_rata", cash_decimals=2, qty_decimals=0, price_decimals=0)
    eng.load(book([(9, "long", 6, 100, 24), *rows]))
    eng.set_marks(96.0)
    res = eng.liquidate(9, side="long", fill_price=95.0, force=True)
    assert sorted(res.fills.select("account", "qty").rows()) == [(1, 4.0), (2, 2.0)]


def test_drawdown_trigger_bypasses_the_fund_while_armed() -> None:
    # Fund 100 at t = 0. Two bankrupt longs, each 10 @100 m30 at mark 96 (e = -10, P_bk 97),
    # filled on the book at 95 (deficit 2 per lot); shorts hold plenty.
    rows = [(1, "long", 10, 100, 30), (2, "long", 10, 100, 30), (3, "short", 100, 100, 1000)]
    eng = adl.Engine(insurance_fund=100.0, trigger="drawdown", trigger_window=1_000,
                     cash_decimals=2, qty_decimals=0, price_decimals=0)
    eng.load(book(rows))
    eng.set_marks(96.0, ts=0)
    assert eng.adl_state() == adl.AdlState(trigger="drawdown", state="normal", armed=False, level=0.0)
    # Not armed: the fund covers all 10 lots (20).
    r1 = eng.liquidate(1, side="long", fill_price=95.0)
    assert (r1.from_fund, r1.adl_qty) == (20.0, 0.0)
    # Draw the fund down to 65 (-35 % from the 8 h maximum 100): armed.
    eng.insurance_fund = 65.0
    assert eng.adl_state().state == "armed"
    r2 = eng.liquidate(2, side="long", fill_price=95.0)
    assert (r2.from_fund, r2.external_qty, r2.adl_qty) == (0.0, 0.0, 10.0)
    assert eng.insurance_fund == 65.0
    # Back to 76 (-24 %): disarmed; 72 (-28 %) is inside the band: "soon".
    eng.insurance_fund = 76.0
    assert not eng.adl_state().armed
    eng.insurance_fund = 72.0
    assert eng.adl_state().state == "soon"
    # Past the window the old maximum is forgotten (a jump of more than one window is allowed
    # explicitly: by default it is refused as a stray future ts).
    eng.max_ts_step = 5_000
    eng.set_marks(96.0, ts=5_000)
    assert eng.adl_state().state == "normal"


def test_bad_trigger() -> None:
    with pytest.raises(adl.InvalidInputError, match="trigger"):
        adl.Engine(trigger="moon")  # type: ignore[arg-type]
    with pytest.raises(adl.InvalidInputError, match="trigger"):
        adl.Engine(trigger="fund_drop", trigger_arm=0.95, trigger_disarm=0.9)


# ----- every ranked policy against an exact reference -------------------------------------

CENT = Fraction(1, 100)


def reference_score(policy: str, side: int, q: int, e: int, m: Fraction, p: int) -> Fraction | None:
    """Exact docs/model.md §3 scores on whole lots and ticks (mmr 0.5 %, one quote unit = 1)."""
    u = side * q * (p - e)
    equity = m + u
    if equity <= 0:
        return None
    n = q * p
    if policy == "bitmex":
        pnl = Fraction(side * (p - e), e)
        lev = n / equity
        return pnl * lev if pnl > 0 else pnl / lev
    if policy == "binance":
        mm = Fraction(5, 1000) * n
        return Fraction(max(u, 0)) / max(Fraction(1), m) * mm / equity
    if u <= 0:
        return None
    if policy == "hyperliquid":
        return (Fraction(p, e) if side > 0 else Fraction(e, p)) * n / equity
    return n / equity  # min_max_leverage


@settings(max_examples=150, deadline=None)
@given(
    policy=st.sampled_from(["bitmex", "binance", "hyperliquid", "min_max_leverage"]),
    rows=st.lists(
        st.tuples(st.integers(1, 6), st.sampled_from([1, -1]), st.integers(1, 40), st.integers(80, 120), st.integers(0, 3000)),
        min_size=1,
        max_size=25,
    ),
    mark=st.integers(85, 115),
)
def test_ranked_policies_match_an_exact_reference(policy: str, rows: list[tuple[int, int, int, int, int]], mark: int) -> None:
    frame = pl.DataFrame(
        {
            "account": [r[0] for r in rows],
            "side": pl.Series([r[1] for r in rows], dtype=pl.Int8),
            "qty": [float(r[2]) for r in rows],
            "entry_price": [float(r[3]) for r in rows],
            "margin": [r[4] / 100 for r in rows],
        }
    )
    out = adl.rank(frame, mark=float(mark), policy=policy, markets=WHOLE)  # type: ignore[arg-type]
    scores = [reference_score(policy, r[1], r[2], r[3], r[4] * CENT, mark) for r in rows]
    for side in (1, -1):
        idx = [i for i, r in enumerate(rows) if r[1] == side and scores[i] is not None]
        # Queue order: exact score descending, then account, then row.
        idx.sort(key=lambda i: (-scores[i], rows[i][0], i))  # type: ignore[operator]
        for rank, i in enumerate(idx, start=1):
            assert out["rank"][i] == rank, (policy, i, rows)
            assert out["score"][i] == pytest.approx(float(scores[i]), rel=1e-9, abs=1e-300)  # type: ignore[arg-type]
    for i, s in enumerate(scores):
        if s is None:
            assert out["rank"][i] is None


def test_custom_scores_from_a_column_or_an_expression() -> None:
    rows = [(1, "short", 10, 100, 20), (2, "short", 10, 100, 60), (3, "short", 10, 90, 10), (4, "short", 10, 99, 50)]
    df = book(rows).with_columns(my_score=pl.Series([1.0, 3.0, 9.0, 2.0]))
    out = adl.rank(df, mark=96.0, policy="custom", score="my_score", markets=WHOLE)
    # #3 is bankrupt (e = 10 - 60): never eligible, whatever its score.
    assert out["rank"].to_list() == [3, 1, None, 2]
    assert out["score"].to_list()[:2] == [1.0, 3.0]
    by_margin = adl.rank(df, mark=96.0, policy="custom", score=-pl.col("margin"), markets=WHOLE)
    assert by_margin["rank"].to_list() == [1, 3, None, 2]
    fills = adl.deleverage(df, mark=96.0, side="long", qty=15.0, price=97.0, policy="custom", score="my_score", markets=WHOLE)
    assert fills.select("account", "qty", "rank").rows() == [(2, 10.0, 1), (4, 5.0, 2)]
    with pytest.raises(adl.InvalidInputError, match="score"):
        adl.rank(df, mark=96.0, policy="custom", markets=WHOLE)
    with pytest.raises(adl.InvalidInputError) as info:
        adl.rank(df.with_columns(my_score=pl.Series([1.0, float("nan"), 0.0, 0.0])), mark=96.0, policy="custom", score="my_score")
    assert (info.value.field, info.value.row) == ("score", 1)
    with pytest.raises(adl.InvalidInputError, match="policy"):
        adl.Engine(policy="custom")  # type: ignore[arg-type]


def test_capped_pro_rata_in_contract_space() -> None:
    # Mark 96. Winners #1 10 lots (cap 0.2 -> at most 2) and #2 10 lots (no cap); #3 is a loser.
    # 8 lots: η·10 + min(η, 0.2)·10 = 8 -> #1 capped at 2, #2 closes 6 (η = 0.6).
    rows = [(1, "short", 10, 100, 20), (2, "short", 10, 98, 20), (3, "short", 10, 95, 50)]
    df = book(rows).with_columns(adl_cap=pl.Series([0.2, 1.0, 1.0]))
    f = adl.deleverage(df, mark=96.0, side="long", qty=8.0, price=96.0, policy="capped_pro_rata", markets=WHOLE)
    assert sorted(f.select("account", "qty").rows()) == [(1, 2.0), (2, 6.0)]
    # 15 lots: the winners can give 2 + 10; the 3 left go by size to the loser.
    f = adl.deleverage(df, mark=96.0, side="long", qty=15.0, price=96.0, policy="capped_pro_rata", markets=WHOLE)
    assert sorted(f.select("account", "qty").rows()) == [(1, 2.0), (2, 10.0), (3, 3.0)]
    eng = adl.Engine(policy="capped_pro_rata", cash_decimals=2, qty_decimals=0, price_decimals=0)
    eng.load(book([(9, "long", 8, 100, 32), *rows]).with_columns(adl_cap=pl.Series([1.0, 0.2, 1.0, 1.0])))
    eng.set_marks(96.0)
    res = eng.liquidate(9, side="long", fill_price=95.0, force=True)
    assert sorted(res.fills.select("account", "qty").rows()) == [(1, 2.0), (2, 6.0)]
    with pytest.raises(adl.InvalidInputError) as info:
        adl.deleverage(df.with_columns(adl_cap=pl.Series([0.5, 1.5, 1.0])), mark=96.0, side="long", qty=1.0, price=96.0)
    assert (info.value.field, info.value.row) == ("adl_cap", 1)

"""Cross margin (docs/model.md §6) and custom scores in the engine, through the Python API.

Markets X (maintenance 10 %, mark 90) and Y (6 %, mark 200) on whole lots and ticks with
cash in cents, so every number below is exact (see tests/rust/cross_cases.rs for the
derivations)."""

from __future__ import annotations

import polars as pl
import pytest
from conftest import conserved_value
from hypothesis import given, settings
from hypothesis import strategies as st

import adl
from invariants import check_no_isolated_counterparty_paid, isolated_cash

MARKETS = {"X": adl.Market(0, 0, 0.1), "Y": adl.Market(0, 0, 0.06)}
MARKS = {"X": 90.0, "Y": 200.0}


def cross_book(rows: list[tuple[int, str, str, float, float, float, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema=["account", "symbol", "side", "qty", "entry_price", "margin", "margin_mode"], orient="row"
    )


# Account 1 is cross with wallet 50: TNC = 50 − 100 = −50 against TMMR = 90 + 60 = 150.
BANKRUPT = cross_book([
    (1, "X", "long", 10.0, 100.0, 0.0, "cross"),
    (1, "Y", "short", 5.0, 200.0, 0.0, "cross"),
    (2, "X", "short", 10.0, 100.0, 100.0, "isolated"),
    (3, "Y", "long", 5.0, 190.0, 100.0, "isolated"),
])


def engine(positions: pl.DataFrame = BANKRUPT, wallets: dict[int, float] | None = None, **kw: object) -> adl.Engine:
    eng = adl.Engine(markets=MARKETS, cash_decimals=2, qty_decimals=0, price_decimals=0, **kw)  # type: ignore[arg-type]
    w = {1: 50.0} if wallets is None else wallets
    eng.load(positions, accounts=pl.DataFrame({"account": list(w), "wallet": list(w.values())}))
    eng.set_marks(MARKS)
    return eng


def test_positions_show_shares_and_cross_prices() -> None:
    p = engine().positions().filter(pl.col("account") == 1).sort("symbol")
    assert p["margin_mode"].to_list() == ["cross", "cross"]
    # Shares of TNC by maintenance: −50·90/150 = −30 and −50·60/150 = −20.
    assert p["equity"].to_list() == [-30.0, -20.0]
    assert p["bankruptcy_price"].to_list() == [93.0, 196.0]
    assert p["liquidation_price"][0] == pytest.approx(1010.0 / 9.0, rel=1e-12)
    assert sorted(engine().liquidatable()["account"].to_list()) == [1, 1]


def test_liquidate_account_ends_the_account_at_zero_and_conserves_value() -> None:
    eng = engine()
    before = conserved_value(eng)
    res = eng.liquidate_account(1)
    assert res.fills.select("symbol", "account", "qty", "price", "kind").rows() == [
        ("X", 2, 10.0, 93.0, "adl"),
        ("Y", 3, 5.0, 196.0, "adl"),
    ]
    cash = dict(eng.accounts().select("account", "cash").rows())
    assert cash == {1: 0.0, 2: 170.0, 3: 130.0}
    assert (eng.insurance_fund, eng.bad_debt) == (0.0, 0.0)
    assert conserved_value(eng) == before
    assert eng.positions().height == 0


def test_a_healthy_cross_account_is_refused_and_unchanged() -> None:
    eng = engine(wallets={1: 300.0})  # TNC 200 >= TMMR 150
    before = eng.totals()
    with pytest.raises(adl.NotLiquidatableError):
        eng.liquidate_account(1)
    with pytest.raises(adl.NotLiquidatableError):
        eng.liquidate(1, "X", "long")
    assert eng.totals() == before
    # Forced, each position closes at the mark (above its bankruptcy price): the shares go
    # to the fund: TNC 200 by maintenance, 120 + 80.
    res = eng.liquidate_account(1, force=True)
    assert res.to_fund == 200.0 and eng.insurance_fund == 200.0


def test_bad_margin_mode_and_cross_margin_are_rejected_with_row() -> None:
    eng = engine()
    before = eng.totals()
    bad = BANKRUPT.with_columns(pl.Series("margin_mode", ["cross", "crosss", "isolated", "isolated"]))
    with pytest.raises(adl.InvalidInputError) as e:
        eng.load(bad)
    assert (e.value.field, e.value.row) == ("margin_mode", 1)
    with_margin = BANKRUPT.with_columns(pl.Series("margin", [0.0, 20.0, 100.0, 100.0]))
    with pytest.raises(adl.InvalidInputError) as e:
        eng.load(with_margin)
    assert (e.value.field, e.value.row) == ("margin", 1)
    assert eng.totals() == before
    # The stateless calls check the same rows the same way (they load them into an engine).
    with pytest.raises(adl.InvalidInputError) as e:
        adl.rank(bad, MARKS, markets=MARKETS)
    assert (e.value.field, e.value.row) == ("margin_mode", 1)


def test_custom_scores_rank_the_engine_queue() -> None:
    rows = pl.DataFrame({
        "account": [11, 12, 13, 14, 15],
        "side": ["short", "short", "short", "short", "long"],
        "qty": [10.0, 10.0, 10.0, 10.0, 25.0],
        "entry_price": [100.0, 100.0, 100.0, 80.0, 100.0],
        "margin": [50.0, 50.0, 50.0, 50.0, 100.0],
        "vip": [1.0, 3.0, 2.0, 9.0, 0.0],
    })
    eng = adl.Engine("custom", cash_decimals=2, qty_decimals=0, price_decimals=0, score=pl.col("vip") * 2)
    eng.load(rows)
    eng.set_marks(90.0)
    # #14 is bankrupt (50 − 100 < 0): out of the queue whatever its score.
    assert eng.indicator().filter(pl.col("side") == "short").select("account", "score", "rank").rows() == [
        (12, 6.0, 1), (13, 4.0, 2), (11, 2.0, 3),
    ]
    res = eng.liquidate(15, side="long")
    assert res.fills.select("account", "qty").rows() == [(12, 10.0), (13, 10.0), (11, 5.0)]
    with pytest.raises(adl.InvalidInputError):
        adl.Engine("custom")
    with pytest.raises(adl.InvalidInputError):
        adl.Engine("bitmex", score="vip")


@settings(max_examples=150, deadline=None)
@given(
    policy=st.sampled_from(["bitmex", "binance", "hyperliquid", "min_max_leverage", "size_pro_rata", "dydx"]),
    rows=st.lists(
        st.tuples(
            st.integers(1, 8), st.sampled_from(["X", "Y"]), st.sampled_from(["long", "short"]),
            st.integers(1, 30), st.integers(80, 120), st.integers(0, 2_000),
        ),
        min_size=1, max_size=25, unique_by=lambda r: (r[0], r[1], r[2]),
    ),
    n_cross=st.integers(0, 8),
    wallet=st.integers(0, 5_000),
    marks=st.tuples(st.integers(80, 120), st.integers(80, 120)),
    fund=st.integers(0, 500),
)
def test_liquidating_every_liquidatable_cross_account_conserves_value(
    policy: str, rows: list[tuple[int, str, str, int, int, int]], n_cross: int, wallet: int,
    marks: tuple[int, int], fund: int,
) -> None:
    df = cross_book([
        (a, s, side, float(q), float(e), 0.0 if a <= n_cross else float(m), "cross" if a <= n_cross else "isolated")
        for a, s, side, q, e, m in rows
    ])
    eng = adl.Engine(policy, float(fund), markets=MARKETS, cash_decimals=2, qty_decimals=0, price_decimals=0)  # type: ignore[arg-type]
    eng.load(df, accounts=pl.DataFrame({"account": list(range(1, 9)), "cash": [float(wallet)] * 8}))
    eng.set_marks({"X": float(marks[0]), "Y": float(marks[1])})
    before = conserved_value(eng)
    for account in range(1, n_cross + 1):
        if account in eng.liquidatable().filter(pl.col("margin_mode") == "cross")["account"].to_list():
            cash = isolated_cash(eng)
            res = eng.liquidate_account(account)
            check_no_isolated_counterparty_paid(cash, eng, res, frozenset(range(1, n_cross + 1)))
            assert eng.positions().filter(pl.col("account") == account).height == 0
            assert eng.accounts().filter(pl.col("account") == account)["cash"].to_list() == [0.0]
        assert conserved_value(eng) == before
        assert eng.insurance_fund >= 0.0

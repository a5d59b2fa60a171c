"""Venue realism through the Python API (docs/model.md §7): fees under both conventions, ADL
fees, tiered maintenance, multipliers and partial liquidation, with hand-computed numbers,
bad parameters, snapshots, and conservation over random venues (hypothesis)."""

from __future__ import annotations

import pickle

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adl
from conftest import conserved_value
from invariants import check_no_isolated_counterparty_paid, isolated_cash
from adl.errors import InvalidInputError

WHOLE = dict(qty_decimals=0, price_decimals=0)


def book(rows: list[tuple[int, str, float, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["account", "side", "qty", "entry_price", "margin"], orient="row")


# Long 10 @ 100 with margin 100 (bankrupt at 90); a short counterparty with margin 1,000.
BOOK = book([(1, "long", 10.0, 100.0, 100.0), (2, "short", 10.0, 100.0, 1_000.0)])


def cash(eng: adl.Engine, account: int) -> float:
    return eng.accounts().filter(pl.col("account") == account)["cash"].item()


def test_surplus_fee_and_the_rest_back_to_the_trader() -> None:
    # Mark 94: equity 40 < maintenance 47. The 1 % fee on the 940 closed is 9.40; 30.60 returns.
    eng = adl.Engine(maintenance_rate=0.05, cash_decimals=2, liquidation_fee=0.01, surplus_to_fund=False, **WHOLE)
    eng.load(BOOK)
    eng.set_marks(94.0)
    before = conserved_value(eng)
    res = eng.liquidate(1, side="long")
    assert (res.fee, res.to_fund, res.returned) == (9.4, 9.4, 30.6)
    assert cash(eng, 1) == 30.6
    assert conserved_value(eng) == before


def test_fee_in_the_bankruptcy_price() -> None:
    # Reserved fee ceil(0.01 * 900 / 0.99) = 9.10: bankruptcy 100 - 90.90/10 = 90.91.
    eng = adl.Engine(maintenance_rate=0.05, cash_decimals=2, liquidation_fee=0.01, fee_convention="bankruptcy", **WHOLE)
    eng.load(BOOK)
    eng.set_marks(90.0)
    assert eng.positions().filter(pl.col("account") == 1)["bankruptcy_price"].item() == pytest.approx(90.91, abs=1e-9)
    res = eng.liquidate(1, side="long")
    assert (res.fee, res.to_fund, res.adl_qty) == (9.1, 9.1, 10.0)
    assert res.fills.filter(pl.col("kind") == "adl")["price"].item() == pytest.approx(90.91, abs=1e-9)
    assert cash(eng, 2) == 1_090.9


def test_adl_fee_paid_by_the_counterparty() -> None:
    # ADL at 90 (mark 89): notional 900, fee 0.1 % = 0.90 out of the counterparty's 1,100.
    eng = adl.Engine(maintenance_rate=0.05, cash_decimals=2, adl_fee=0.001, **WHOLE)
    eng.load(BOOK)
    eng.set_marks(89.0)
    before = conserved_value(eng)
    res = eng.liquidate(1, side="long")
    assert res.adl_fees == 0.9
    assert cash(eng, 2) == 1_099.1
    assert eng.totals().fees == 90
    assert conserved_value(eng) == before


def test_binance_tiers_maintenance_and_liquidation_price() -> None:
    tiers = [(0, 0.004), (50_000, 0.005, 50.0), (500_000, 0.01)]
    eng = adl.Engine(cash_decimals=2, tiers=tiers, **WHOLE)
    eng.load(book([(1, "long", 2.0, 50_000.0, 5_000.0), (2, "short", 2.0, 50_000.0, 20_000.0)]))
    eng.set_marks(47_700.0)
    assert eng.tiers("default").rows() == [(0.0, 0.004, 0.0), (50_000.0, 0.005, 50.0), (500_000.0, 0.01, 2_550.0)]
    long = eng.positions().filter(pl.col("account") == 1)
    # e = 400 < MM = 0.5 % * 95,400 - 50 = 427; liquidation at 94,950 / 1.99.
    assert long.select("equity", "maintenance").row(0) == (400.0, 427.0)
    assert long["liquidation_price"].item() == pytest.approx(94_950 / 1.99, abs=1e-6)
    assert eng.liquidatable()["account"].to_list() == [1]


def test_partial_liquidation_keeps_what_it_can() -> None:
    # Long 100 @ 100, margin 600, 5 %, mark 95: closing 79 leaves 21 lots, margin 205.
    eng = adl.Engine(maintenance_rate=0.05, cash_decimals=0, **WHOLE)
    eng.load(book([(1, "long", 100.0, 100.0, 600.0), (2, "short", 100.0, 100.0, 10_000.0)]))
    eng.set_marks(95.0)
    dry = eng.liquidate(1, side="long", partial=True, dry_run=True)
    res = eng.liquidate(1, side="long", partial=True)
    assert (dry.external_qty, dry.remaining_qty) == (res.external_qty, res.remaining_qty) == (79.0, 21.0)
    assert eng.positions().filter(pl.col("account") == 1).select("qty", "margin").row(0) == (21.0, 205.0)
    assert eng.liquidatable().is_empty()
    batch = adl.Engine(maintenance_rate=0.05, cash_decimals=0, **WHOLE)
    batch.load(book([(1, "long", 100.0, 100.0, 600.0), (2, "short", 100.0, 100.0, 10_000.0)]))
    batch.set_marks(95.0)
    assert batch.liquidate_many(pl.DataFrame({"account": [1], "side": ["long"]}), partial=True).remaining_qty == 21.0


def test_multiplier_contract_values() -> None:
    # 1,000 contracts of 0.001 BTC long @ 60,000: one BTC; bankrupt at 60,000 - 6,000 = 54,000.
    eng = adl.Engine(cash_decimals=4, qty_decimals=0, price_decimals=1, markets={"BTC": adl.Market(0, 1, 0.005, multiplier=0.001)})
    eng.load(pl.DataFrame({"account": [1], "symbol": ["BTC"], "side": ["long"], "qty": [1_000.0],
                           "entry_price": [60_000.0], "margin": [6_000.0]}))
    eng.set_marks({"BTC": 54_500.0})
    p = eng.positions()
    assert p.select("equity", "maintenance", "bankruptcy_price").row(0) == (500.0, 272.5, 54_000.0)
    assert eng.markets()["multiplier"].to_list() == [0.001]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tiers": [(10, 0.01)]}, "tiers"),  # does not start at 0
        ({"tiers": [(0, 0.02), (100, 0.01)]}, "tiers"),  # rate falls
        ({"tiers": [(0, 0.01), (100, 0.02, 5.0)]}, "tiers"),  # maintenance falls at the floor
        ({"tiers": "0.01"}, "tiers"),  # not a table
        ({"liquidation_fee": float("nan")}, "liquidation_fee"),
        ({"adl_fee": 1.5}, "adl_fee"),
        ({"fee_convention": "maker"}, "fee_convention"),
        ({"multiplier": 0.0}, "multiplier"),
        ({"multiplier": "ten"}, "multiplier"),
        ({"multiplier": 0.001, "cash_decimals": 2}, "cash_decimals"),  # 1e-4·1e-4·1e-3 is not a cent
    ],
)
def test_bad_venue_parameters_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        adl.Engine(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field
    eng = adl.Engine()
    eng.add_market("X", maintenance_rate=0.01)
    before = eng.markets()
    with pytest.raises(InvalidInputError):  # (a multiplier of 0.001 needs 11 decimals here too)
        eng.add_market("X", **{k: v for k, v in kwargs.items() if k != "cash_decimals"})  # type: ignore[arg-type]
    assert eng.markets().equals(before)


def test_snapshot_keeps_venue_parameters() -> None:
    eng = adl.Engine(cash_decimals=2, liquidation_fee=0.001, fee_convention="bankruptcy", adl_fee=0.0005,
                     surplus_to_fund=False, tiers=[(0, 0.01), (1_000, 0.02)], **WHOLE)
    eng.add_market("Y", multiplier=10.0)
    eng.load(BOOK)
    eng.set_marks({"default": 95.0, "Y": 10.0})
    copy = pickle.loads(pickle.dumps(eng))
    assert copy.markets().equals(eng.markets())
    assert copy.tiers("Y").equals(eng.tiers("Y"))
    assert copy.positions().equals(eng.positions())


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(1, 8), st.sampled_from(["long", "short"]), st.integers(1, 50),
                            st.integers(80, 120), st.integers(0, 2_000)), min_size=2, max_size=25,
                  unique_by=lambda r: (r[0], r[1])),
    mark=st.integers(80, 120),
    fee=st.sampled_from([0.0, 0.005, 0.02]),
    convention=st.sampled_from(["surplus", "bankruptcy"]),
    to_fund=st.booleans(),
    adl_fee=st.sampled_from([0.0, 0.001]),
    tiered=st.booleans(),
    multiplier=st.sampled_from([1.0, 0.1, 10.0]),
    partial=st.booleans(),
    fund=st.integers(0, 50),
    inverse=st.booleans(),
)
def test_conservation_with_fees_tiers_multipliers_and_inverse_markets(
    rows: list[tuple[int, str, int, int, int]], mark: int, fee: float, convention: str, to_fund: bool,
    adl_fee: float, tiered: bool, multiplier: float, partial: bool, fund: int, inverse: bool,
) -> None:
    # Inverse: coin-margined, 100 quote units a contract (about one coin near 100), amounts
    # in hundredths of what they are in the linear book; cash exact to 1e-8 coin.
    unit = 0.01 if inverse else 1.0
    tiers = [(0, 0.01), (500 * unit, 0.03), (5_000 * unit, 0.1)] if tiered else None
    grid = dict(cash_decimals=8, qty_decimals=0, price_decimals=6, inverse=True) if inverse else dict(cash_decimals=2, **WHOLE)
    eng = adl.Engine(
        insurance_fund=fund * unit, maintenance_rate=0.02, multiplier=multiplier * (100 if inverse else 1), tiers=tiers,
        liquidation_fee=fee, fee_convention=convention, surplus_to_fund=to_fund, adl_fee=adl_fee,  # type: ignore[arg-type]
        **grid,  # type: ignore[arg-type]
    )
    eng.load(book([(a, s, float(q), float(e), m / 10 * unit) for a, s, q, e, m in rows]))
    eng.set_marks(float(mark))
    start = conserved_value(eng)
    lots = eng.totals().long_lots - eng.totals().short_lots
    for _ in range(3):
        todo = eng.liquidatable()
        if todo.is_empty():
            break
        account, side = todo.select("account", "side").row(0)
        cash = isolated_cash(eng)
        res = eng.liquidate(account, side=side, partial=partial)
        check_no_isolated_counterparty_paid(cash, eng, res)
        assert conserved_value(eng) == start
        assert eng.totals().fund >= 0
        book_qty = res.fills.filter(pl.col("kind") != "adl")["qty"].sum()
        signed = book_qty if side == "long" else -book_qty
        new_lots = eng.totals().long_lots - eng.totals().short_lots
        assert new_lots == lots - signed
        lots = new_lots
        if res.remaining_qty > 0:
            kept = eng.positions().filter((pl.col("account") == account) & (pl.col("side") == side))
            assert kept["equity"].item() >= kept["maintenance"].item()


def test_fund_pools_and_history() -> None:
    # BTC has its own pool of 100; ETH draws on the empty default pool. Each liquidation at
    # mark 89 has a deficit of 1 per lot (bankruptcy 90).
    eng = adl.Engine(maintenance_rate=0.05, cash_decimals=2, **WHOLE)
    eng.add_market("BTC", fund_pool="BTC")
    eng.add_market("ETH")
    eng.set_fund(100.0, pool="BTC")
    rows = [(1, "BTC", "long", 10.0, 100.0, 100.0), (2, "BTC", "short", 10.0, 100.0, 1_000.0),
            (3, "ETH", "long", 10.0, 100.0, 100.0), (4, "ETH", "short", 10.0, 100.0, 1_000.0)]
    eng.load(pl.DataFrame(rows, schema=["account", "symbol", "side", "qty", "entry_price", "margin"], orient="row"))
    eng.set_marks({"BTC": 89.0, "ETH": 89.0}, ts=7)
    assert eng.liquidate(1, "BTC", "long").from_fund == 10.0
    assert eng.liquidate(3, "ETH", "long").adl_qty == 10.0
    assert eng.funds().select("pool", "balance").rows() == [("default", 0.0), ("BTC", 90.0)]
    assert eng.markets()["fund_pool"].to_list() == ["BTC", "default"]
    assert eng.fund_history().rows() == [
        (None, None, "BTC", "set", 100.0), (7, 0, "BTC", "liquidation", 90.0), (7, 1, "default", "liquidation", 0.0),
    ]
    assert eng.insurance_fund == 90.0
    with pytest.raises(InvalidInputError):
        eng.adl_state("nope")


def test_preview_positions_screen() -> None:
    # Shorts A (bankrupt at 110) and B (at 120); longs L2 (10 @ 90, ranks first) and L1.
    eng = adl.Engine(maintenance_rate=0.05, qty_decimals=0, price_decimals=1, cash_decimals=3)
    eng.load(book([(1, "short", 10.0, 100.0, 100.0), (2, "short", 10.0, 100.0, 200.0),
                   (11, "long", 10.0, 100.0, 1_000.0), (12, "long", 10.0, 90.0, 100.0)]))
    eng.set_marks(100.0)
    before = eng.snapshot()
    view = eng.preview(step=0.01).sort("account")
    assert view.columns == ["account", "symbol", "side", "qty", "liquidation_price", "bankruptcy_price", "rank",
                            "lights", "adl_mark"]
    # Longs: L2 at 111 (A's deficit), L1 at 121 (B's); shorts: A at 79 (L2 bankrupt below 80).
    assert view.select("account", "rank", "adl_mark").rows() == [(1, 1, 79.0), (2, 2, None), (11, 2, 121.0),
                                                                   (12, 1, 111.0)]
    assert view.filter(pl.col("account") == 1)["bankruptcy_price"].item() == 110.0
    assert eng.preview(side="long", account=11, step=0.01)["adl_mark"].item() == 120.1
    assert eng.snapshot() == before
    with pytest.raises(InvalidInputError) as err:
        eng.preview(step=0.0)
    assert err.value.field == "step"
    with pytest.raises(InvalidInputError):
        eng.preview(account=99)


def test_inverse_contracts() -> None:
    # XBTUSD-like: 1 USD a contract, cash in satoshis, 1/price on a 1e-8 grid. Long 10,000
    # contracts @ 50,000 (0.2 BTC) with 0.02 BTC margin; a short the same size with 0.1 BTC.
    eng = adl.Engine(cash_decimals=8, qty_decimals=0, price_decimals=8, inverse=True)
    eng.load(book([(1, "long", 10_000.0, 50_000.0, 0.02), (2, "short", 10_000.0, 50_000.0, 0.1)]))
    eng.set_marks(40_000.0)
    long = eng.positions().filter(pl.col("account") == 1)
    # PnL 10,000 * (1/50,000 - 1/40,000) = -0.05 BTC; maintenance 0.5 % of 0.25 BTC.
    assert long.select("equity", "maintenance").row(0) == pytest.approx((-0.03, 0.00125))
    assert long["bankruptcy_price"].item() == pytest.approx(1e5 / 2.2)
    assert long["liquidation_price"].item() == pytest.approx(10_050 / 0.22)
    assert eng.markets()["inverse"].to_list() == [True]
    before = conserved_value(eng)
    res = eng.liquidate(1, side="long")
    assert res.adl_qty == 10_000.0
    assert res.fills.filter(pl.col("kind") == "adl")["price"].item() == pytest.approx(1e5 / 2.2)
    assert cash(eng, 2) == 0.12  # margin back + 10,000 * (1/45,454.5 - 1/50,000) = 0.02 BTC
    assert conserved_value(eng) == before
    # The cascade simulator values inverse markets in the coin: at Δ = 0 the short's haircut
    # is the deficit it covered, 10,000 * (1/40,000 - 1/45,454.5) = 0.03 BTC; the profit its
    # lots had, 10,000 * (1/40,000 - 1/50,000) = 0.05; their notional 0.25 BTC.
    xbt = book([(1, "long", 10_000.0, 50_000.0, 0.02), (2, "short", 10_000.0, 50_000.0, 0.1)])
    res = adl.simulate(xbt, pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [50_000.0, 40_000.0]}),
                       insurance_fund=0.0, liquidation=adl.Slippage(0.0), cash_decimals=8, qty_decimals=0,
                       price_decimals=8, markets={"default": adl.Market(0, 8, inverse=True)})
    row = res.accounts.select("account", "adl_notional", "profit_taken", "loss_vs_mark", "haircut").row(0)
    assert row == pytest.approx((2, 0.25, 0.05, 0.03, 0.03))
    assert res.summary["deficit_covered"].item() == pytest.approx(0.03)   # the book filled at the mark


def test_review_findings_stay_fixed() -> None:
    # Market() leaves unset parameters to the engine's defaults.
    eng = adl.Engine(liquidation_fee=0.01, fee_convention="bankruptcy", adl_fee=0.001, tiers=[(0, 0.01), (1_000, 0.02)],
                     markets={"X": adl.Market(0, 1)})
    x = eng.markets().row(0, named=True)
    assert (x["liquidation_fee"], x["fee_convention"], x["adl_fee"], x["tiers"]) == (0.01, "bankruptcy", 0.001, 2)
    # A flat rate given alone replaces inherited tiers.
    eng.add_market("Y", maintenance_rate=0.05)
    assert eng.tiers("Y").rows() == [(0.0, 0.05, 0.0)]
    # Several pools: the sum cannot be set, and an unknown pool is refused (a typo).
    eng.add_market("Z", fund_pool="Z")
    with pytest.raises(InvalidInputError):
        eng.insurance_fund = 5.0
    with pytest.raises(InvalidInputError) as err:
        eng.set_fund(5.0, pool="z")
    assert err.value.field == "pool"
    assert eng.funds()["pool"].to_list() == ["default", "Z"]
    # A rate that rounds to 100 % in ppm is refused, not a division by zero later.
    with pytest.raises(InvalidInputError) as err:
        adl.Engine(liquidation_fee=0.9999996, fee_convention="bankruptcy")
    assert err.value.field == "liquidation_fee"
    # The stateless functions refuse what the engine refuses: an inverse grid too coarse for -1/P.
    with pytest.raises(InvalidInputError):
        adl.rank(BOOK, mark=95.0, markets=adl.Market(0, 1, inverse=True))


def test_preview_move_limits_by_side() -> None:
    eng = adl.Engine(maintenance_rate=0.05, cash_decimals=2, **WHOLE)
    eng.load(BOOK)
    eng.set_marks(100.0)
    assert eng.preview(side="long", max_move=1.5).height == 1  # the mark may more than double
    with pytest.raises(InvalidInputError) as err:
        eng.preview(side="short", max_move=1.5)  # but cannot fall 150 %
    assert err.value.field == "max_move"


def test_simulator_values_multiplier_contracts() -> None:
    # 100 contracts of 0.1 unit (10 units) long @ 100 with margin 50: bankrupt at 95. At 94 the
    # short covers the deficit 10 * (95 - 94) = 10; its lots' profit 10 * 6 = 60, notional 940.
    contracts = book([(1, "long", 100.0, 100.0, 50.0), (2, "short", 100.0, 100.0, 500.0)])
    res = adl.simulate(contracts, pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [100.0, 94.0]}),
                       insurance_fund=0.0, liquidation=adl.Slippage(0.0), cash_decimals=2, qty_decimals=0,
                       price_decimals=0, markets={"default": adl.Market(0, 0, 0.005, multiplier=0.1)})
    assert res.accounts.select("adl_notional", "profit_taken", "loss_vs_mark").row(0) == pytest.approx((940.0, 60.0, 10.0))
    assert res.summary["deficit_covered"].item() == pytest.approx(10.0)
    assert res.fund["liquidated_notional"].to_list() == pytest.approx([0.0, 940.0])


@pytest.mark.parametrize("inverse", [False, True])
def test_deficit_covered_is_the_adl_lots_loss_at_the_book_price(inverse: bool) -> None:
    # deficit_covered is computed from the liquidations (loss against the mark plus the book's
    # slippage on the ADL lots); check it against the fills: Σ over ADL fills of
    # σ_c·(V(F) − V(P_ADL)) with F the liquidation's book price, V = q·m·P or −q·m/P.
    m = 2.0
    book = adl.synthetic_book(400, seed=5, mark=50.0, median_notional=2_000.0).with_columns(pl.col("qty").round(2))
    if inverse:   # contracts of m quote each, margin in the coin: the same book at the mark 50
        book = book.with_columns((pl.col("qty") * 50.0 / m).round(2), pl.col("margin") / 50.0)
    path = adl.crash_path(steps=40, duration=30, drop=0.3, start=50.0, seed=5)
    res = adl.simulate(book, path, insurance_fund=0.0, liquidation=adl.Slippage(bps_per_million=2_000.0),
                       markets={"BTC-PERP": adl.Market(2, 8 if inverse else 4, multiplier=m, inverse=inverse)},
                       cash_decimals=10, qty_decimals=2, price_decimals=8 if inverse else 4)
    fills = res.fills.filter(pl.col("kind") == "adl").join(res.liquidations.select("event", "fill_price"), on="event")
    assert fills.height > 0
    sign = pl.when(pl.col("side") == "long").then(1.0).otherwise(-1.0)
    value = (lambda p: -pl.col("qty") * m / p) if inverse else (lambda p: pl.col("qty") * m * p)
    expected = fills.select((sign * (value(pl.col("fill_price")) - value(pl.col("price")))).sum()).item()
    assert res.summary["deficit_covered"].item() == pytest.approx(expected, rel=1e-9)
    assert expected > 0

"""The venue-book generator (`adl.venue_book`): a book that looks like a real venue's, and
every policy's cascade on it keeps the model's invariants (docs/model.md §2)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import adl
from adl._io import POLICIES
from adl.scenario import LEVERAGE_SETTINGS
from conftest import conserved_value


@pytest.fixture(scope="module")
def big() -> adl.VenueBook:
    return adl.venue_book(200_000, seed=11)


def test_shape_of_a_venue_book(big: adl.VenueBook) -> None:
    p = big.positions
    assert p.height == 200_000
    assert p.select("account", "symbol").is_duplicated().sum() == 0          # one position per market
    share = dict(p.group_by("symbol").len().with_columns(pl.col("len") / p.height).iter_rows())
    for symbol, want in {"BTC": 0.40, "ETH": 0.25, "SOL": 0.15, "DOGE": 0.10, "XRP": 0.10}.items():
        assert abs(share[symbol] - want) < 0.015, (symbol, share[symbol])
    per_account = p.group_by("account").agg(pl.len(), (pl.col("margin_mode") == "cross").all().alias("cross"))
    ones = (per_account["len"] == 1).mean()
    assert 0.5 < ones < 0.6 and per_account["len"].max() == 5               # skewed: 55 % hold one
    assert abs(per_account["cross"].mean() - 0.35) < 0.01                    # share of cross accounts
    assert (p.group_by("account").agg(pl.col("margin_mode").n_unique())["margin_mode"] == 1).all()
    assert set(big.accounts["account"]) == set(per_account.filter("cross")["account"])
    notional = p["qty"] * p["entry_price"]
    assert 1_800 < notional.median() < 2_200                                 # type: ignore[operator]


def test_grids_and_leverage(big: adl.VenueBook) -> None:
    p = big.positions
    for symbol, m in big.markets.items():
        rows = p.filter(pl.col("symbol") == symbol)
        lots = rows["qty"] * 10**m.qty_decimals
        ticks = rows["entry_price"] * 10**m.price_decimals
        assert ((lots - lots.round()).abs() < 1e-6).all() and (lots >= 1 - 1e-9).all(), symbol
        assert ((ticks - ticks.round()).abs() < 1e-4).all(), symbol
    iso = p.filter(pl.col("margin_mode") == "isolated")
    lev = (iso["qty"] * iso["entry_price"] / iso["margin"]).to_numpy()
    nearest = LEVERAGE_SETTINGS[np.abs(lev[:, None] - LEVERAGE_SETTINGS[None, :]).argmin(axis=1)]
    # margin = notional / leverage, rounded up to 1e-6 quote: within 1 % of a setting
    assert (np.abs(lev / nearest - 1) < 0.01).all()
    assert set(np.unique(nearest)) == set(LEVERAGE_SETTINGS)                # 1× ... 125× all used
    assert (p.filter(pl.col("margin_mode") == "cross")["margin"] == 0).all()


@pytest.mark.parametrize("cross_share", [0.0, 0.35, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_nobody_is_liquidatable_where_the_book_was_drawn(cross_share: float, seed: int) -> None:
    v = adl.venue_book(20_000, cross_share=cross_share, seed=seed)
    eng = adl.Engine(insurance_fund=0.0, markets=v.markets)
    eng.load(v.positions, accounts=v.accounts)
    eng.set_marks(v.marks)
    assert eng.liquidatable().height == 0
    assert (eng.accounts()["equity"] > 0).all()


def test_same_seed_same_book() -> None:
    a, b = adl.venue_book(5_000, seed=4), adl.venue_book(5_000, seed=4)
    assert a.positions.equals(b.positions) and a.accounts.equals(b.accounts)
    assert not a.positions.equals(adl.venue_book(5_000, seed=5).positions)


def test_bad_listing_is_refused() -> None:
    with pytest.raises(adl.InvalidInputError, match="symbols"):
        adl.venue_book(10, symbols={"X": adl.scenario.VenueSymbol(0.0, 0, 0, 1.0)})


@pytest.mark.parametrize("policy", POLICIES)
def test_cascade_on_a_venue_book_keeps_the_invariants(policy: str) -> None:
    """A 25 % crash of every symbol over 20 steps on a 3,000-position venue book: at every step
    value is conserved to the cash unit and no account that was solvent before a liquidation is
    insolvent after it (isolated counterparties never pay; cross wallets stay >= 0)."""
    v = adl.venue_book(3_000, seed=7)
    score = pl.col("qty") * pl.col("entry_price") if policy == "custom" else None   # custom: by notional
    eng = adl.Engine(policy, insurance_fund=100.0, markets=v.markets, score=score)  # type: ignore[arg-type]
    eng.load(v.positions, accounts=v.accounts)
    path = adl.crash_path(start=v.marks, drop=0.25, steps=20, duration=15, rebound=0.0, noise=0.003, seed=3)
    adl_lots = 0.0
    for ts, step in path.group_by("ts", maintain_order=True):
        eng.set_marks(dict(step.select("symbol", "mark").iter_rows()), ts=int(ts[0]))  # type: ignore[arg-type]
        for _ in range(50):                                                  # until nobody is liquidatable
            due = eng.liquidatable()
            if due.height == 0:
                break
            before, value = eng.accounts(), conserved_value(eng)
            iso = due.filter(pl.col("margin_mode") == "isolated")
            if iso.height:
                res = eng.liquidate_many(iso.select("account", "symbol", "side"))
            else:
                res = eng.liquidate_account(int(due["account"][0]))
            assert conserved_value(eng) == value
            adl_lots += res.adl_qty
            solvent = set(before.filter(pl.col("equity") >= 0)["account"])
            hit = set(res.fills.filter(pl.col("kind") == "adl")["account"]) - set(res.fills["bankrupt_account"])
            after = dict(eng.accounts().select("account", "equity").iter_rows())
            assert all(after.get(a, 0.0) >= -1e-6 for a in hit & solvent), policy
        else:
            pytest.fail("liquidations did not settle within 50 passes")
    assert adl_lots > 0                                                     # the crash reached ADL


@pytest.mark.parametrize("seed", [975, 1237, 1387])
def test_seeds_whose_first_draw_holds_too_few_positions(seed: int) -> None:
    # These seeds drew accounts holding fewer than n positions in all; the last account was
    # then given more than five (and the draw failed). Every account holds 1-5 positions.
    v = adl.venue_book(300, cross_share=0.0, seed=seed)
    per_account = v.positions.group_by("account").len()["len"]
    assert v.positions.height == 300 and per_account.min() >= 1 and per_account.max() <= 5

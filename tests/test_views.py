"""One-position and one-account reads (`Engine.position`, `Engine.account`) agree with the
whole-book frames they replace on a request path."""

from __future__ import annotations

import math

import polars as pl
import pytest

import adl
from adl.scenario import VENUE_SYMBOLS


def _same(a: float | None, b: float) -> bool:
    return (a is None and math.isnan(b)) or (a is not None and (a == b or abs(a - b) <= 1e-9 * max(1.0, abs(b))))


@pytest.mark.parametrize("policy", ["bitmex", "binance", "hyperliquid", "size_pro_rata"])
def test_reads_agree_with_the_book_frames(policy: str) -> None:
    v = adl.venue_book(4_000, seed=5)
    eng = adl.Engine(policy, insurance_fund=0.0, markets=v.markets)  # type: ignore[arg-type]
    eng.load(v.positions, accounts=v.accounts)
    eng.set_marks({s: m * (0.93 if s in ("BTC", "SOL") else 1.04) for s, m in v.marks.items()})   # a gap each way
    book = eng.positions()
    queue = {(a, s, d): r for a, s, d, *r in eng.indicator().select(
        "account", "symbol", "side", "rank", "percentile", "lights", "score", "notional_ahead").iter_rows()}
    accounts = {a: (c, e) for a, c, e, _ in eng.accounts().iter_rows()}
    assert policy == "size_pro_rata" or len(queue) > 1_000
    for row in book.sample(600, seed=1).iter_rows(named=True):
        p = eng.position(row["account"], row["symbol"], row["side"])
        assert (p.account, p.symbol, p.side, p.qty, p.entry_price, p.margin, p.margin_mode) == (
            row["account"], row["symbol"], row["side"], row["qty"], row["entry_price"], row["margin"], row["margin_mode"])
        for field in ("equity", "maintenance", "bankruptcy_price", "liquidation_price"):
            assert _same(getattr(p, field), row[field]), (field, getattr(p, field), row[field])
        want = queue.get((row["account"], row["symbol"], row["side"]))
        got = None if p.queue is None else [p.queue.rank, p.queue.percentile, p.queue.lights, p.queue.score,
                                            p.queue.notional_ahead]
        assert got == want
        a = eng.account(row["account"])
        assert (a.cash, a.equity) == pytest.approx(accounts[row["account"]], abs=1e-6)
        assert p in a.positions and len(a.positions) == book.filter(pl.col("account") == row["account"]).height
        assert (a.tnc is None) == (row["margin_mode"] == "isolated")


def test_reads_by_hand_and_bad_requests() -> None:
    # Shorts 10 @ 100 with margins 20 and 60, mark 96 (bitmex, lights by quantity, 20 lots):
    # #1 equity 20 + 40 = 60, score 0.04 · 960/60 = 0.64, rank 1, lights 6 − ⌈5·10/20⌉ = 3;
    # #2 equity 100, rank 2, 960 queued ahead, lights 6 − ⌈5·20/20⌉ = 1.
    eng = adl.Engine()
    eng.load(pl.DataFrame({"account": [1, 2], "side": ["short", "short"], "qty": [10.0, 10.0],
                           "entry_price": [100.0, 100.0], "margin": [20.0, 60.0]}))
    assert eng.position(1, side="short").queue is None            # no mark yet: no queue, no equity
    eng.set_marks(96.0)
    p = eng.position(1, side="short")
    assert (p.equity, p.maintenance, p.bankruptcy_price) == (60.0, 4.8, 102.0)
    assert p.queue == adl.QueuePlace(1, 0.5, 3, pytest.approx(0.64), 0.0)  # type: ignore[arg-type]
    assert eng.account(2) == adl.AccountView(2, 0.0, 100.0, None, None, (eng.position(2, side="short"),))
    with pytest.raises(adl.UnknownPositionError):
        eng.position(1, side="long")
    with pytest.raises(adl.AdlError, match="account"):
        eng.account(3)
    with pytest.raises(adl.AdlError, match="side"):
        eng.position(1, side="up")
    with pytest.raises(adl.AdlError, match="account"):
        eng.position(-1, side="short")


@pytest.mark.parametrize("policy", ["bitmex", "binance", "size_pro_rata"])
def test_account_preview_is_the_accounts_rows_of_the_side_preview(policy: str) -> None:
    # preview(account=...) is answered from the account's own view (no whole-book frame): its
    # rows are those of the whole-side preview, narrowed to one tick (the mark one tick
    # nearer is missed, so it can only be at or nearer than the grid's).
    v = adl.venue_book(300, seed=3, symbols={s: VENUE_SYMBOLS[s] for s in ("SOL", "DOGE")})
    eng = adl.Engine(policy, insurance_fund=0.0, markets=v.markets)  # type: ignore[arg-type]
    eng.load(v.positions, accounts=v.accounts)
    eng.set_marks(v.marks)
    side = eng.preview("SOL", "long", step=0.05)
    cols = ["account", "symbol", "side", "qty", "liquidation_price", "bankruptcy_price", "rank", "lights"]
    cross = set(v.positions.filter(pl.col("margin_mode") == "cross")["account"])
    picked = side.filter(pl.col("adl_mark").is_not_null()).head(4).vstack(side.filter(pl.col("account").is_in(cross)).head(3))
    assert picked.height >= 4 and bool(picked["account"].is_in(cross).any())
    for row in picked.iter_rows(named=True):
        one = eng.preview("SOL", "long", account=row["account"], step=0.05)
        assert one.columns == side.columns and one.height == 1
        assert one.select(cols).row(0) == tuple(row[c] for c in cols)
        got, grid = one["adl_mark"].item(), row["adl_mark"]
        assert (got is None) == (grid is None)
        if grid is not None:
            assert v.marks["SOL"] < got <= grid
    # Every held position with a mark, market order, longs first; the frame types of the side's.
    a = picked["account"][0]
    mine = eng.preview(account=a, step=0.05)
    held = v.positions.filter(pl.col("account") == a)
    assert mine.height == held.height and mine.schema == side.schema
    sol_shorts = v.positions.filter((pl.col("symbol") == "SOL") & (pl.col("side") == "short"))["account"]
    other = v.positions.filter(~pl.col("account").is_in(sol_shorts))["account"][0]
    with pytest.raises(adl.InvalidInputError) as err:
        eng.preview("SOL", "short", account=other)
    assert err.value.field == "account"


def test_views_built_on_the_request_path_are_the_frozen_records() -> None:
    # Engine.account builds its records through a plain twin class (speed); they are the
    # documented frozen dataclasses all the same: same type, equal and hashable, read-only.
    import dataclasses

    eng = adl.Engine()
    eng.load(pl.DataFrame({"account": [1, 2], "side": ["short", "short"], "qty": [10.0, 10.0],
                           "entry_price": [100.0, 100.0], "margin": [20.0, 60.0]}))
    eng.set_marks(96.0)
    a = eng.account(2)
    p = a.positions[0]
    assert type(a) is adl.AccountView and type(p) is adl.PositionView and type(p.queue) is adl.QueuePlace
    assert p == adl.PositionView(*(getattr(p, f.name) for f in dataclasses.fields(p)))
    assert hash(p) == hash(dataclasses.replace(p)) and a == dataclasses.replace(a)
    # equity 60 + 10·(100 − 96) = 100; rank 2 behind account 1's 10 lots at 96: 960 ahead.
    assert (p.equity, p.queue.rank, p.queue.notional_ahead) == (100.0, 2, 960.0)   # type: ignore[union-attr]
    for obj, field in ((a, "cash"), (p, "qty"), (p.queue, "rank")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, 0)

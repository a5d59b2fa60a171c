"""A call that raises changes nothing (issue 12, item 1): calls that apply several
liquidations in turn (`liquidate_many`, `liquidate_account`) are undone when a later one
fails or panics, and the log holds exactly the calls that returned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

import adl
from adl import _adl


def state(eng: adl.Engine) -> tuple[bytes, list[Any], dict[str, int], list[Any]]:
    return eng.snapshot(), eng.positions().rows(), eng.totals(), eng.events().rows()


def frame(rows: list[tuple[int, str, str, float, float, float, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema=["account", "symbol", "side", "qty", "entry_price", "margin", "margin_mode"], orient="row"
    )


def wallet_frame(w: dict[int, float]) -> pl.DataFrame:
    return pl.DataFrame({"account": list(w), "wallet": list(w.values())})


# --- the reproducers of the issue: a cross margin share beyond i64 ---------------------------

def eighteen_decimals(tmp_path: Path) -> adl.Engine:
    """Cash in 10^-18 quote (lots of 10^-4, ticks of 10^-6: a lot·tick is 10^8 cash units).
    Account 1 is cross: long X 10 @ 100 with a wallet of 50 quote; at mark 90 its TNC is
    50 − 100 = −50 < TMMR = 10 % · 900 = 90. Its effective margin, TNC share − upnl =
    −50 + 100 = 50 quote = 5·10^19 cash units, is beyond i64 (9.2·10^18): the conversion that
    raised after the batch's first row. Account 3 (isolated long Y 0.01 @ 200, margin 0.1) is
    bankrupt at mark 190: equity 0.1 − 0.1 = 0 < maintenance 10 % · 1.9."""
    eng = adl.Engine(cash_decimals=18, qty_decimals=4, price_decimals=6,
                     markets={"X": adl.Market(4, 6, 0.1), "Y": adl.Market(4, 6, 0.1)})
    eng.load(frame([
        (1, "X", "long", 10.0, 100.0, 0.0, "cross"),
        (2, "X", "short", 10.0, 100.0, 1.0, "isolated"),
        (3, "Y", "long", 0.01, 200.0, 0.1, "isolated"),
        (4, "Y", "short", 0.01, 200.0, 0.5, "isolated"),
    ]), accounts=wallet_frame({1: 50.0}))
    eng.set_marks({"X": 90.0, "Y": 190.0})
    eng.log_to(tmp_path / "ops.log")
    return eng


def test_a_cross_share_beyond_i64_liquidates_in_a_batch(tmp_path: Path) -> None:
    eng = eighteen_decimals(tmp_path)
    res = eng.liquidate_many(pl.DataFrame({"account": [3, 1], "symbol": ["Y", "X"], "side": ["long", "long"]}))
    # Row 0: account 3's bankruptcy price 200 − 0.1/0.01 = 190 is the mark: the book takes it
    # there (equity 0, nothing left). Row 1: account 1's effective margin 50 puts its bankruptcy
    # price at 100 − 50/10 = 95; account 2 takes 10 lots there: 10·(100 − 95) + margin 1 = 51.
    assert res.fills.select("symbol", "account", "qty", "price").rows() == [("Y", None, 0.01, 190.0), ("X", 2, 10.0, 95.0)]
    cash = dict(eng.accounts().select("account", "cash").rows())
    assert (cash[1], cash[2]) == (0.0, 51.0)
    assert adl.Engine.replay(tmp_path / "ops.log").snapshot() == eng.snapshot()


def test_a_cross_share_beyond_i64_liquidates_an_account(tmp_path: Path) -> None:
    eng = eighteen_decimals(tmp_path)
    res = eng.liquidate_account(1)
    assert res.fills.select("account", "qty", "price").rows() == [(2, 10.0, 95.0)]
    assert eng.totals().cash == (51 + 0) * 10**18  # account 2's 51 quote, account 1's 0
    assert adl.Engine.replay(tmp_path / "ops.log").snapshot() == eng.snapshot()


def test_isolated_margins_are_not_capped_at_18_decimals(tmp_path: Path) -> None:
    """10^9 quote of margin at cash_decimals=18 is 10^27 cash units (the product of doubles
    gives 10^27 + 13,287,555,072), once refused (margins were capped at 10^18 units, ~1
    quote). Long #1 and short #2, each Q = 10^8 @ 100 with that margin: #1 is bankrupt at
    100 − 10^9/10^8 = 90; at mark 85 with no fund #2 takes its lots there, credited its own
    margin and #1's (its PnL at 90 is Q·10 = 10^9 quote): 2·m cash units."""
    m = 10**27 + 13_287_555_072
    eng = adl.Engine(cash_decimals=18, qty_decimals=4, price_decimals=6, markets={"X": adl.Market(4, 6, 0.1)})
    eng.load(frame([(1, "X", "long", 1e8, 100.0, 1e9, "isolated"), (2, "X", "short", 1e8, 100.0, 1e9, "isolated")]))
    eng.set_marks({"X": 85.0})
    eng.log_to(tmp_path / "ops.log")
    assert eng.position(1, "X", "long").bankruptcy_price == 90.0
    assert eng.totals().position_equity == 2 * m  # (m − 15·Q) + (m + 15·Q) quote
    res = eng.liquidate(1, symbol="X", side="long")
    assert res.fills.select("account", "qty", "price").rows() == [(2, 1e8, 90.0)]
    assert eng.totals().cash == 2 * m
    assert adl.Engine.restore(eng.snapshot()).snapshot() == eng.snapshot()
    assert adl.Engine.replay(tmp_path / "ops.log").snapshot() == eng.snapshot()
    # Stateless (cash in 10^-8 quote): 10^12 quote of margin (10^20 units, once past the cap)
    # ranks. Short 10 @100 at mark 96: score 0.04·960/(margin + 40).
    book = pl.DataFrame({"account": [1, 2], "side": ["short"] * 2, "qty": [10.0] * 2, "entry_price": [100.0] * 2,
                         "margin": [1e12, 20.0]})
    ranked = adl.rank(book, mark=96.0)
    assert ranked["rank"].to_list() == [2, 1]
    assert ranked["score"][0] == pytest.approx(38.4 / (1e12 + 40), rel=1e-12)


# --- a later step that fails: everything before it is undone ---------------------------------

# Whole lots and ticks, cash in 10^-8 quote (a lot·tick is 10^8 cash units). Account 9 is short
# 10^12 lots at 1.6·10^10 in X and in Y; the bankrupt longs (10^12 at 10^10, margin 10^9 quote)
# close against it at their bankruptcy price 10^10 − 10^9/10^12 = 10^10 − 10^-3, which credits
# account 9 its margin back plus 10^12·(1.6·10^10 − 10^10 + 10^-3) = 6·10^21 + 10^9 quote:
# 1·10^9 + 6·10^21 + 1·10^9 quote ≈ 6·10^29 cash units per event. The first fits the ledger
# range (10^30 cash units, what a snapshot holds); the second would take the cash to 1.2·10^30.
BIG = 1e12
ROWS: list[tuple[int, str, str, float, float, float, str]] = [
    (9, "X", "short", BIG, 1.6e10, 1e9, "isolated"),
    (9, "Y", "short", BIG, 1.6e10, 1e9, "isolated"),
]


def big_engine(bankrupt: list[tuple[int, str, str, float, float, float, str]], tmp_path: Path,
               wallets: dict[int, float] | None = None) -> adl.Engine:
    eng = adl.Engine(cash_decimals=8, qty_decimals=0, price_decimals=0,
                     markets={"X": adl.Market(0, 0, 0.1), "Y": adl.Market(0, 0, 0.1)})
    eng.load(frame(ROWS + bankrupt), accounts=None if wallets is None else wallet_frame(wallets))
    eng.set_marks({"X": 5e9, "Y": 5e9})
    eng.log_to(tmp_path / "ops.log")
    return eng


def assert_unchanged(eng: adl.Engine, before: tuple[bytes, list[Any], dict[str, int], list[Any]], tmp_path: Path) -> None:
    after = state(eng)
    assert after[1:] == before[1:]
    assert after[0] == before[0]
    assert adl.Engine.replay(tmp_path / "ops.log").snapshot() == before[0]


def test_a_batch_whose_second_row_fails_changes_nothing(tmp_path: Path) -> None:
    eng = big_engine([(1, "X", "long", BIG, 1e10, 1e9, "isolated"), (2, "Y", "long", BIG, 1e10, 1e9, "isolated")], tmp_path)
    before = state(eng)
    batch = pl.DataFrame({"account": [1, 2], "symbol": ["X", "Y"], "side": ["long", "long"]})
    with pytest.raises(adl.AdlError, match="account cash"):
        eng.liquidate_many(batch)
    assert_unchanged(eng, before, tmp_path)
    # Each row alone fits: the first is applied, then the second is refused whole.
    one = eng.liquidate_many(batch.head(1))
    assert one.fills.select("account", "qty").rows() == [(9, BIG)]
    assert eng.accounts().filter(pl.col("account") == 9)["cash"][0] == pytest.approx(6e21 + 2e9, rel=1e-15)
    before = state(eng)
    with pytest.raises(adl.AdlError, match="account cash"):
        eng.liquidate(2, symbol="Y", side="long")
    assert_unchanged(eng, before, tmp_path)


def test_an_account_whose_second_position_fails_changes_nothing(tmp_path: Path) -> None:
    # Account 1 is cross, long 10^12 at 10^10 in X and in Y with a wallet of 10^9 quote: TNC =
    # 10^9 − 2·10^12·(10^10 − 5·10^9) = 10^9 − 10^22 quote, far below its maintenance.
    eng = big_engine([(1, "X", "long", BIG, 1e10, 0.0, "cross"), (1, "Y", "long", BIG, 1e10, 0.0, "cross")], tmp_path,
                     wallets={1: 1e9})
    before = state(eng)
    with pytest.raises(adl.AdlError, match="account cash"):
        eng.liquidate_account(1)
    assert_unchanged(eng, before, tmp_path)


def test_cross_sums_beyond_the_limit_are_refused_at_the_door(tmp_path: Path) -> None:
    # 10^15 lots at 10^15 ticks with 10^8 cash units a lot·tick: one position's PnL alone may be
    # 10^38 cash units; two in one cross account pass i128 (1.7·10^38). Each cross sum is held
    # within 2^124 (2.1·10^37) cash units: marks and upserts beyond it are refused, changing nothing.
    eng = adl.Engine(cash_decimals=8, qty_decimals=0, price_decimals=0,
                     markets={"X": adl.Market(0, 0, 0.1), "Y": adl.Market(0, 0, 0.1)})
    eng.load(frame([(1, "X", "long", 1e15, 1.0, 0.0, "cross"), (1, "Y", "long", 1e15, 1.0, 0.0, "cross")]),
             accounts=wallet_frame({1: 1.0}))
    # Σ notional 2·10^15·10^6·10^8 = 2·10^29: within.
    eng.set_marks({"X": 1e6, "Y": 1e6})
    eng.log_to(tmp_path / "ops.log")
    before = state(eng)
    # Σ|upnl| = 2·10^15·(10^15 − 1)·10^8 ≈ 2·10^38: beyond.
    with pytest.raises(adl.InvalidInputError, match="cross totals of account 1") as e:
        eng.set_marks({"X": 1e15, "Y": 1e15})
    assert e.value.field == "marks"
    assert_unchanged(eng, before, tmp_path)
    # One mark alone: 10^38 + 10^29, still beyond 2^124.
    with pytest.raises(adl.AdlError, match="cross totals of account 1"):
        eng.set_marks({"X": 1e15})
    assert_unchanged(eng, before, tmp_path)
    with pytest.raises(adl.AdlError, match="cross totals of account 1"):
        eng.upsert(frame([(1, "X", "long", 1e15, 1e15, 0.0, "cross")]))
    assert_unchanged(eng, before, tmp_path)
    # Within the limit both work: 10^15 lots at 10^11 ticks: Σ notional 2·10^15·10^11·10^8 = 2·10^34.
    eng.set_marks({"X": 1e11, "Y": 1e11})
    # Cross positions hold no margin: their equity is their PnL, 2·10^15·(10^11 − 1)·10^8.
    assert eng.totals().position_equity == 2 * 10**15 * (10**11 - 1) * 10**8


# --- a panic halfway through a step ---------------------------------------------------------

needs_fault = pytest.mark.skipif(not hasattr(_adl, "_panic_at_step"), reason="fault injection is compiled in debug builds only")


@needs_fault
@pytest.mark.parametrize("logged", [False, True])
def test_a_panic_in_a_later_step_is_an_adl_error_and_changes_nothing(tmp_path: Path, logged: bool) -> None:
    eng = big_engine([(1, "X", "long", 1e6, 1e10, 1e9, "isolated"), (2, "Y", "long", 1e6, 1e10, 1e9, "isolated")], tmp_path)
    if not logged:
        eng.close_log()
    before = state(eng)
    batch = pl.DataFrame({"account": [1, 2], "symbol": ["X", "Y"], "side": ["long", "long"]})
    _adl._panic_at_step(2)  # type: ignore[attr-defined]
    with pytest.raises(adl.AdlError, match="injected fault") as e:
        eng.liquidate_many(batch)
    assert type(e.value) is adl.AdlError  # the base class: a bug, not bad input
    assert state(eng) == before
    if logged:
        assert adl.Engine.replay(tmp_path / "ops.log").snapshot() == before[0]
    # The engine keeps working (the panic was undone, not poisoning it).
    assert eng.liquidate_many(batch).events == [0, 1]


def small_book(tmp_path: Path, logged: bool) -> adl.Engine:
    """Isolated and cross positions in two markets, a fund, marks: every mutating call has
    something to change."""
    eng = adl.Engine(cash_decimals=2, qty_decimals=0, price_decimals=0, insurance_fund=25.0, markets={"X": adl.Market(0, 0, 0.05), "Y": adl.Market(0, 0, 0.05)})
    eng.load(frame([
        (1, "X", "long", 10.0, 100.0, 30.0, "isolated"),
        (2, "X", "short", 10.0, 100.0, 100.0, "isolated"),
        (3, "X", "short", 5.0, 98.0, 50.0, "isolated"),
        (4, "X", "long", 6.0, 100.0, 0.0, "cross"),
        (4, "Y", "short", 3.0, 50.0, 0.0, "cross"),
        (5, "Y", "long", 8.0, 49.0, 40.0, "isolated"),
    ]), accounts=wallet_frame({4: 60.0}))
    eng.set_marks({"X": 96.0, "Y": 51.0}, ts=5)
    if logged:
        eng.log_to(tmp_path / "ops.log")
    return eng


MUTATIONS: list[tuple[str, Any]] = [
    ("set_marks", lambda e: e.set_marks({"X": 95.0, "Y": 52.0}, ts=6)),
    ("upsert", lambda e: e.upsert(frame([(6, "X", "short", 7.0, 97.0, 70.0, "isolated"), (3, "Y", "long", 1.0, 50.0, 9.0, "isolated"),
                                         (7, "Z", "long", 1.0, 10.0, 5.0, "isolated")]), accounts=wallet_frame({4: 70.0}))),
    ("load", lambda e: e.load(frame([(9, "X", "long", 1.0, 100.0, 10.0, "isolated")]))),
    ("set_fund", lambda e: e.set_fund(3.0)),
    ("add_market", lambda e: e.add_market("W", qty_decimals=1, price_decimals=1)),
    ("close_position", lambda e: e.close_position(5, "Y", "long", price=52.0)),
    ("liquidate", lambda e: e.liquidate(1, symbol="X", side="long", fill_price=95.0)),
    ("liquidate_account", lambda e: e.liquidate_account(4, force=True)),
]


@needs_fault
@pytest.mark.parametrize("logged", [False, True])
@pytest.mark.parametrize("name,call", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_a_panic_in_any_mutating_call_is_undone(tmp_path: Path, logged: bool, name: str, call: Any) -> None:
    """Issue 12: no panic reaches Python, and the state is as before, without a rebuild from
    the log (it would say so) and without refusing later calls."""
    eng = small_book(tmp_path, logged)
    copy = adl.Engine.restore(eng.snapshot())
    call(copy)  # what the call does without the fault
    before = state(eng)
    _adl._panic_at_step(1)  # type: ignore[attr-defined]
    try:
        with pytest.raises(adl.AdlError, match="injected fault.*undone") as e:
            call(eng)
    finally:
        _adl._panic_at_step(0)  # type: ignore[attr-defined]
    assert type(e.value) is adl.AdlError
    assert "rebuilt" not in str(e.value) and "refuses" not in str(e.value)
    assert state(eng) == before
    if logged:
        assert adl.Engine.replay(tmp_path / "ops.log").snapshot() == before[0]
    call(eng)
    assert eng.snapshot() == copy.snapshot()
    assert eng.indicator().rows() == copy.indicator().rows()
    if logged:
        assert adl.Engine.replay(tmp_path / "ops.log").snapshot() == eng.snapshot()


# --- hostile batches: each call either returns or changes nothing ----------------------------

def hostile_case(seed: int, tmp_path: Path) -> str:
    """A random book of huge positions (up to 10^13 lots at prices up to 10^12, cash in 10^-8
    quote: values near the ledger limit) in two markets, isolated and cross, liquidated in a
    random batch, account by account and one by one. Returns how the calls ended."""
    import random

    rng = random.Random(seed)
    eng = adl.Engine(cash_decimals=8, qty_decimals=0, price_decimals=0, policy=rng.choice(["bitmex", "size_pro_rata", "hyperliquid"]),
                     insurance_fund=rng.choice([0.0, 1e15]),
                     markets={"X": adl.Market(0, 0, 0.1), "Y": adl.Market(0, 0, 0.1)})
    rows = []
    for account in range(1, 9):
        mode = rng.choice(["isolated", "cross"])
        for symbol in rng.sample(["X", "Y"], rng.randint(1, 2)):
            qty = float(10 ** rng.randint(0, 13))
            margin = 0.0 if mode == "cross" else float(10 ** rng.randint(0, 10))
            rows.append((account, symbol, rng.choice(["long", "short"]), qty, float(10 ** rng.randint(0, 12)), margin, mode))
    eng.load(frame(rows), accounts=wallet_frame({a: float(10 ** rng.randint(0, 13)) for a in range(1, 9)}))
    try:
        eng.set_marks({"X": float(10 ** rng.randint(0, 12)), "Y": float(10 ** rng.randint(0, 12))})
    except adl.AdlError:
        return "marks refused"
    eng.log_to(tmp_path / f"hostile-{seed}.log")
    outcomes = []
    keys = eng.positions().select("account", "symbol", "side").rows()
    rng.shuffle(keys)
    part = rng.random() < 0.5
    calls = [lambda: eng.liquidate_many(pl.DataFrame(keys, schema=["account", "symbol", "side"], orient="row"), force=True,
                                        partial=part)]
    calls += [lambda a=a: eng.liquidate_account(a, force=True, partial=part) for a in sorted({k[0] for k in keys})]
    calls += [lambda k=k: eng.liquidate(k[0], symbol=k[1], side=k[2], force=True, partial=part) for k in keys]
    for call in calls:
        before = state(eng)
        try:
            call()
            outcomes.append("ok")
        except adl.AdlError as e:
            assert state(eng) == before, e
            outcomes.append(type(e).__name__)
    assert adl.Engine.replay(tmp_path / f"hostile-{seed}.log").snapshot() == eng.snapshot()
    return ",".join(outcomes)


def test_hostile_batches_return_or_change_nothing(tmp_path: Path) -> None:
    ended = [hostile_case(seed, tmp_path) for seed in range(40)]
    # No internal error (a panic, undone): every refusal is a named one.
    assert not any("AdlError" in e.split(",") for e in ended)
    # Some calls are refused (the values are built to reach the limits) and some go through.
    assert any("InvalidInputError" in e for e in ended) and any("ok" in e for e in ended)

"""Severity controllers inside a simulated cascade: ``adl.simulate(..., severity=controller)``."""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass, field

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adl
from adl.errors import InvalidInputError
from adl.severity import FixedTheta, RoundOutcome, RoundStart

# One bankrupt long 10 @100 with margin 50 (P_bk = 95), two shorts of 6 @100; the mark gaps to
# 94 at ts 2 and the book fills at the mark (no slippage), with an empty fund.
BOOK = pl.DataFrame({"account": [1, 2, 3], "side": ["long", "short", "short"], "qty": [10.0, 6.0, 6.0],
                     "entry_price": [100.0] * 3, "margin": [50.0, 100.0, 300.0]})
PATH = pl.DataFrame({"ts": [0, 1, 2], "symbol": ["default"] * 3, "mark": [100.0, 97.0, 94.0]})


def run(controller: adl.severity.Controller, **kw: object) -> adl.SimulationResult:
    return adl.simulate(BOOK, PATH, insurance_fund=0.0, liquidation=adl.Slippage(0.0), severity=controller, **kw)  # type: ignore[arg-type]


def test_production_against_a_fixed_theta_by_hand() -> None:
    prod = run(FixedTheta(1.0, name="production"))
    half = run(FixedTheta(0.5))
    # One round. D = 10 lots · (95 − 94) = 10 (the book's price is the mark); U = 2 · 6 · (100 − 94) = 72;
    # need at Δ = 0: the 10 lots' deficit at the mark 94, 10·(95 − 94) = 10; θ* = 1.
    # m^ILP: 10 lots over holdings 6 and 6 -> 5 and 5, worst 5/6.
    p = prod.severity.losses(lam=1.0).row(0, named=True)  # type: ignore[union-attr]
    assert (p["qty"], p["deficit"], p["capacity"], p["need"]) == (10.0, 10.0, 72.0, 10.0)
    assert p["ilp_burden"] == pytest.approx(5 / 6)
    # Production: the queue closes all 6 of #2 (rank 1: more levered) and 4 of #3: seized 10,
    # tracking 0; worst burden 6/6 = 1, fairness 1·10·(1 − 5/6) = 5/3.
    assert (p["cap_qty"], p["adl_qty"], p["seized"], p["bad_debt"], p["burden"]) == (10.0, 10.0, 10.0, 0.0, 1.0)
    assert (p["tracking"], p["fairness"]) == (0.0, pytest.approx(5 / 3))
    # θ = 0.5: budget 5, cap ⌊0.5·10⌋ = 5 lots, all from #2: burden 5/6 = m^ILP, fairness 0;
    # seized 5, tracking |5 − 10| = 5 (the undershoot); the other 5 lots close at 94: bad debt 5·1.
    h = half.severity.losses(lam=1.0).row(0, named=True)  # type: ignore[union-attr]
    assert (h["budget"], h["cap_qty"], h["adl_qty"], h["seized"], h["undershoot"], h["bad_debt"]) == (5.0, 5.0, 5.0, 5.0, 5.0, 5.0)
    assert (h["burden"], h["tracking"], h["fairness"]) == (pytest.approx(5 / 6), 5.0, pytest.approx(0.0))
    assert half.summary["bad_debt"].item() == 5.0 and prod.summary["bad_debt"].item() == 0.0
    # At λ = 1 production wins (5/3 < 5); at λ = 4 the fairness term is 20/3 > 5 and θ = 0.5 wins.
    # B_inst = sqrt((1 + 0)·10²) = 10: production's total is 16.7 % of it.
    s = pl.concat([r.severity.summary(lam=lam) for r in (prod, half) for lam in (1.0, 4.0)])  # type: ignore[union-attr]
    assert s["total"].to_list() == pytest.approx([5 / 3, 20 / 3, 5.0, 5.0])
    assert s["pct_envelope"][0] == pytest.approx(100 * (5 / 3) / 10)
    assert prod.params["severity"] == "production"


def test_theta_one_is_the_uncapped_cascade() -> None:
    book = adl.synthetic_book(400, seed=5, symbols=("X", "Y"), median_notional=500.0)
    path = adl.crash_path(symbols=("X", "Y"), steps=40, duration=25, drop=0.2, rebound=0.3, dt=1, noise=0.003, seed=5)
    kw = {"insurance_fund": 50.0, "liquidation": adl.Slippage(bps_per_million=50.0, window=5), "horizon": 3}
    plain = adl.simulate(book, path, **kw)  # type: ignore[arg-type]
    full = adl.simulate(book, path, severity=FixedTheta(1.0), **kw)  # type: ignore[arg-type]
    assert full.liquidations.equals(plain.liquidations) and full.fills.equals(plain.fills)
    t = full.severity.table  # type: ignore[union-attr]
    assert t.height == int((plain.liquidations["adl_qty"] > 0).sum()) > 3
    # Each round's ADL done is its event's; θ = 1 seizes the whole deficit D_t.
    per_event = plain.liquidations.filter(pl.col("adl_qty") > 0).select("event", "adl_qty")
    assert t.select("event", "adl_qty").equals(per_event)
    assert t["seized"].to_list() == pytest.approx(t["deficit"].to_list())
    assert plain.severity is None


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1_000), theta=st.floats(0.0, 1.0), policy=st.sampled_from(["bitmex", "size_pro_rata", "hyperliquid"]))
def test_a_cap_is_respected_and_the_rest_is_booked(seed: int, theta: float, policy: str) -> None:
    book = adl.synthetic_book(200, seed=seed, median_notional=500.0)
    path = adl.crash_path(steps=30, duration=20, drop=0.25, dt=1, noise=0.003, seed=seed)
    res = adl.simulate(book, path, policy=policy, insurance_fund=20.0, severity=FixedTheta(theta),  # type: ignore[arg-type]
                       liquidation=adl.Slippage(bps_per_million=80.0, window=5))
    t = res.severity.table  # type: ignore[union-attr]
    # ADL done <= ⌊θ·Q⌋ <= Q; seized <= budget = θ·D (to rounding); every round's bad debt is
    # its event's, and every event that left bad debt after reaching ADL is a round.
    assert (t["adl_qty"] <= t["cap_qty"] + 1e-9).all() and (t["cap_qty"] <= t["qty"] + 1e-9).all()
    assert (t["seized"] <= t["budget"] + 1e-6).all()
    ev = res.liquidations.join(t.select("event", "bad_debt", "adl_qty"), on="event", suffix="_round")
    assert ev["bad_debt"].to_list() == pytest.approx(ev["bad_debt_round"].to_list())
    assert ev["adl_qty"].to_list() == pytest.approx(ev["adl_qty_round"].to_list())
    assert (t["need"] >= 0).all() and (t["burden"] <= 1.0 + 1e-12).all() and (t["ilp_burden"] <= 1.0 + 1e-12).all()
    # |H − need| splits into overshoot + undershoot, round by round and in total.
    s = res.severity.summary(lam=1.0)  # type: ignore[union-attr]
    assert s["tracking"].item() == pytest.approx(s["overshoot"].item() + s["undershoot"].item(), abs=1e-6)
    # Nobody is left below maintenance.
    assert res.engine.liquidatable().height == 0


@dataclass
class Spy:
    """Records what it is shown and when; θ = 0.5."""

    name: str = "spy"
    online: bool = True
    calls: list[tuple[str, int, int]] = field(default_factory=list)
    ts: dict[int, int] = field(default_factory=dict)
    seen: list[RoundStart] = field(default_factory=list)

    def decide(self, start: RoundStart) -> float:
        self.seen.append(start)
        self.calls.append(("decide", start.index, 0))
        return 0.5

    def observe(self, outcome: RoundOutcome) -> None:
        self.calls.append(("observe", outcome.start.index, len(self.seen)))


def test_the_controller_never_sees_the_need_before_deciding() -> None:
    book = adl.synthetic_book(300, seed=8, median_notional=500.0)
    path = adl.crash_path(steps=40, duration=30, drop=0.3, dt=1, noise=0.003, seed=8)
    spy = Spy()
    res = adl.simulate(book, path, insurance_fund=0.0, severity=spy, horizon=5)
    t = res.severity.table  # type: ignore[union-attr]
    assert t.height >= 3
    # What a controller is given has no field for the need (a RoundStart, nothing else).
    assert all(type(s) is RoundStart for s in spy.seen)
    assert not {"need", "b_needed", "needed"} & {f.name for f in dataclasses.fields(RoundStart)}
    assert sum(c[0] == "observe" for c in spy.calls) >= 1
    ts = t["ts"].to_list()
    for kind, index, decided in spy.calls:
        if kind == "observe":
            # Released when round `decided` starts: after round `index` was decided, Δ or more later.
            assert decided > index and ts[decided] >= ts[index] + 5


def test_bad_controllers_fail_clearly() -> None:
    with pytest.raises(InvalidInputError, match="theta") as e:
        run(FixedTheta(1.5))
    assert e.value.field == "theta"

    class Boom(FixedTheta):
        def decide(self, start: RoundStart) -> float:
            raise ZeroDivisionError("controller bug")

    with pytest.raises(ZeroDivisionError, match="controller bug"):
        run(Boom(0.5))
    with pytest.raises(InvalidInputError, match="severity"):
        run("half")  # type: ignore[arg-type]


def test_string_account_ids_reach_the_controller_as_given() -> None:
    # The hand case with accounts "a", "b", "c": the controller's book names them, and the
    # burdens (computed on the engine's codes) are those of the integer book.
    books: list[pl.DataFrame] = []

    class Recording(FixedTheta):
        def decide(self, start: RoundStart) -> float:
            assert start.book is not None
            books.append(start.book)
            return self.theta

    labelled = BOOK.with_columns(account=pl.Series(["a", "b", "c"]))
    res = adl.simulate(labelled, PATH, insurance_fund=0.0, liquidation=adl.Slippage(0.0), severity=Recording(0.5))
    assert books[0].rows() == [("b", 36.0), ("c", 36.0)]   # 6·(100 − 94) each
    row = res.severity.losses().row(0, named=True)  # type: ignore[union-attr]
    assert (row["burden"], row["tracking"]) == (pytest.approx(5 / 6), 5.0)


def test_a_need_valued_at_a_later_print_is_not_seen_before_that_print() -> None:
    # Two markets, Δ = 10. A gaps at ts 1 (its long goes bankrupt) and next prints at ts 1000;
    # B gaps at ts 11. Round 0 (A) is valued at A's mark at ts 1000, so when round 1 (B)
    # starts at ts 11 the controller must not have observed round 0 yet, whatever A does at
    # ts 1000 (before the fix it saw need 10 or 450 there, depending on that future price).
    book = pl.DataFrame({"account": [1, 2, 3, 4], "symbol": ["A", "A", "B", "B"],
                         "side": ["long", "short", "long", "short"], "qty": [10.0] * 4,
                         "entry_price": [100.0] * 4, "margin": [50.0, 500.0, 50.0, 500.0]})
    for far in (94.0, 50.0):
        path = pl.DataFrame({"ts": [0, 0, 1, 5, 11, 1000], "symbol": ["A", "B", "A", "B", "B", "A"],
                             "mark": [100.0, 100.0, 94.0, 100.0, 94.0, far]})
        spy = Spy()
        res = adl.simulate(book, path, insurance_fund=0.0, liquidation=adl.Slippage(0.0), horizon=10, severity=spy)
        assert res.severity is not None and res.severity.table.height == 2
        assert [c[0] for c in spy.calls] == ["decide", "decide"]    # round 0 is never observed in time


@pytest.mark.parametrize(("cap", "adl_qty"), [(0.6, 0.0), (1.5, 1.0), (2.7, 2.0), (2.0, 2.0), (0.0, 0.0)])
def test_a_cap_in_contracts_is_whole_lots_rounded_down(cap: float, adl_qty: float) -> None:
    # Whole-contract lots: a cap of 2.7 contracts allows 2 lots of ADL, never 3.
    eng = adl.Engine(insurance_fund=0.0, qty_decimals=0)
    eng.load(pl.DataFrame({"account": [1, 2], "side": ["long", "short"], "qty": [10.0, 10.0],
                           "entry_price": [100.0, 100.0], "margin": [44.0, 500.0]}))
    eng.set_marks(96.0)
    res = eng.liquidate(1, side="long", fill_price=95.0, max_adl=cap, dry_run=True)
    assert (res.adl_qty, res.external_qty) == (adl_qty, 10.0 - adl_qty)

"""The frozen records that cross the boundary instead of dicts (rust/py/records.rs):
attributes, ==, repr, pickling by value and _asdict()."""

from __future__ import annotations

import copy
import pickle

import polars as pl
import pytest

import adl
from adl import _adl


def test_totals_are_exact_ints_that_pickle_and_compare() -> None:
    eng = adl.Engine(insurance_fund=1.5)   # cash_decimals 8: 1.5 quote = 150,000,000 units
    t = eng.totals()
    assert isinstance(t, adl.Totals) and isinstance(t.fund, int) and t.fund == 150_000_000
    assert t._fields == ("cash", "position_equity", "fund", "bad_debt", "book_value", "fees", "long_lots", "short_lots")
    assert t._asdict() == dict(zip(t._fields, (0, 0, 150_000_000, 0, 0, 0, 0, 0)))
    assert repr(t) == ("Totals(cash=0, position_equity=0, fund=150000000, bad_debt=0, book_value=0, fees=0, "
                       "long_lots=0, short_lots=0)")
    assert pickle.loads(pickle.dumps(t)) == t and copy.deepcopy(t) == t
    # Beyond i128 both ways (hi·2^64 + lo with a negative hi), through the constructor and pickle.
    big = adl.Totals(2**130 + 7, -(2**130) - 7, 0, 1, -1, 2**64, 2**64 - 1, -(2**64))
    back = pickle.loads(pickle.dumps(big))
    assert back == big and back.cash == 2**130 + 7 and back.position_equity == -(2**130) - 7
    assert (back.fees, back.long_lots, back.short_lots) == (2**64, 2**64 - 1, -(2**64))
    assert big != t
    with pytest.raises(AttributeError):
        t.fund = 0  # type: ignore[misc]


def test_adl_state_and_fund_pools_are_records() -> None:
    eng = adl.Engine(insurance_fund=100.0, trigger="fund_drop")
    eng.insurance_fund = 65.0   # 65 / 100 = 0.65 < 0.70: armed
    s = eng.adl_state()
    assert s == adl.AdlState("fund_drop", "armed", True, 0.65)
    assert (s.trigger, s.state, s.armed, s.level) == ("fund_drop", "armed", True, 0.65)
    assert pickle.loads(pickle.dumps(s)) == s
    assert s._asdict() == {"trigger": "fund_drop", "state": "armed", "armed": True, "level": 0.65}
    eng.add_market("BTC", fund_pool="BTC")
    eng.set_fund(250.0, pool="BTC")
    pools = eng._core.funds()   # BTC's level: fund / peak = 250 / 250
    assert pools == [_adl.FundPool("default", 65.0, s), _adl.FundPool("BTC", 250.0, adl.AdlState("fund_drop", "normal", False, 1.0))]
    assert eng.adl_state("BTC") == pools[1].adl_state
    assert eng.funds().rows() == [("default", 65.0, "armed", 0.65), ("BTC", 250.0, "normal", 1.0)]


def test_a_market_is_its_spec_field_for_field() -> None:
    m = adl.Market(3, 1, tiers=[(0, 0.004), (50_000, 0.005, 50.0)], fee_convention="bankruptcy", fund_pool="P")
    spec = m.spec()
    assert spec._fields == tuple(f for f in adl.Market.__dataclass_fields__)
    assert spec.tiers == [(0.0, 0.004, None), (50_000.0, 0.005, 50.0)] and spec.maintenance_rate is None
    assert (spec.qty_decimals, spec.price_decimals, spec.fee_convention, spec.fund_pool) == (3, 1, "bankruptcy", "P")
    assert pickle.loads(pickle.dumps(spec)) == spec
    # The engine's defaults: every parameter set.
    d = adl.Engine(maintenance_rate=0.01, qty_decimals=2)._core.default_spec()
    assert (d.qty_decimals, d.maintenance_rate, d.multiplier, d.inverse, d.tiers) == (2, 0.01, 1.0, False, [])


def test_severity_rounds_are_records() -> None:
    book = pl.DataFrame({"account": [1, 2, 3], "side": ["long", "short", "short"],
                         "qty": [10.0, 6.0, 6.0], "entry_price": [100.0] * 3, "margin": [50.0, 100.0, 300.0]})
    path = pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [100.0, 94.0]})
    seen: list[tuple[_adl.SeverityStart, _adl.SeverityRound | None]] = []
    eng = adl.Engine(insurance_fund=0.0)
    eng.load(book)
    sim = _adl.Simulation(eng._core, 0.0, 1, 0.0)
    import numpy as np

    def controller(start: _adl.SeverityStart, previous: _adl.SeverityRound | None) -> int:
        seen.append((start, previous))
        return start.lots   # no cap

    sim.run(np.array([0, 1], dtype=np.int64), np.array([0, 1, 2], dtype=np.uint64), np.zeros(2, dtype=np.uint32),
            np.array([100.0, 94.0]), np.full(2, np.nan), controller)
    rounds = sim.rounds()
    assert len(seen) == len(rounds) == 1
    start, r = seen[0][0], rounds[0]
    # Account 1's long of 10 at 100 with margin 50 goes bankrupt at 95: Q = 10 contracts = 100,000 lots.
    assert (start.account, start.side, start.lots) == (1, 1, 100_000)
    assert sorted(start.opposite_account) == [2, 3] and r.start == start and r.cap == start.lots
    assert sum(r.closed_lots) == r.adl_lots == 100_000
    assert pickle.loads(pickle.dumps(r)) == r and r._asdict()["start"] == start

"""Every public function's scalar parameters, attacked with wrong types and out-of-range
values: each attack raises an :class:`adl.AdlError` naming the parameter, and a logged
engine's state, log and saved file stay exactly as they were."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from conftest import book

import adl

BIG = 2**64
# Wrong types, by the kind of parameter (None is added when the parameter is required).
TYPE_ATTACKS: dict[str, list[Any]] = {
    "int": [1.7, 1.0, True, np.bool_(True), "1", b"1", [1], complex(1, 0), float("nan")],
    "num": ["1", b"1", True, [1.0], complex(1, 1), float("nan"), float("inf"), -float("inf"), 10**400],
    "flag": [1, 0, "yes", 1.0, np.int64(1), [True]],
    "text": [1, 1.5, b"x", ["a"], True],
    "path": [1, 1.5, ["a"], True, ""],
    "side": [1.0, True, 0, 2, "up", b"long", None],
    "side_or_none": [1.0, True, 0, 2, "up", b"long"],
    "symbols": [1, "BTC", b"x", [1], [], ("a", 2)],
    "callable": [1, 1.5, "x", b"x", ["a"]],
    "object": [1, 1.5, "x", b"x", ["a"], True],
}


@dataclass
class Param:
    kind: str
    optional: bool = False
    bad: list[Any] = field(default_factory=list)  # out-of-range values of the right type


@dataclass
class Target:
    name: str
    call: Callable[..., Any]
    base: dict[str, Any]
    params: dict[str, Param]
    mutates: bool = False


def attacks(p: Param) -> list[tuple[str, Any]]:
    out = [("type", v) for v in TYPE_ATTACKS[p.kind]] + [("range", v) for v in p.bad]
    if not p.optional and not p.kind.startswith("side"):
        out.append(("type", None))
    return out


def engine(path: Path | None = None) -> adl.Engine:
    eng = adl.Engine(insurance_fund=3.0, qty_decimals=0, price_decimals=0, cash_decimals=2)
    eng.load(book([(1, "long", 10.0, 100.0, 44.0), (2, "short", 10.0, 100.0, 500.0), (3, "short", 5.0, 99.0, 50.0)]))
    eng.set_marks(96.0, ts=10)
    if path is not None:
        eng.log_to(path)
    return eng


POSITIONS = book([(1, "long", 10.0, 100.0, 44.0), (2, "short", 10.0, 100.0, 500.0)])
PRICES = pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [100.0, 94.0]})
ACCOUNTS = pl.DataFrame({"account": [1, 2], "cash": [0.0, 10.0], "pnl": [-30.0, 40.0]})

ACCOUNT = Param("int", bad=[-1, BIG, 2**70])
FLAG = Param("flag")
DECIMALS = Param("int", bad=[-1, 19, BIG])
RATE = Param("num", bad=[-0.1, 1.5, 1e308])
PRICE = Param("num", optional=True, bad=[0.0, -5.0, -1e308])
SEED = Param("int", bad=[-1, BIG])


def engine_targets(eng: adl.Engine, tmp: Path) -> list[Target]:
    batch = pl.DataFrame({"account": [1], "side": ["long"]})
    return [
        Target("Engine.liquidate", eng.liquidate, {"account": 1, "side": "long"},
               {"account": ACCOUNT, "symbol": Param("text", optional=True, bad=["nope"]), "side": Param("side"),
                "fill_price": PRICE, "force": FLAG, "dry_run": FLAG, "partial": FLAG}, mutates=True),
        Target("Engine.liquidate_account", eng.liquidate_account, {"account": 1},
               {"account": ACCOUNT, "force": FLAG, "partial": FLAG}, mutates=True),
        Target("Engine.liquidate_many", eng.liquidate_many, {"frame": batch}, {"force": FLAG, "partial": FLAG}, mutates=True),
        Target("Engine.close_position", eng.close_position, {"account": 1, "side": "long"},
               {"account": ACCOUNT, "symbol": Param("text", optional=True, bad=["nope"]), "side": Param("side"),
                "price": PRICE}, mutates=True),
        Target("Engine.set_marks", eng.set_marks, {"marks": 97.0},
               {"marks": Param("num", bad=[0.0, -1.0, 1e300, {"default": -1.0}, {"default": "x"}, {1: 5.0}, {"nope": 5.0}]),
                "ts": Param("int", optional=True, bad=[9, -(2**63), 2**63, BIG])}, mutates=True),
        Target("Engine.set_fund", eng.set_fund, {"amount": 1.0},
               {"amount": Param("num", bad=[-1.0, 1e300]), "pool": Param("text", bad=["nope"])}, mutates=True),
        Target("Engine.insurance_fund", lambda amount: setattr(eng, "insurance_fund", amount), {"amount": 1.0},
               {"amount": Param("num", bad=[-1.0, 1e300])}, mutates=True),
        Target("Engine.adl_state", eng.adl_state, {}, {"pool": Param("text", bad=["nope"])}),
        Target("Engine.tiers", eng.tiers, {"symbol": "default"}, {"symbol": Param("text", bad=["nope"])}),
        Target("Engine.add_market", eng.add_market, {"symbol": "NEW"},
               {"symbol": Param("text", bad=["default"]), "qty_decimals": Param("int", optional=True, bad=[-1, 19]),
                "price_decimals": Param("int", optional=True, bad=[-1, 19]),
                "maintenance_rate": Param("num", optional=True, bad=[-0.1, 1.5]),
                "multiplier": Param("num", optional=True, bad=[0.0, -1.0, 1e-12]),
                "inverse": Param("flag", optional=True), "liquidation_fee": Param("num", optional=True, bad=[-0.1, 2.0]),
                "fee_convention": Param("text", optional=True, bad=["nope"]),
                "surplus_to_fund": Param("flag", optional=True), "adl_fee": Param("num", optional=True, bad=[-0.1, 2.0]),
                "fund_pool": Param("text", optional=True)}, mutates=True),
        Target("Engine.preview", eng.preview, {"side": "long", "step": 0.1},
               {"symbol": Param("text", optional=True, bad=["nope"]), "side": Param("side_or_none"),
                "account": Param("int", optional=True, bad=[-1, BIG, 12345]),
                "step": Param("num", bad=[0.0, -0.1, 1e-12, 0.9]), "max_move": Param("num", bad=[0.0, -1.0, 11.0])}),
        Target("Engine.log_to", eng.log_to, {"path": tmp / "other.log"},
               {"path": Param("path", bad=["/dev/null", str(tmp)]), "sync": Param("text", bad=["often"]),
                "group_ms": Param("int", bad=[-1, BIG])}, mutates=True),
        Target("Engine.save", eng.save, {"path": tmp / "saved.adl"}, {"path": Param("path", bad=["/dev/null", str(tmp)])}),
        Target("Engine.events", eng.events, {}, {"since": Param("int", bad=[-1, BIG])}),
        # No event has run: any cursor past 0 is past the next event's id.
        Target("Engine.drain_events", eng.drain_events, {"upto": 0}, {"upto": Param("int", bad=[-1, 1, 2**63, BIG])},
               mutates=True),
        Target("Engine.keep_fills", lambda keep: setattr(eng, "keep_fills", keep), {"keep": True}, {"keep": FLAG},
               mutates=True),
    ]


def constructor_targets(tmp: Path) -> list[Target]:
    return [
        Target("Engine", adl.Engine, {},
               {"policy": Param("text", bad=["nope"]), "insurance_fund": Param("num", bad=[-1.0]),
                "maintenance_rate": RATE, "cash_decimals": DECIMALS, "qty_decimals": DECIMALS, "price_decimals": DECIMALS,
                "multiplier": Param("num", bad=[0.0, -1.0]), "inverse": FLAG, "liquidation_fee": RATE,
                "fee_convention": Param("text", bad=["nope"]), "surplus_to_fund": FLAG, "adl_fee": RATE,
                "adl_price": Param("text", optional=True, bad=["nope"]), "seed": SEED, "trigger": Param("text", bad=["nope"]),
                "trigger_window": Param("int", optional=True, bad=[0, -1, BIG]),
                "trigger_arm": Param("num", optional=True), "trigger_disarm": Param("num", optional=True),
                "keep_fills": FLAG}),
        Target("Engine.restore", adl.Engine.restore, {"data": adl.Engine().snapshot()},
               {"data": Param("path", bad=[b"", b"junk" * 10])}),
        Target("Engine.open", adl.Engine.open, {"path": tmp / "saved.adl"},
               {"path": Param("path", bad=[str(tmp / "missing.adl"), str(tmp)])}),
        Target("Engine.replay", adl.Engine.replay, {"path": tmp / "ops.log"},
               {"path": Param("path", bad=[str(tmp / "missing.log"), str(tmp), str(tmp / "saved.adl")])}),
        Target("Market", adl.Market, {},
               {"qty_decimals": DECIMALS, "price_decimals": DECIMALS, "maintenance_rate": Param("num", True, [-0.1, 1.5]),
                "multiplier": Param("num", True, [0.0, -1.0]), "inverse": Param("flag", True),
                "liquidation_fee": Param("num", True, [-0.1, 2.0]), "fee_convention": Param("text", True, ["nope"]),
                "surplus_to_fund": Param("flag", True), "adl_fee": Param("num", True, [-0.1, 2.0]),
                "fund_pool": Param("text", True)}),
        Target("Slippage", adl.Slippage, {},
               {"bps_per_million": Param("num", bad=[-1.0]), "window": Param("int", bad=[-1, BIG]),
                "max_bps": Param("num", bad=[-1.0])}),
        Target("rank", adl.rank, {"positions": POSITIONS, "mark": 96.0},
               {"mark": Param("num", bad=[0.0, -1.0, {"default": 0.0}, {"default": "x"}]), "policy": Param("text", bad=["nope"])}),
        Target("deleverage", adl.deleverage, {"positions": POSITIONS, "mark": 96.0, "side": "long", "qty": 5.0, "price": 95.0},
               {"mark": Param("num", bad=[0.0, -1.0]), "side": Param("side"), "qty": Param("num", bad=[0.0, -1.0, 1e300]),
                "price": Param("num", bad=[0.0, -1.0]), "symbol": Param("text", optional=True, bad=["nope"]),
                "policy": Param("text", bad=["nope"]), "seed": SEED}),
        Target("simulate", adl.simulate, {"positions": POSITIONS, "prices": PRICES},
               {"policy": Param("text", optional=True, bad=["nope"]), "engine": Param("object", optional=True, bad=[adl.Market()]), "insurance_fund": Param("num", bad=[-1.0]),
                "maintenance_rate": RATE, "liquidation": Param("object", bad=[adl.Market()]),
                "horizon": Param("int", bad=[-1, BIG]), "cash_decimals": DECIMALS, "qty_decimals": DECIMALS,
                "price_decimals": DECIMALS, "adl_price": Param("text", optional=True, bad=["nope"]), "seed": SEED,
                "trigger": Param("text", bad=["nope"]), "keep_fills": FLAG,
                "trigger_min_balance": Param("num", optional=True, bad=[-1.0]),
                "lights": Param("text", optional=True, bad=["nope"]),
                "chunk": Param("int", bad=[0, -1, BIG]), "progress": Param("callable", optional=True)}),
        Target("allocate", adl.allocate, {"accounts": ACCOUNTS, "policy": "pro_rata"},
               {"policy": Param("text", bad=["nope"]), "theta": Param("num", bad=[-0.1, 1.5]),
                "budget": Param("num", optional=True, bad=[-1.0])}),
        Target("allocation_metrics", adl.allocation_metrics,
               {"result": adl.allocate(ACCOUNTS, policy="pro_rata")}, {"b_needed": Param("num", optional=True), "need": Param("num", optional=True)}),
        Target("synthetic_book", adl.synthetic_book, {"n": 10},
               {"n": Param("int", bad=[-1, BIG]), "symbols": Param("symbols"),
                "mark": Param("num", bad=[0.0, -1.0]), "seed": SEED, "size_sigma": Param("num", bad=[-1.0]),
                "median_notional": Param("num", bad=[0.0]), "leverage": Param("object", bad=[(50.0, 2.0), (0.5, 2.0), (1.0,)]),
                "high_leverage_share": Param("num", bad=[-0.1, 1.5]), "entry_sigma": Param("num", bad=[-1.0]),
                "hedged_share": Param("num", bad=[1.5])}),
        Target("crash_path", adl.crash_path, {"steps": 10, "duration": 5},
               {"symbols": Param("symbols"), "start": Param("num", bad=[0.0]), "drop": Param("num", bad=[-0.1, 1.0]),
                "duration": Param("int", bad=[-1]), "rebound": Param("num", bad=[-0.1, 2.0]), "steps": Param("int", bad=[0, -1]),
                "dt": Param("int", bad=[0]), "noise": Param("num", bad=[-0.1]), "seed": SEED}),
        Target("sweep", adl.sweep, {"scenarios": [{"positions": 20, "steps": 5, "duration": 3}], "policies": ["bitmex"]},
               {"backend": Param("text", bad=["gpu"]), "workers": Param("int", optional=True, bad=[0, -1]),
                "progress": Param("callable", bad=[None])}),
    ]


def frozen(eng: adl.Engine, log: Path, saved: Path) -> tuple[bytes, dict[str, int], bytes, bytes]:
    return eng.snapshot(), eng.totals(), log.read_bytes(), saved.read_bytes()


def run_sweep(tmp: Path) -> dict[str, int]:
    """Runs every attack; returns counts by class and fails on the first wrong outcome."""
    log, saved = tmp / "ops.log", tmp / "saved.adl"
    eng = engine(log)
    eng.save(saved)
    counts = {"type": 0, "range": 0}
    for target in engine_targets(eng, tmp) + constructor_targets(tmp):
        for name, p in target.params.items():
            for cls, value in attacks(p):
                before = frozen(eng, log, saved)
                kwargs = {**target.base, name: value}
                with pytest.raises(adl.AdlError) as info:
                    target.call(**kwargs)
                msg = str(info.value)
                names_it = name in msg or getattr(info.value, "field", None) == name or cls == "range"
                assert names_it, f"{target.name}({name}={value!r}): {type(info.value).__name__}: {msg}"
                assert frozen(eng, log, saved) == before, f"{target.name}({name}={value!r}) changed the state"
                counts[cls] += 1
    return counts


def test_hostile_scalar_arguments_are_refused_by_name_and_change_nothing(tmp_path: Path) -> None:
    counts = run_sweep(tmp_path)
    # Every kind's list, for every parameter of 24 public entry points.
    assert counts["type"] > 700 and counts["range"] > 120, counts


def test_the_sweep_calls_succeed_with_their_base_arguments(tmp_path: Path) -> None:
    # The base calls are valid: an attack is refused because of its one bad value.
    log, saved = tmp_path / "ops.log", tmp_path / "saved.adl"
    eng = engine(log)
    eng.save(saved)
    n = len(engine_targets(eng, tmp_path))
    for i in range(n + len(constructor_targets(tmp_path))):
        fresh = engine()  # each engine call on its own engine
        target = (engine_targets(fresh, tmp_path) + constructor_targets(tmp_path))[i]
        try:
            target.call(**target.base)
        except adl.AdlError as e:
            # Account 1 holds no cross position: liquidate_account refuses it whatever else.
            assert target.name == "Engine.liquidate_account" and "cross" in str(e), f"{target.name}: {e}"


def test_specific_refusals() -> None:
    eng = engine()
    for bad in (1.7, True):
        with pytest.raises(adl.InvalidInputError, match="account") as e:
            eng.liquidate(bad, side="long")  # type: ignore[arg-type]
        assert e.value.field == "account"
    with pytest.raises(adl.InvalidInputError, match="chunk"):
        adl.simulate(POSITIONS, PRICES, chunk=-1)
    with pytest.raises(adl.InvalidInputError, match="ts"):
        eng.set_marks(97.0, ts=9)  # the clock is at 10
    eng.set_marks(97.0, ts=10)  # equal is fine
    for big in (1e308, -1e308):
        acc = pl.DataFrame({"account": [1, 2, 3], "cash": [0.0, 10.0, 0.0], "pnl": [-30.0, big, big]})
        try:
            res = adl.allocate(acc, policy="pro_rata")
        except adl.InvalidInputError as err:
            assert err.field in ("pnl", "cash")
        else:
            assert not any(math.isnan(x) for x in res["seized"].to_list() + res["haircut"].to_list())

"""`adl.simulate` and the CLI pass the engine's `lights` and `trigger_min_balance` through,
with hand-computed effects."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import adl
from adl.cli import app
from adl.errors import InvalidInputError

runner = CliRunner()
WHOLE = dict(qty_decimals=0, price_decimals=0, cash_decimals=0)


def book(rows: list[tuple[int, str, float, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["account", "side", "qty", "entry_price", "margin"], orient="row")


# Six longs @ 100 holding 10, 20, 30, 10, 10, 20 at mark 110, queued in row order (their
# BitMEX scores 0.1/r fall with e/N = r = 0.2, ..., 0.7; see test_venue_presets.py), and
# nobody below maintenance: the cascade liquidates nothing and the queue stays.
LONGS = book([
    (1, "long", 10, 100, 120), (2, "long", 20, 100, 460), (3, "long", 30, 100, 1_020),
    (4, "long", 10, 100, 450), (5, "long", 10, 100, 560), (6, "long", 20, 100, 1_340),
])
FLAT = pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [110.0, 110.0]})

# symbol_drawdown (docs/model.md §5): a long 350K @ 10 with margin 350K (P_bk 9) against a
# 1M fund, the mark falling to 8: the deficit is 1 per lot. Above the minimum balance the
# fund pays down to -30 % of its 8 h maximum (300K) and ADL takes the other 50K lots.
CRASH_BOOK = book([(1, "long", 350_000, 10, 350_000), (90, "short", 1_000_000, 10, 1_000_000)])
CRASH = pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [10.0, 8.0]})


def crash(**kw: object) -> adl.SimulationResult:
    return adl.simulate(CRASH_BOOK, CRASH, insurance_fund=1_000_000.0, liquidation=adl.Slippage(0.0),
                        trigger="symbol_drawdown", **WHOLE, **kw)  # type: ignore[arg-type]


def test_simulate_lights_method_reaches_the_engine() -> None:
    # By cumulative quantity 10, 30, 60, 70, 80, 100 of 100: 6 - ceil(5·cum/100) = 5, 4, 3, 2, 2, 1;
    # by count 6 - ceil(5·r/6) = 5, 4, 3, 2, 1, 1. bitmex defaults to quantity.
    default = adl.simulate(LONGS, FLAT, insurance_fund=0.0, **WHOLE)  # type: ignore[arg-type]
    assert default.engine.indicator()["lights"].to_list() == [5, 4, 3, 2, 2, 1]
    count = adl.simulate(LONGS, FLAT, insurance_fund=0.0, lights="count", **WHOLE)  # type: ignore[arg-type]
    assert count.engine.lights == "count" and count.params["lights"] == "count"
    assert count.engine.indicator()["lights"].to_list() == [5, 4, 3, 2, 1, 1]


def test_simulate_trigger_min_balance_takes_effect() -> None:
    low = crash(trigger_min_balance=0.0)
    row = low.liquidations.row(0, named=True)
    assert (row["from_fund"], row["external_qty"], row["adl_qty"], row["bad_debt"]) == (300_000.0, 300_000.0, 50_000.0, 0.0)
    assert low.params["trigger_min_balance"] == 0.0
    # A 2M minimum: the pool (1M) is at or below it, so the trigger does not apply and the
    # fund pays all 350K.
    high = crash(trigger_min_balance=2_000_000.0)
    row = high.liquidations.row(0, named=True)
    assert (row["from_fund"], row["adl_qty"]) == (350_000.0, 0.0)
    assert high.engine.insurance_fund == 650_000.0


def test_simulate_refuses_bad_options_by_name() -> None:
    with pytest.raises(InvalidInputError) as e:
        adl.simulate(LONGS, FLAT, lights="moon")  # type: ignore[arg-type]
    assert e.value.field == "lights"
    with pytest.raises(InvalidInputError) as e:
        adl.simulate(LONGS, FLAT, trigger="symbol_drawdown", trigger_min_balance=-1.0)
    assert e.value.field == "trigger_min_balance"
    # Only the symbol_drawdown trigger has a minimum balance (the engine says so).
    with pytest.raises(InvalidInputError) as e:
        adl.simulate(LONGS, FLAT, trigger="drawdown", trigger_min_balance=5.0)
    assert e.value.field == "trigger_min_balance"


def write(tmp: Path, positions: pl.DataFrame, prices: pl.DataFrame) -> tuple[str, str]:
    pos, px = tmp / "positions.csv", tmp / "prices.csv"
    positions.write_csv(pos)
    prices.write_csv(px)
    return str(pos), str(px)


def test_cli_lights(tmp_path: Path) -> None:
    pos, px = write(tmp_path, LONGS, FLAT)
    whole = ["--markets", str(tmp_path / "m.toml")]
    (tmp_path / "m.toml").write_text("[engine]\ncash_decimals = 0\nqty_decimals = 0\nprice_decimals = 0\n")
    for lights, want in ((None, [5, 4, 3, 2, 2, 1]), ("count", [5, 4, 3, 2, 1, 1]), ("quantity", [5, 4, 3, 2, 2, 1])):
        out = tmp_path / f"out-{lights}"
        args = ["simulate", pos, px, "--insurance-fund", "0", *whole, "--out", str(out)]
        r = runner.invoke(app, args + ([] if lights is None else ["--lights", lights]))
        assert r.exit_code == 0, r.output
        assert pl.read_parquet(out / "queue.parquet")["lights"].to_list() == want
    # adl rank takes it too (the stateless ranking, same numbers).
    r = runner.invoke(app, ["rank", pos, "--mark", "110", "--lights", "count", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert pl.read_json(r.output.encode()).sort("rank")["lights"].to_list() == [5, 4, 3, 2, 1, 1]
    r = runner.invoke(app, ["simulate", pos, px, "--lights", "moon"])
    assert r.exit_code == 2


def test_cli_trigger_min_balance(tmp_path: Path) -> None:
    pos, px = write(tmp_path, CRASH_BOOK, CRASH)
    markets = tmp_path / "m.toml"
    markets.write_text("[engine]\ncash_decimals = 0\nqty_decimals = 0\nprice_decimals = 0\n")
    base = ["simulate", pos, px, "--insurance-fund", "1000000", "--bps-per-million", "0", "--markets", str(markets),
            "--trigger", "symbol_drawdown", "--format", "json"]
    # ADL notional (Σ qty × mark) of the 50K lots at mark 8: 400K, the fund at 1M - 300K; with
    # a 2M minimum balance no ADL and the fund at 1M - 350K.
    for min_balance, adl_notional, fund_min in (("0", 400_000.0, 700_000.0), ("2000000", 0.0, 650_000.0)):
        r = runner.invoke(app, [*base, "--trigger-min-balance", min_balance])
        assert r.exit_code == 0, r.output
        got = pl.read_json(r.output.encode()).row(0, named=True)
        assert (got["adl_notional"], got["fund_min"]) == (adl_notional, fund_min)
    # The markets file's [engine] table takes them too.
    markets.write_text('[engine]\ncash_decimals = 0\nqty_decimals = 0\nprice_decimals = 0\ntrigger = "symbol_drawdown"\n'
                       'trigger_min_balance = 2000000.0\n')
    r = runner.invoke(app, ["simulate", pos, px, "--insurance-fund", "1000000", "--bps-per-million", "0", "--markets",
                            str(markets), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert pl.read_json(r.output.encode())["adl_notional"].to_list() == [0.0]


# A long 10 @ 100 with margin 50 (maintenance 0.5 %) and a solvent short. At 95.4 the long's
# equity is 50 + 10·(95.4 − 100) = 4 < maintenance 0.005·954 = 4.77: liquidated at the mark
# (no slippage), above its bankruptcy price 95. With a liquidation fee of 0.1 % and the
# surplus returned to the trader: fee 0.001·954 = 0.954 to the fund, 4 − 0.954 = 3.046 back.
FEE_BOOK = book([(1, "long", 10, 100, 50), (2, "short", 10, 100, 500)])
FEE_PATH = pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [100.0, 95.4]})


def test_an_engine_config_reaches_options_simulate_has_no_keyword_for() -> None:
    cfg = adl.EngineConfig(insurance_fund=100.0, liquidation_fee=0.001, surplus_to_fund=False)
    res = adl.simulate(FEE_BOOK, FEE_PATH, engine=cfg, liquidation=adl.Slippage(0.0))
    assert res.liquidations.select("account", "qty").rows() == [(1, 10.0)]
    assert res.engine.insurance_fund == pytest.approx(100.954)
    cash = dict(res.engine.accounts().select("account", "cash").iter_rows())
    assert cash[1] == pytest.approx(3.046)
    # simulate's keywords cannot set a fee: the surplus 4 goes to the fund (the default).
    plain = adl.simulate(FEE_BOOK, FEE_PATH, insurance_fund=100.0, liquidation=adl.Slippage(0.0))
    assert plain.engine.insurance_fund == pytest.approx(104.0)
    # An engine gives its configuration (not its book); compare varies the policy only.
    again = adl.simulate(FEE_BOOK, FEE_PATH, engine=adl.Engine.from_config(cfg), liquidation=adl.Slippage(0.0))
    assert again.engine.insurance_fund == pytest.approx(100.954)
    table = adl.compare(FEE_BOOK, FEE_PATH, policies=["bitmex", "size_pro_rata"], engine=cfg, liquidation=adl.Slippage(0.0))
    assert table["policy"].to_list() == ["bitmex", "size_pro_rata"]
    assert table["fund_end"].to_list() == pytest.approx([100.954, 100.954])


def test_keywords_given_with_an_engine_config_replace_its_values() -> None:
    cfg = adl.EngineConfig(insurance_fund=100.0, liquidation_fee=0.001, surplus_to_fund=False)
    # The fund given as a keyword replaces the configuration's; the fee stays: 5 + 0.954.
    res = adl.simulate(FEE_BOOK, FEE_PATH, engine=cfg, insurance_fund=5.0, liquidation=adl.Slippage(0.0))
    assert res.engine.insurance_fund == pytest.approx(5.954)
    # Given at simulate's own default (1e6) it still counts as given.
    res = adl.simulate(FEE_BOOK, FEE_PATH, engine=cfg, insurance_fund=1e6, liquidation=adl.Slippage(0.0))
    assert res.engine.insurance_fund == pytest.approx(1e6 + 0.954)
    # Left alone, the configuration's fund (100) runs, not simulate's default (1e6).
    res = adl.simulate(FEE_BOOK, FEE_PATH, engine=cfg, liquidation=adl.Slippage(0.0))
    assert res.engine.insurance_fund == pytest.approx(100.954)
    # Fund sizing varies the fund over an engine configuration (the book's close at 95.4 is
    # above the bankruptcy price: no ADL, no bad debt, so the smallest fund is enough).
    sized = adl.size_fund(FEE_BOOK, {"path": FEE_PATH}, funds=[0.0, 1e6], engine=cfg, liquidation=adl.Slippage(0.0))
    assert sized.fund == 0.0 and sized.table.height == 2
    with pytest.raises(InvalidInputError) as e:
        adl.simulate(FEE_BOOK, FEE_PATH, engine={"policy": "bitmex"})  # type: ignore[arg-type]
    assert e.value.field == "engine"
    for bad in ("", 0, False):
        with pytest.raises(InvalidInputError) as e:
            adl.simulate(FEE_BOOK, FEE_PATH, policy=bad)  # type: ignore[arg-type]
        assert e.value.field == "policy"
    restored = adl.Engine.restore(adl.Engine().snapshot())
    assert restored.config is None
    with pytest.raises(InvalidInputError):
        adl.simulate(FEE_BOOK, FEE_PATH, engine=restored)


def test_engine_config_lists_every_engine_option() -> None:
    import inspect
    from dataclasses import fields

    params = inspect.signature(adl.Engine.__init__).parameters
    options = [(p.name, p.default) for p in params.values() if p.name != "self"]
    assert [(f.name, f.default) for f in fields(adl.EngineConfig)] == options
    eng = adl.Engine("binance", 5.0, tiers=[(0, 0.01)], markets={"X": adl.Market(0, 0)})
    assert adl.Engine.from_config(eng.config).config == eng.config  # type: ignore[arg-type]


def test_add_market_keywords_are_the_market_fields() -> None:
    import inspect
    from dataclasses import fields

    # add_market passes its keywords to adl.Market by name: the two lists are one.
    params = inspect.signature(adl.Engine.add_market).parameters
    assert [(p.name, p.kind) for p in params.values()][2:] == [(f.name, inspect.Parameter.KEYWORD_ONLY) for f in fields(adl.Market)]
    # A restored engine has no config; its grid defaults come from the core.
    eng = adl.Engine.restore(adl.Engine(qty_decimals=2, price_decimals=1).snapshot())
    eng.add_market("X", maintenance_rate=0.01)
    assert eng.markets().select("qty_decimals", "price_decimals", "maintenance_rate").row(0) == (2, 1, 0.01)


def test_an_engine_keeps_its_config_through_markets_copies_and_results() -> None:
    import copy
    import pickle

    eng = adl.Engine(insurance_fund=100.0, liquidation_fee=0.001, surplus_to_fund=False, qty_decimals=0, price_decimals=0)
    eng.add_market("BTC", qty_decimals=3, tiers=[(0, 0.004)])
    eng.max_ts_step = 60_000
    cfg = eng.config
    assert cfg is not None and cfg.max_ts_step == 60_000
    assert cfg.markets == {"BTC": adl.Market(3, 0, tiers=[(0, 0.004)])}   # price decimals: the engine's 0
    assert pickle.loads(pickle.dumps(eng)).config == cfg and copy.deepcopy(eng).config == cfg
    res = adl.simulate(FEE_BOOK, FEE_PATH, engine=adl.EngineConfig(insurance_fund=100.0, liquidation_fee=0.001,
                                                                  surplus_to_fund=False), liquidation=adl.Slippage(0.0))
    again = adl.simulate(FEE_BOOK, FEE_PATH, engine=res.engine, liquidation=adl.Slippage(0.0))
    assert again.engine.insurance_fund == pytest.approx(100.954)
    for bad in ({"tiers": 5}, {"markets": 5}, {"markets": {"X": 1}}):
        with pytest.raises(InvalidInputError):
            adl.Engine(**bad)  # type: ignore[arg-type]


def test_liquidation_results_pickle() -> None:
    import pickle

    eng = adl.Engine(insurance_fund=0.0, **WHOLE)
    eng.load(FEE_BOOK)
    eng.set_marks(95.0)
    res = eng.liquidate(1, side="long", fill_price=94.0)
    back = pickle.loads(pickle.dumps(res))
    assert back.fills.equals(res.fills) and back.bad_debt == res.bad_debt and back.cancel_orders.equals(res.cancel_orders)


def test_the_adl_price_in_use_is_the_engines() -> None:
    # The policy's default (hyperliquid: the mark), or the constructor's override, as the
    # engine reports it and as a cascade's parameters record it.
    assert (adl.Engine("hyperliquid").adl_price, adl.Engine("bitmex").adl_price) == ("mark", "bankruptcy")
    assert adl.Engine("hyperliquid", adl_price="mark_capped").adl_price == "mark_capped"
    for cfg, want in ((adl.EngineConfig("hyperliquid"), "mark"), (adl.EngineConfig("bitmex", adl_price="mark"), "mark"),
                      (adl.EngineConfig("binance"), "bankruptcy")):
        res = adl.simulate(FEE_BOOK, FEE_PATH, engine=cfg, liquidation=adl.Slippage(0.0))
        assert res.params["adl_price"] == want

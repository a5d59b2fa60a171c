"""The command line: the demo runs end to end; rank reads files and rejects bad ones."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
from conftest import book
from typer.testing import CliRunner

from adl.cli import app
from adl.demo import make_book, run_demo

runner = CliRunner()


def test_bundled_book_is_the_seeded_generator_output() -> None:
    from adl.demo import bundled_book

    assert bundled_book().equals(make_book().with_columns(pl.col("side").cast(pl.Int8)))


def test_demo_runs_the_whole_waterfall() -> None:
    run = run_demo()
    kinds = set(run.result.fills["kind"].to_list())
    assert {"external", "adl"} <= kinds
    assert run.liquidated.height > 0
    # The fund only pays out what it holds; ADL fills stay within what counterparties held.
    assert run.engine.insurance_fund >= 0
    assert run.result.from_fund <= run.fund_start + run.result.to_fund + 1e-9
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    for text in ("Fills by kind", "Insurance fund ledger", "Most deleveraged counterparties"):
        assert text in result.output


def test_rank_command_writes_parquet(tmp_path: Path) -> None:
    src = tmp_path / "book.csv"
    book([(1, "short", 10, 100, 20), (2, "short", 10, 100, 60)]).write_csv(src)
    out = tmp_path / "ranked.parquet"
    result = runner.invoke(app, ["rank", str(src), "--mark", "96", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out)["rank"].to_list() == [1, 2]


def test_rank_command_rejects_bad_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    book([(1, "short", 10, 100, 20)]).drop("margin").write_csv(missing)
    result = runner.invoke(app, ["rank", str(missing), "--mark", "96"])
    assert result.exit_code == 2 and "margin" in result.output
    result = runner.invoke(app, ["rank", str(tmp_path / "nope.csv"), "--mark", "96"])
    assert result.exit_code == 2


def test_demo_under_other_policies() -> None:
    for policy in ("size_pro_rata", "hyperliquid"):
        result = runner.invoke(app, ["demo", "--policy", policy])
        assert result.exit_code == 0, result.output
        assert "Insurance fund ledger" in result.output
    result = runner.invoke(app, ["demo", "--policy", "lottery"])
    assert result.exit_code == 2 and "policy" in result.output


def test_version_and_help() -> None:
    import adl

    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"adl {adl.__version__}"
    r = runner.invoke(app, ["rank", "--help"])
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.output).split())
    assert "account, symbol (optional), side" in text
    wide = runner.invoke(app, ["simulate", "--help"], env={"COLUMNS": "400"}).output
    for policy in ("capped_pro_rata", "wealth_pro_rata", "dydx"):  # the choices: every policy
        assert policy in wide


def test_the_slow_book_note_names_the_pro_rata_policies_of_the_one_list() -> None:
    from adl import _adl, cli

    # Derived from adl._io.POLICIES: the four that split an event over the whole side, none
    # of which ranks (dydx ranks nobody either, but walks: it is not slow).
    assert cli.PRO_RATA == ("capped_pro_rata", "levered_pro_rata", "size_pro_rata", "wealth_pro_rata")
    assert not any(_adl.ranks(p) for p in cli.PRO_RATA)


def test_rank_formats_and_marks_file(tmp_path: Path) -> None:
    src = tmp_path / "book.csv"
    pl.DataFrame({"account": [1, 2, 3], "symbol": ["BTC", "BTC", "DOGE"], "side": ["short", "short", "long"],
                  "qty": [1.0, 1.0, 1000.0], "entry_price": [60_000.0, 60_000.0, 0.15],
                  "margin": [600.0, 1_200.0, 30.0]}).write_csv(src)
    marks = tmp_path / "marks.csv"
    pl.DataFrame({"symbol": ["BTC", "DOGE"], "mark": [57_600.0, 0.16]}).write_csv(marks)
    r = runner.invoke(app, ["rank", str(src), "--marks", str(marks), "--format", "csv"])
    assert r.exit_code == 0, r.output
    out = pl.read_csv(r.output.encode())
    # BTC shorts at 57,600: pnl% 4 %, leverage 57,600/3,000 = 19.2 and 57,600/3,600 = 16.
    assert out.filter(pl.col("symbol") == "BTC").sort("account")["rank"].to_list() == [1, 2]
    r = runner.invoke(app, ["rank", str(src), "--marks", str(marks), "--format", "json"])
    assert r.exit_code == 0 and pl.read_json(r.output.encode()).height == 3
    # One scalar mark for two symbols: refused, exit 2, the field named.
    r = runner.invoke(app, ["rank", str(src), "--mark", "100"])
    assert r.exit_code == 2 and "one price for 2 symbols" in r.output
    r = runner.invoke(app, ["rank", str(src)])
    assert r.exit_code == 2 and "--marks" in r.output


def test_errors_keep_their_row_numbers_and_bad_options_exit_2(tmp_path: Path) -> None:
    src = tmp_path / "book.csv"
    book([(1, "short", 10, 100, 20), (2, "short", -10, 100, 60)]).write_csv(src)
    r = runner.invoke(app, ["rank", str(src), "--mark", "96"])
    assert r.exit_code == 2 and "[row 1]" in r.output, r.output
    r = runner.invoke(app, ["scenario", str(tmp_path / "s"), "--drop", "1.2"])
    assert r.exit_code == 2 and "below 0" in r.output and not (tmp_path / "s").exists()
    r = runner.invoke(app, ["compare", str(src), str(src), "--policies", "bitmex,lottery"])
    assert r.exit_code == 2 and "lottery" in r.output
    # --out is checked before any work is done.
    r = runner.invoke(app, ["compare", str(src), str(src), "--out", str(tmp_path / "no" / "such" / "c.parquet")])
    assert r.exit_code == 2 and "not a writable directory" in r.output


def test_simulate_reads_wallets_and_a_markets_file(tmp_path: Path) -> None:
    import adl

    r = runner.invoke(app, ["scenario", str(tmp_path / "s"), "--positions", "500", "--steps", "30"])
    assert r.exit_code == 0, r.output
    pos, px = tmp_path / "s" / "positions.parquet", tmp_path / "s" / "prices.parquet"
    markets = tmp_path / "markets.toml"
    markets.write_text('[engine]\ntrigger = "fund_drop"\n[markets.BTC-PERP]\nqty_decimals = 3\nprice_decimals = 2\n'
                       'liquidation_fee = 0.001\n')
    wallets = tmp_path / "wallets.csv"
    pl.DataFrame({"account": [1, 2], "cash": [10.0, 20.0]}).write_csv(wallets)
    r = runner.invoke(app, ["simulate", str(pos), str(px), "--insurance-fund", "5", "--markets", str(markets),
                            "--accounts", str(wallets), "--format", "json"])
    assert r.exit_code == 0, r.output
    got = pl.read_json(r.output.encode())
    want = adl.simulate(adl.read_positions(pos), adl.read_prices(px), insurance_fund=5.0, trigger="fund_drop",
                        markets={"BTC-PERP": adl.Market(3, 2, liquidation_fee=0.001)},
                        accounts=pl.DataFrame({"account": [1, 2], "cash": [10.0, 20.0]}),
                        liquidation=adl.Slippage(bps_per_million=5.0)).summary
    assert got.select("liquidations", "bad_debt").rows() == want.select("liquidations", "bad_debt").rows()
    markets.write_text("[markets.BTC-PERP]\nqty_decimal = 3\n")
    r = runner.invoke(app, ["simulate", str(pos), str(px), "--markets", str(markets)])
    assert r.exit_code == 2 and "qty_decimal" in r.output


def test_severity_command_prints_the_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "per_round.parquet"
    from adl.cli import console

    monkeypatch.setattr(console, "_width", 250)  # rich wraps the policy names on the runner's narrow terminal
    page = tmp_path / "rounds.html"
    result = runner.invoke(app, ["severity", "--lam", "1", "--rounds", "--out", str(out), "--chart", str(page)])
    assert result.exit_code == 0, result.output
    for text in ("ours_impact_slope", "production", "min_max_ilp", "B_inst", "Per round"):
        assert text in result.output
    per = pl.read_parquet(out)
    assert per["round"].n_unique() == 16 and {"tracking", "fairness", "total"} <= set(per.columns)
    text = page.read_text()
    assert "need (ex-post)" in text and "<script src=" not in text   # plotly.js inlined
    assert runner.invoke(app, ["severity", "--lam", "-1"]).exit_code == 2

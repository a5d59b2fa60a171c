"""The command line: the demo runs end to end; rank reads files and rejects bad ones."""

from __future__ import annotations

from pathlib import Path

import polars as pl
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

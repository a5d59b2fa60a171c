"""Command line: ``adl demo`` and ``adl rank``."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from adl.errors import AdlError

app = typer.Typer(help="Exchange auto-deleveraging (ADL) engine.", no_args_is_help=True, add_completion=False)
console = Console()


def show(frame: pl.DataFrame, title: str, limit: int = 10) -> None:
    """Prints a frame as a rich table (first ``limit`` rows)."""
    table = Table(title=title, title_justify="left")
    for c in frame.columns:
        table.add_column(c, justify="right" if frame[c].dtype.is_numeric() else "left")
    for row in frame.head(limit).iter_rows():
        table.add_row(*("" if v is None else f"{v:,.4f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)
    if frame.height > limit:
        console.print(f"[dim]... {frame.height - limit} more rows[/dim]")


@app.command()
def demo(
    insurance_fund: float = typer.Option(300.0, help="Insurance fund at the start (quote)."),
    policy: str = typer.Option("bitmex", help="ADL policy: bitmex, binance, hyperliquid, dydx, min_max_leverage, "
                               "size_pro_rata, wealth_pro_rata, levered_pro_rata."),
) -> None:
    """Runs the bundled demo: a 2,000-position book, a price shock, the waterfall and ADL.

    Example: adl demo --insurance-fund 100 --policy size_pro_rata
    """
    from adl.demo import MARKS, SHOCK, SLIPPAGE, run_demo

    try:
        run = run_demo(insurance_fund=insurance_fund, policy=policy)  # type: ignore[arg-type]
    except AdlError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(code=2) from None
    eng, res = run.engine, run.result
    console.rule("[bold]adl demo: a price shock through the liquidation waterfall")
    shock = ", ".join(f"{s} {MARKS[s]:g} -> {SHOCK[s]:g}" for s in MARKS)
    console.print(f"Marks move: {shock}. The book fills liquidations {SLIPPAGE:.1%} worse than the mark.")
    if run.before.height:
        lights = run.before.group_by("symbol", "side", "lights").len().sort("symbol", "side", "lights", descending=[False, False, True])
        show(lights.pivot(on="lights", index=["symbol", "side"], values="len").fill_null(0), "Queue lights before the shock (positions per light)")
    else:
        console.print(f"[dim]{policy} ranks nobody: no queue lights.[/dim]")
    show(run.liquidated.select("account", "symbol", "side", "qty", "equity", "maintenance", "bankruptcy_price"),
         f"{run.liquidated.height} positions below maintenance, worst first")
    fills = res.fills
    by_kind = fills.group_by("symbol", "kind").agg(fills=pl.len(), qty=pl.col("qty").sum()).sort("symbol", "kind")
    show(by_kind, "Fills by kind (external = order book, adl = counterparties, bad_debt = nobody left)")
    show(fills.filter(pl.col("kind") == "adl").select("event", "symbol", "bankrupt_account", "account", "side", "qty", "price", "rank", "score"),
         "First ADL fills (counterparty side, queue rank, score)")
    hit = fills.filter(pl.col("kind") == "adl").group_by("account", "symbol", "side").agg(qty=pl.col("qty").sum(), events=pl.len())
    show(hit.sort("qty", descending=True), "Most deleveraged counterparties")
    ledger = pl.DataFrame(
        {
            "item": ["insurance fund at start", "paid into fund", "paid out of fund", "insurance fund at end", "bad debt"],
            "quote": [run.fund_start, res.to_fund, res.from_fund, eng.insurance_fund, eng.bad_debt],
        }
    )
    show(ledger, "Insurance fund ledger")
    t = eng.totals()
    console.print(
        f"Open interest after: long {t['long_lots']:,} lots, short {t['short_lots']:,} lots "
        f"(ADL closes both sides equally; book fills only the bankrupt side)."
    )
    if eng.indicator().height:
        show(eng.indicator().group_by("symbol", "side").agg(positions=pl.len(), top_score=pl.col("score").max()).sort("symbol", "side"),
             "Queues after the cascade")


@app.command()
def rank(
    positions: Path = typer.Argument(..., help="Parquet or CSV with account, [symbol], side, qty, entry_price, margin."),
    mark: float = typer.Option(..., help="Mark price (one market) or the price for every symbol."),
    out: Path = typer.Option(None, help="Write the ranked book as Parquet here."),
) -> None:
    """Ranks a book in its ADL queues and prints the head of each queue.

    Example: adl rank book.parquet --mark 96 --out ranked.parquet
    """
    import adl

    try:
        book = pl.read_parquet(positions) if positions.suffix == ".parquet" else pl.read_csv(positions)
        ranked = adl.rank(book, mark=mark)
    except (AdlError, OSError, pl.exceptions.PolarsError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(code=2) from None
    show(ranked.filter(pl.col("rank").is_not_null()).sort("rank"), f"{positions.name}: ranked at mark {mark:g}")
    if out is not None:
        ranked.write_parquet(out)
        console.print(f"wrote {out}")


if __name__ == "__main__":
    app()

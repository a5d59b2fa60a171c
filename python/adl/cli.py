"""Command line: ``adl demo``, ``rank``, ``scenario``, ``simulate``, ``compare`` and ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from adl.errors import AdlError

if TYPE_CHECKING:
    from adl.cascade import SimulationResult

app = typer.Typer(help="Exchange auto-deleveraging (ADL) engine.", no_args_is_help=True, add_completion=False)
console = Console()


# What bad files and arguments raise: a message and exit code 2, not a traceback.
BAD_INPUT = (AdlError, OSError, ValueError, pl.exceptions.PolarsError)


def _fail(e: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {e}")
    return typer.Exit(code=2)


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
        raise _fail(e) from None
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
    mark: float = typer.Option(..., help="Mark price of a one-symbol book (a book of several symbols is refused)."),
    out: Path = typer.Option(None, help="Write the ranked book as Parquet here."),
) -> None:
    """Ranks a book in its ADL queues and prints the head of each queue.

    Example: adl rank book.parquet --mark 96 --out ranked.parquet
    """
    import adl

    try:
        ranked = adl.rank(adl.read_positions(positions), mark=mark)
    except BAD_INPUT as e:
        raise _fail(e) from None
    show(ranked.filter(pl.col("rank").is_not_null()).sort("rank"), f"{positions.name}: ranked at mark {mark:g}")
    if out is not None:
        ranked.write_parquet(out)
        console.print(f"wrote {out}")


def _names(policies: str) -> list[str]:
    """Policies from a comma-separated option."""
    return [p.strip() for p in policies.split(",") if p.strip()]


def _load(positions: Path, prices: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    import adl

    return adl.read_positions(positions), adl.read_prices(prices)


def _run(positions: Path, prices: Path, policies: list[str], fund: float, mmr: float, bps: float,
         horizon: int, keep_fills: bool) -> list[SimulationResult]:
    """Simulations with a rich progress bar (one task per policy)."""
    from rich.progress import Progress

    import adl

    book, path = _load(positions, prices)
    results = []
    with Progress(console=console, transient=True) as bar:
        for p in policies:
            task = bar.add_task(f"simulating {p}", total=None)

            def tick(done: int, total: int, task: Any = task) -> None:
                bar.update(task, completed=done, total=total)

            results.append(adl.simulate(
                book, path, policy=p, insurance_fund=fund, maintenance_rate=mmr,  # type: ignore[arg-type]
                liquidation=adl.Slippage(bps_per_million=bps), horizon=horizon, keep_fills=keep_fills, progress=tick,
            ))
    return results


FUND = typer.Option(1e6, "--insurance-fund", help="Insurance fund at the start (quote).")
MMR = typer.Option(0.005, "--maintenance-rate", help="Maintenance-margin rate of every market.")
BPS = typer.Option(5.0, "--bps-per-million", help="Liquidation slippage: basis points per million of quote notional.")
HORIZON = typer.Option(0, "--horizon", help="Δ for the haircuts x(Δ), in the prices' ts unit.")


@app.command()
def scenario(
    out: Path = typer.Argument(..., help="Directory for positions.parquet and prices.parquet."),
    positions: int = typer.Option(100_000, help="Number of positions."),
    drop: float = typer.Option(0.15, help="Fall of the crash (0.15 = 15 %)."),
    steps: int = typer.Option(1_000, help="Price steps (one per second of ts in ms)."),
    seed: int = typer.Option(0, help="Seed of the book and the path."),
) -> None:
    """Writes a seeded synthetic book and crash path.

    Example: adl scenario run1 --positions 1000000 --drop 0.2
    """
    import adl

    out.mkdir(parents=True, exist_ok=True)
    adl.synthetic_book(positions, seed=seed).write_parquet(out / "positions.parquet")
    adl.crash_path(drop=drop, steps=steps, duration=min(600, steps), seed=seed).write_parquet(out / "prices.parquet")
    console.print(f"wrote {out / 'positions.parquet'} and {out / 'prices.parquet'}")


@app.command()
def simulate(
    positions: Path = typer.Argument(..., help="Positions (Parquet or CSV)."),
    prices: Path = typer.Argument(..., help="Price path with ts, symbol, mark (Parquet or CSV)."),
    policy: str = typer.Option("bitmex", help="ADL policy."),
    insurance_fund: float = FUND,
    maintenance_rate: float = MMR,
    bps_per_million: float = BPS,
    horizon: int = HORIZON,
    out: Path = typer.Option(None, help="Directory for liquidations, fund, accounts, fills and summary Parquet files."),
) -> None:
    """Runs a liquidation cascade along a price path and prints who paid.

    Example: adl simulate run1/positions.parquet run1/prices.parquet --policy bitmex --insurance-fund 0 --out res
    """
    try:
        (res,) = _run(positions, prices, [policy], insurance_fund, maintenance_rate, bps_per_million, horizon, out is not None)
    except BAD_INPUT as e:
        raise _fail(e) from None
    show(res.summary.transpose(include_header=True, column_names=["value"]), f"{policy}: summary", limit=30)
    show(res.accounts.head(10), "Most-hit accounts")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("liquidations", "fund", "accounts", "fills", "summary"):
            getattr(res, name).write_parquet(out / f"{name}.parquet")
        console.print(f"wrote {out}/{{liquidations,fund,accounts,fills,summary}}.parquet")


@app.command()
def compare(
    positions: Path = typer.Argument(..., help="Positions (Parquet or CSV)."),
    prices: Path = typer.Argument(..., help="Price path with ts, symbol, mark (Parquet or CSV)."),
    policies: str = typer.Option("bitmex,size_pro_rata,min_max_leverage", help="Comma-separated policies."),
    insurance_fund: float = FUND,
    maintenance_rate: float = MMR,
    bps_per_million: float = BPS,
    horizon: int = HORIZON,
    out: Path = typer.Option(None, help="Write the comparison as Parquet here."),
    report: Path = typer.Option(None, help="Also write an HTML report here (needs the report extra)."),
) -> None:
    """Runs the same cascade under several policies and compares who paid.

    Example: adl compare run1/positions.parquet run1/prices.parquet --policies bitmex,size_pro_rata --report r.html
    """
    try:
        results = _run(positions, prices, _names(policies), insurance_fund, maintenance_rate, bps_per_million, horizon, False)
    except BAD_INPUT as e:
        raise _fail(e) from None
    table = pl.concat([r.summary for r in results], how="vertical_relaxed")
    show(table.select("policy", "liquidations", "bad_debt", "fund_min", "adl_notional", "accounts_hit", "need",
                      "haircut", "max_haircut_pct"), "Policies compared")
    if out is not None:
        table.write_parquet(out)
        console.print(f"wrote {out}")
    if report is not None:
        from adl.report import write_report

        console.print(f"wrote {write_report(results, report)}")


@app.command()
def report(
    positions: Path = typer.Argument(..., help="Positions (Parquet or CSV)."),
    prices: Path = typer.Argument(..., help="Price path with ts, symbol, mark (Parquet or CSV)."),
    out: Path = typer.Option(Path("adl-report.html"), help="HTML file to write."),
    policies: str = typer.Option("bitmex,size_pro_rata,min_max_leverage", help="Comma-separated policies."),
    insurance_fund: float = FUND,
    maintenance_rate: float = MMR,
    bps_per_million: float = BPS,
    horizon: int = HORIZON,
) -> None:
    """Writes a self-contained HTML report: price path, fund, liquidation and ADL volume, who paid.

    Example: adl report run1/positions.parquet run1/prices.parquet --out report.html
    """
    try:
        from adl.report import write_report

        results = _run(positions, prices, _names(policies), insurance_fund, maintenance_rate, bps_per_million, horizon, False)
        path = write_report(results, out)
    except (*BAD_INPUT, ImportError) as e:
        raise _fail(e) from None
    console.print(f"wrote {path}")


if __name__ == "__main__":
    app()

"""Command line: ``adl demo``, ``rank``, ``scenario``, ``simulate``, ``compare``, ``report`` and ``severity``."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adl._io import POLICIES
from adl.errors import AdlError

if TYPE_CHECKING:
    from adl.cascade import SimulationResult

app = typer.Typer(help="Exchange auto-deleveraging (ADL) engine.", no_args_is_help=True)
console = Console()

PolicyName = Enum("PolicyName", {p: p for p in POLICIES}, type=str)  # type: ignore[misc]
"""The policies as typer choices (with shell completion), from the one list in adl._io."""


class Lights(str, Enum):
    """How queue lights bucket the queue (docs/model.md §3)."""

    by_count = "count"
    by_quantity = "quantity"


class TriggerName(str, Enum):
    """When ADL bypasses the fund (docs/model.md §5; :class:`adl.Engine`'s ``trigger``)."""

    fund_empty = "fund_empty"
    drawdown = "drawdown"
    symbol_drawdown = "symbol_drawdown"
    fund_drop = "fund_drop"


class Format(str, Enum):
    """How a command prints its result: a rich table, or JSON / CSV on stdout, or Parquet
    (to ``--out``)."""

    table = "table"
    json = "json"
    csv = "csv"
    parquet = "parquet"


# What bad files and arguments raise: a message and exit code 2, not a traceback.
BAD_INPUT = (AdlError, OSError, ValueError, pl.exceptions.PolarsError)


def _fail(e: Exception) -> typer.Exit:
    # Escaped: messages hold "[row 3]" and file names that rich would read as markup.
    console.print(f"[red]error:[/red] {escape(str(e))}")
    return typer.Exit(code=2)


def _version(value: bool) -> None:
    if value:
        from adl import __version__

        console.print(f"adl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Exchange auto-deleveraging (ADL) engine."""


def _policies(text: str) -> list[str]:
    """Policies from a comma-separated option, each one known."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICIES]
    if not names or unknown:
        raise typer.BadParameter(f"unknown policy {unknown or text!r}; expected some of: {', '.join(POLICIES)}")
    return names


def _writable(out: Path | None, option: str = "--out") -> Path | None:
    """Checks before any work that ``out`` can be written (its directory exists and is writable)."""
    if out is None:
        return None
    parent = out.resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise typer.BadParameter(f"cannot write {out}: {parent} is not a writable directory", param_hint=option)
    if out.is_dir() and option != "--out-dir":
        raise typer.BadParameter(f"{out} is a directory", param_hint=option)
    return out


def emit(frame: pl.DataFrame, title: str, fmt: Format, out: Path | None = None, limit: int = 10) -> None:
    """Prints ``frame`` in ``fmt`` (JSON and CSV go to stdout whole), or writes Parquet to ``out``."""
    if fmt is Format.table:
        show(frame, title, limit)
    elif fmt is Format.json:
        sys.stdout.write(frame.write_json() + "\n")
    elif fmt is Format.csv:
        sys.stdout.write(frame.write_csv())
    elif out is None:
        raise typer.BadParameter("--format parquet needs --out", param_hint="--format")
    if out is not None:
        frame.write_parquet(out)
        if fmt is Format.table:
            console.print(f"wrote {escape(str(out))}")


def show(frame: pl.DataFrame, title: str, limit: int = 10) -> None:
    """Prints a frame as a rich table (first ``limit`` rows)."""
    table = Table(title=escape(title), title_justify="left")
    for c in frame.columns:
        table.add_column(c, justify="right" if frame[c].dtype.is_numeric() else "left")
    for row in frame.head(limit).iter_rows():
        table.add_row(*("" if v is None else f"{v:,.4f}" if isinstance(v, float) else escape(str(v)) for v in row))
    console.print(table)
    if frame.height > limit:
        console.print(f"[dim]... {frame.height - limit} more rows[/dim]")


@app.command()
def demo(
    insurance_fund: float = typer.Option(300.0, help="Insurance fund at the start (quote)."),
    policy: PolicyName = typer.Option(PolicyName("bitmex"), help="ADL policy."),
) -> None:
    """Runs the bundled demo: a 2,000-position book, a price shock, the waterfall and ADL.

    Example: adl demo --insurance-fund 100 --policy size_pro_rata
    """
    from adl.demo import MARKS, SHOCK, SLIPPAGE, run_demo

    try:
        run = run_demo(insurance_fund=insurance_fund, policy=policy.value)
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
        console.print(f"[dim]{policy.value} ranks nobody: no queue lights.[/dim]")
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
        f"Open interest after: long {t.long_lots:,} lots, short {t.short_lots:,} lots "
        f"(ADL closes both sides equally; book fills only the bankrupt side)."
    )
    if eng.indicator().height:
        show(eng.indicator().group_by("symbol", "side").agg(positions=pl.len(), top_score=pl.col("score").max()).sort("symbol", "side"),
             "Queues after the cascade")


@app.command()
def rank(
    positions: Path = typer.Argument(..., help="Parquet or CSV: account, symbol (optional), side, qty, entry_price, margin."),
    mark: float = typer.Option(None, help="Mark price of a one-symbol book."),
    marks: Path = typer.Option(None, help="Marks per symbol: Parquet or CSV with symbol, mark."),
    policy: PolicyName = typer.Option(PolicyName("bitmex"), help="ADL policy (one that ranks)."),
    lights: Lights = typer.Option(None, "--lights", help="Queue lights by count or by cumulative quantity (default: the policy's)."),
    fmt: Format = typer.Option(Format.table, "--format", help="Output: table, json, csv or parquet (with --out)."),
    out: Path = typer.Option(None, help="Write the ranked book as Parquet here."),
) -> None:
    """Ranks a book in its ADL queues and prints the head of each queue.

    Example: adl rank book.parquet --marks marks.csv --out ranked.parquet
    """
    import adl

    _writable(out)
    if (mark is None) == (marks is None):
        raise typer.BadParameter("give --mark (one-symbol book) or --marks (a file of symbol, mark)", param_hint="--mark")
    try:
        at: float | dict[str, float] = mark if marks is None else adl.read_marks(marks)
        ranked = adl.rank(adl.read_positions(positions), mark=at, policy=policy.value,
                          lights=None if lights is None else lights.value)
    except BAD_INPUT as e:
        raise _fail(e) from None
    label = f"mark {mark:g}" if mark is not None else f"the marks of {marks}"
    emit(ranked.filter(pl.col("rank").is_not_null()).sort("rank") if fmt is Format.table else ranked,
         f"{positions.name}: ranked at {label}", fmt, out)


# Pro-rata events touch every opposite position: on big books a cascade takes minutes.
PRO_RATA = tuple(p for p in POLICIES if p.endswith("_pro_rata"))
SLOW_BOOK = 200_000


def _run(positions: Path, prices: Path, policies: list[str], fund: float, mmr: float, bps: float,
         horizon: int, keep_fills: bool, accounts: Path | None = None, markets: Path | None = None,
         engine_options: dict[str, Any] | None = None) -> list[SimulationResult]:
    """Simulations with a rich progress bar and time estimate (one task per policy).
    ``engine_options`` (the options given on the command line) override the markets file's ``[engine]``."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    import adl

    book, path = adl.read_positions(positions), adl.read_prices(prices)
    wallets = None if accounts is None else adl.read_accounts(accounts)
    specs, engine = ({}, {}) if markets is None else adl.read_markets(markets)
    slow = [p for p in policies if p in PRO_RATA]
    if slow and book.height >= SLOW_BOOK:
        console.print(f"[yellow]note:[/yellow] {', '.join(slow)} on {book.height:,} positions: every ADL event fills about "
                      "one counterparty per lot, so this may take minutes (the bar estimates the time left).")
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        for p in policies:
            task = bar.add_task(f"simulating {p}", total=None)

            def tick(done: int, total: int, task: Any = task) -> None:
                bar.update(task, completed=done, total=total)

            settings: dict[str, Any] = {"maintenance_rate": mmr, **engine,
                                        **{k: v for k, v in (engine_options or {}).items() if v is not None}}
            results.append(adl.simulate(
                book, path, policy=p, insurance_fund=fund,  # type: ignore[arg-type]
                liquidation=adl.Slippage(bps_per_million=bps), horizon=horizon, keep_fills=keep_fills, progress=tick,
                accounts=wallets, markets=specs or None, **settings,
            ))
    return results


FUND = typer.Option(1e6, "--insurance-fund", help="Insurance fund at the start (quote).")
MMR = typer.Option(0.005, "--maintenance-rate", help="Maintenance-margin rate of every market.")
BPS = typer.Option(5.0, "--bps-per-million", help="Liquidation slippage: basis points per million of quote notional.")
HORIZON = typer.Option(0, "--horizon", help="Δ for the haircuts x(Δ), in the prices' ts unit.")
ACCOUNTS = typer.Option(None, "--accounts", help="Account wallets for cross margin: Parquet or CSV with account, cash.")
MARKETS = typer.Option(None, "--markets", help="Market parameters (grids, tiers, fees, pools, trigger) as TOML.")
TRIGGER = typer.Option(None, "--trigger", help="When ADL bypasses the fund (default fund_empty; overrides the markets file).")
MIN_BALANCE = typer.Option(None, "--trigger-min-balance", help="symbol_drawdown: the trigger applies only while the pool holds more.")
LIGHTS = typer.Option(None, "--lights", help="Queue lights by count or by cumulative quantity (default: the policy's).")


def _engine_options(trigger: TriggerName | None, min_balance: float | None, lights: Lights | None) -> dict[str, Any]:
    return {"trigger": None if trigger is None else trigger.value, "trigger_min_balance": min_balance,
            "lights": None if lights is None else lights.value}

FORMAT = typer.Option(Format.table, "--format", help="Output: table, json, csv or parquet (with --out).")


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

    if not 0.0 <= drop < 1.0:
        raise typer.BadParameter(f"{drop} would take prices to or below 0; a fall is in [0, 1)", param_hint="--drop")
    if positions < 1 or steps < 2:
        raise typer.BadParameter("need at least 1 position and 2 steps", param_hint="--positions/--steps")
    out.mkdir(parents=True, exist_ok=True)
    adl.synthetic_book(positions, seed=seed).write_parquet(out / "positions.parquet")
    adl.crash_path(drop=drop, steps=steps, duration=min(600, steps), seed=seed).write_parquet(out / "prices.parquet")
    console.print(f"wrote {escape(str(out / 'positions.parquet'))} and {escape(str(out / 'prices.parquet'))}")


@app.command()
def simulate(
    positions: Path = typer.Argument(..., help="Positions (Parquet or CSV)."),
    prices: Path = typer.Argument(..., help="Price path with ts, symbol, mark (Parquet or CSV)."),
    policy: PolicyName = typer.Option(PolicyName("bitmex"), help="ADL policy."),
    insurance_fund: float = FUND,
    maintenance_rate: float = MMR,
    bps_per_million: float = BPS,
    horizon: int = HORIZON,
    accounts: Path = ACCOUNTS,
    markets: Path = MARKETS,
    trigger: TriggerName = TRIGGER,
    trigger_min_balance: float = MIN_BALANCE,
    lights: Lights = LIGHTS,
    fmt: Format = FORMAT,
    out: Path = typer.Option(None, help="Directory for liquidations, fund, accounts, fills and summary Parquet files."),
) -> None:
    """Runs a liquidation cascade along a price path and prints who paid. ``--out`` also writes
    the queues left after the cascade (``queue.parquet``: rank and lights by ``--lights``).

    Example: adl simulate run1/positions.parquet run1/prices.parquet --policy bitmex --insurance-fund 0 --out res
    """
    if out is not None and out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} is a file; --out is a directory", param_hint="--out")
    _writable(out, "--out-dir")
    try:
        (res,) = _run(positions, prices, [policy.value], insurance_fund, maintenance_rate, bps_per_million, horizon,
                      out is not None, accounts, markets, _engine_options(trigger, trigger_min_balance, lights))
    except BAD_INPUT as e:
        raise _fail(e) from None
    if fmt is Format.table:
        show(res.summary.transpose(include_header=True, column_names=["value"]), f"{policy.value}: summary", limit=30)
        show(res.accounts.head(10), "Most-hit accounts")
    elif fmt is not Format.parquet:
        emit(res.summary, "summary", fmt)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("liquidations", "fund", "accounts", "fills", "summary"):
            getattr(res, name).write_parquet(out / f"{name}.parquet")
        res.engine.indicator().write_parquet(out / "queue.parquet")
        console.print(f"wrote {escape(str(out))}/{{liquidations,fund,accounts,fills,summary,queue}}.parquet")


@app.command()
def compare(
    positions: Path = typer.Argument(..., help="Positions (Parquet or CSV)."),
    prices: Path = typer.Argument(..., help="Price path with ts, symbol, mark (Parquet or CSV)."),
    policies: str = typer.Option("bitmex,size_pro_rata,min_max_leverage", help="Comma-separated policies."),
    insurance_fund: float = FUND,
    maintenance_rate: float = MMR,
    bps_per_million: float = BPS,
    horizon: int = HORIZON,
    accounts: Path = ACCOUNTS,
    markets: Path = MARKETS,
    trigger: TriggerName = TRIGGER,
    trigger_min_balance: float = MIN_BALANCE,
    lights: Lights = LIGHTS,
    fmt: Format = FORMAT,
    out: Path = typer.Option(None, help="Write the comparison as Parquet here."),
    report: Path = typer.Option(None, help="Also write an HTML report here (needs the report extra)."),
) -> None:
    """Runs the same cascade under several policies and compares who paid.

    Example: adl compare run1/positions.parquet run1/prices.parquet --policies bitmex,size_pro_rata --report r.html
    """
    names = _policies(policies)
    _writable(out)
    _writable(report, "--report")
    try:
        results = _run(positions, prices, names, insurance_fund, maintenance_rate, bps_per_million, horizon, False,
                       accounts, markets, _engine_options(trigger, trigger_min_balance, lights))
    except BAD_INPUT as e:
        raise _fail(e) from None
    table = pl.concat([r.summary for r in results], how="vertical_relaxed")
    shown = table.select("policy", "liquidations", "bad_debt", "fund_min", "adl_notional", "accounts_hit", "deficit_covered",
                         "haircut", "max_haircut_pct") if fmt is Format.table else table
    emit(shown, "Policies compared", fmt, out)
    if report is not None:
        from adl.reporting import write_report

        console.print(f"wrote {escape(str(write_report(results, report)))}")


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
    accounts: Path = ACCOUNTS,
    markets: Path = MARKETS,
    trigger: TriggerName = TRIGGER,
    trigger_min_balance: float = MIN_BALANCE,
    lights: Lights = LIGHTS,
) -> None:
    """Writes a self-contained HTML report: price path, fund, liquidation and ADL volume, who paid.

    Example: adl report run1/positions.parquet run1/prices.parquet --out report.html
    """
    names = _policies(policies)
    _writable(out)
    try:
        from adl.reporting import write_report

        results = _run(positions, prices, names, insurance_fund, maintenance_rate, bps_per_million, horizon, False,
                       accounts, markets, _engine_options(trigger, trigger_min_balance, lights))
        path = write_report(results, out)
    except (*BAD_INPUT, ImportError) as e:
        raise _fail(e) from None
    console.print(f"wrote {escape(str(path))}")


@app.command()
def severity(
    lam: float = typer.Option(1.0, "--lam", help="Weight λ of the fairness term."),
    theta0: float = typer.Option(0.5, help="First-round θ of the online controllers."),
    rounds: bool = typer.Option(False, "--rounds", help="Also print need and budget per round."),
    out: Path = typer.Option(None, help="Write every policy's per-round losses as Parquet here."),
    chart: Path = typer.Option(None, help="Write a per-round chart here: one self-contained HTML file (needs the report extra)."),
) -> None:
    """The severity lab on Hyperliquid's 10 Oct 2025 ADL (16 waves, docs/severity.md): each
    policy's tracking, fairness and total loss and its share of B_inst; online policies never
    see a round's need before deciding.

    Example: adl severity --lam 2 --rounds
    """
    from adl import severity as sv

    try:
        data = sv.hl_oct10()
        table = sv.lab(data, lam=lam, theta0=theta0).sort("online", "total", descending=[True, False])
    except BAD_INPUT as e:
        raise _fail(e) from None
    console.print(f"16 waves, λ = {lam}: P = {data.path_length():.4f}, B_inst = {data.envelope():,.0f} USD")
    show(table.select("policy", "online", "tracking", "fairness", "total", "pct_envelope", "gap", "gap_oracle"),
         "Policies (USD; pct_envelope = % of B_inst; gap = total - best ex-post; gap_oracle = total - oracle θ*)", limit=table.height)
    if rounds or out is not None or chart is not None:
        decisions = pl.concat([data.recorded.filter(pl.col("policy") == "production")]
                              + [sv.run(data, c) for c in sv.online_baselines(theta0, lam)])
        if chart is not None:
            try:
                console.print(f"wrote {sv.chart(data, decisions, chart)}")
            except (ImportError, OSError) as e:
                raise _fail(e) from None
        per = sv.losses(data, decisions, lam=lam)
        if rounds:
            wide = per.pivot(on="policy", index=["round", "label", "deficit", "need"], values="seized")
            show(wide, "Per round: need and the budget each online policy seized (USD)", limit=wide.height)
        if out is not None:
            per.write_parquet(out)
            console.print(f"wrote {out}")


if __name__ == "__main__":
    app()

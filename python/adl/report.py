"""A self-contained HTML report of one or more simulations (``pip install adl[report]``):
price path, fund balance, liquidation and ADL volume over time, who paid under each policy,
and the most-hit accounts. Plots are matplotlib PNGs embedded in the page."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from adl.cascade import SimulationResult


def _figure() -> tuple[Any, Any]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the extra
        raise ImportError("adl report needs matplotlib: pip install 'adl[report]'") from e
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
    return plt, (fig, ax)


def _png(plt: Any, fig: Any) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _plot(title: str, ylabel: str, series: Sequence[tuple[str, Sequence[float], Sequence[float]]], kind: str = "line") -> str:
    plt, (fig, ax) = _figure()
    for label, x, y in series:
        if kind == "step":
            ax.step(x, y, where="post", label=label)
        else:
            ax.plot(x, y, label=label)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return _png(plt, fig)


def _who_paid(results: Sequence[SimulationResult]) -> str:
    """Haircuts sorted from the largest down, per policy: how concentrated the loss is."""
    plt, (fig, ax) = _figure()
    for r in results:
        h = r.accounts["haircut"].sort(descending=True).to_list()
        if h:
            ax.plot(range(1, len(h) + 1), h, label=r.policy)
    ax.set_xscale("log")
    ax.set_title("Who paid: haircut x(Δ) per account, largest first")
    ax.set_xlabel("accounts (rank, log scale)")
    ax.set_ylabel("haircut (quote)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(plt, fig)


def _table(df: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    rows = []
    for row in df.iter_rows():
        cells = "".join(f"<td>{v:,.4g}</td>" if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>" for v in row)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def write_report(results: Sequence[SimulationResult], path: str | Path, title: str = "ADL simulation report") -> Path:
    """Writes the report of ``results`` (one per policy, same book and path) to ``path``."""
    if not results:
        raise ValueError("write_report needs at least one simulation result")
    first = results[0]
    prices = first._prices
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts.append("<h2>Summary</h2>" + _table(pl.concat([r.summary for r in results], how="vertical_relaxed")))
    parts.append(_plot(
        "Price path", "mark",
        [(s, g["ts"].to_list(), g["mark"].to_list()) for (s,), g in prices.group_by("symbol", maintain_order=True)],
    ))
    parts.append(_plot("Insurance fund", "fund (quote)", [(r.policy, r.fund["ts"].to_list(), r.fund["fund"].to_list()) for r in results], "step"))
    parts.append(_plot(
        "Liquidated and ADL notional per step", "notional (quote)",
        [("liquidated", first.fund["ts"].to_list(), first.fund["liquidated_notional"].to_list())]
        + [(f"ADL ({r.policy})", r.fund["ts"].to_list(), r.fund["adl_notional"].to_list()) for r in results],
    ))
    parts.append(_who_paid(results))
    for r in results:
        top = r.accounts.head(10).select("account", "adl_qty", "adl_notional", "haircut", "equity_start", "haircut_pct")
        parts.append(f"<h2>Most-hit accounts: {html.escape(r.policy)}</h2>" + _table(top))
    style = ("body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}img{display:block;margin:1em 0}")
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>{''.join(parts)}</body></html>"
    out = Path(path)
    out.write_text(page, encoding="utf-8")
    return out

"""A self-contained, interactive HTML report of one or more simulations, for a risk committee
(``pip install 'adl[report]'``: plotly charts with plotly.js inlined, great_tables tables; one
file, no server, no network).

It shows the run's parameters, the summary per policy, the cascade's timeline, each symbol's
price as % from its start (one panel per symbol), the insurance fund, liquidation and ADL
volume, who paid (haircut histograms, Lorenz curves and Gini), bad debt per symbol, the
most-hit accounts and a glossary of every metric with its unit and sign (:data:`GLOSSARY`). Runs
of ``simulate(..., severity=controller)`` add a severity section: per round the budget, the
ex-post need, what was seized and the bad debt, and each controller's losses at λ = 0.5, 1, 2.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from adl.inequality import gini, lorenz

if TYPE_CHECKING:
    from adl.cascade import SimulationResult

# (name, unit, sign, meaning). "quote" = the settlement currency (the quote, or the coin of an
# inverse market). Summary columns first, then per-account columns.
GLOSSARY: tuple[tuple[str, str, str, str], ...] = (
    ("steps", "count", "≥ 0", "Distinct timestamps of the price path; each one moves the marks and liquidates."),
    ("liquidations", "count", "≥ 0", "Positions liquidated (a cross account counts once per position)."),
    ("liquidated_notional", "quote", "≥ 0", "Σ qty × mark of the liquidated positions."),
    ("adl_events", "count", "≥ 0", "Liquidations that auto-deleveraged at least one lot."),
    ("adl_notional", "quote", "≥ 0", "Σ qty × mark of the lots closed by ADL."),
    ("accounts_hit", "count", "≥ 0", "Counterparty accounts that had at least one lot closed by ADL."),
    ("bad_debt", "quote", "≥ 0", "Deficit nobody covered: neither the fund nor ADL (socialised loss); "
     "docs/model.md §4 calls it the residual."),
    ("fund_start / fund_min / fund_end", "quote", "≥ 0",
     "Insurance fund at the start, its lowest point within any step, and at the end. The fund never goes negative."),
    ("loss_vs_mark", "quote", "either; usually < 0",
     "Σ σ·q·(mark − P_ADL) over the ADL fills: what closing at the ADL price instead of the mark cost the "
     "counterparties. Negative means they were closed at a better price than the mark: a position is liquidated "
     "at its liquidation price, before its bankruptcy price P_bk, so ADL at P_bk buys its counterparties out "
     "inside the mark. Positive only when the mark gapped past P_bk. (Was called need.)"),
    ("deficit_covered", "quote", "≥ 0",
     "Σ σ_b·q·(P_ADL − F) over the ADL lots (σ_b: the bankrupt side, F: the book's fill price): the loss those "
     "lots would have left had they been sold to the book, which ADL took over instead. "
     "= loss_vs_mark + the book's slippage on the ADL lots."),
    ("haircut", "quote", "either; > 0 = paid",
     "x(Δ) = Σ σ·q·(P_{t+Δ} − P_ADL): the profit the counterparties gave up by being closed at the ADL price, "
     "valued horizon Δ later. Negative when the price moved against them after the event (ADL spared them a loss). "
     "At Δ = 0 it equals loss_vs_mark."),
    ("overshoot", "quote", "either; > 0 = took more than covered",
     "haircut − deficit_covered: what the counterparties gave up beyond the deficit they covered."),
    ("haircut_pct", "% of equity", "either",
     "100 × haircut / equity_start, per account. It can exceed 100 %: the haircut is profit forgone on the "
     "closed lots (no account loses cash to ADL), and a position at 20× leverage whose price moves 50 % its "
     "way earns 10 times its equity (1,000 %)."),
    ("max_haircut_pct", "% of equity", "either", "The largest haircut_pct over the accounts hit."),
    ("equity_start", "quote", "either", "The account's equity at the path's first marks (margin + unrealised PnL)."),
    ("profit_taken", "quote", "≥ 0", "Σ over the closed lots of their unrealised profit at the event's mark (w)."),
    ("ptsr", "ratio", "≥ 0; null when bad_debt = 0",
     "Profit-to-shortfall ratio, docs/model.md §4: max_i(w_i − x_i)⁺ / bad_debt: the most profit any account "
     "kept, per unit of uncovered deficit."),
    ("pmr", "ratio", "≥ 0; null when bad_debt = 0",
     "Profit-to-max-loss ratio, docs/model.md §4: max_i(w_i − x_i)⁺ / ((bad_debt / D) · max loss), "
     "D = deficit_covered + bad_debt, max loss the largest fund draw plus bad debt of one liquidation."),
    ("horizon", "ts units (ms)", "≥ 0", "Δ: how much later the haircuts are valued."),
    ("gini", "0–1", "≥ 0",
     "Gini coefficient of the haircuts (negative ones count as 0): 0 = everyone paid the same, near 1 = one paid all."),
    ("severity round", "–", "–",
     "With simulate(..., severity=controller): one liquidation whose lots reach ADL after the fund (docs/severity.md)."),
    ("θ, budget", "0–1; quote", "≥ 0",
     "The controller's severity θ_t and budget B_t = θ_t·D_t, D_t the deficit the round's lots leave at the book's "
     "price. The engine deleverages at most ⌊θ_t·Q_t⌋ of the round's Q_t lots; the rest close against the book "
     "(fund, then bad debt)."),
    ("need (B_t^needed)", "quote", "≥ 0",
     "Ex-post: the deficit the round's Q_t lots carry at the mark Δ later, (Σ σ_b·q·(P_ADL − P_{t+Δ}))⁺. "
     "The controller learns it only once Δ has passed."),
    ("seized (H_t)", "quote", "≥ 0", "The deficit the round's ADL'd lots took over (deficit_covered of the round). "
     "Overshoot = (seized − need)⁺, undershoot = (need − seized)⁺, summed over the rounds."),
    ("tracking, fairness, total", "quote", "≥ 0",
     "Round-model losses (docs/model.md §8): |H_t − B_t^needed|; λ·B_t^needed·|m_t − m_t^ILP| with m the worst "
     "burden (lots closed / lots held) and m^ILP the exact min-max integer program's at the need; their sum. "
     "% of B_inst: the total over the instance envelope √((1 + 2P)·Σ D_t²) of that run."),
)

_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;padding:1.5em;max-width:1100px;"
    "color:#1f2933}h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #d9dee3;padding-bottom:.2em}"
    ".note{color:#52606d;font-size:14px}.gt_table{width:100%!important}"
)


def _plotly() -> tuple[Any, Any, Any]:
    try:
        import plotly.graph_objects as go  # type: ignore[import-untyped]
        from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]
        from plotly.subplots import make_subplots  # type: ignore[import-untyped]
    except ImportError as e:  # pragma: no cover - depends on the extra
        raise ImportError("adl.report needs plotly and great_tables: pip install 'adl[report]'") from e
    return go, make_subplots, get_plotlyjs


def _gt(df: pl.DataFrame) -> Any:
    try:
        from great_tables import GT
    except ImportError as e:  # pragma: no cover - depends on the extra
        raise ImportError("adl.report needs plotly and great_tables: pip install 'adl[report]'") from e
    return GT(df)


def _labels(results: Sequence[SimulationResult]) -> list[str]:
    """One label per result: its policy (and severity controller), numbered when one repeats."""
    seen: dict[str, int] = {}
    out = []
    for r in results:
        name = r.policy if r.severity is None else f"{r.policy} · {r.severity.policy}"
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return out


def is_epoch_ms(ts0: int) -> bool:
    """Whether a path's first ``ts`` reads as epoch milliseconds (after 1973 and before 5138)."""
    return 10**11 <= ts0 < 10**14


def time_axis(ts: pl.Series, ts0: int) -> tuple[list[Any], str]:
    """``ts`` (ms) for a chart axis: datetimes (UTC) when the path's first ``ts0`` is epoch
    milliseconds, else seconds from the start.

    >>> import polars as pl
    >>> time_axis(pl.Series([0, 1_500, 3_000]), 0)
    ([0.0, 1.5, 3.0], 'seconds from start')
    >>> time_axis(pl.Series([1_760_000_000_000]), 1_760_000_000_000)[0][0].isoformat()
    '2025-10-09T08:53:20'
    """
    if isinstance(ts.dtype, pl.Datetime):   # a path given as datetimes: its results carry them
        ts = ts.dt.epoch("ms")
    if is_epoch_ms(ts0):
        return pl.from_epoch(ts, time_unit="ms").to_list(), "time (UTC)"
    return ((ts - ts0) / 1000.0).to_list(), "seconds from start"


def _when(ts: int | Any | None, ts0: int) -> str | None:
    if ts is None:
        return None
    if not isinstance(ts, int):   # a datetime (the path's ts were datetimes)
        ts = int(pl.Series([ts]).dt.epoch("ms").item())
    if is_epoch_ms(ts0):
        return str(pl.from_epoch(pl.Series([ts]), time_unit="ms")[0])
    return f"{(ts - ts0) / 1000.0:g} s"


def identical_groups(labels: Sequence[str], series: Sequence[pl.Series]) -> list[list[int]]:
    """Indices of equal series grouped, in first-seen order (so identical curves are drawn once
    and labelled with every policy they stand for).

    >>> identical_groups(["a", "b", "c"], [pl.Series([1, 2]), pl.Series([1, 3]), pl.Series([1, 2])])
    [[0, 2], [1]]
    """
    groups: list[list[int]] = []
    for i, s in enumerate(series):
        for g in groups:
            if series[g[0]].equals(s):
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


def _group_name(labels: Sequence[str], group: Sequence[int]) -> str:
    names = [labels[i] for i in group]
    return names[0] if len(names) == 1 else f"{' = '.join(names)} (identical)"


def _figure_html(fig: Any) -> str:
    fig.update_layout(template="plotly_white", margin={"l": 60, "r": 20, "t": 60, "b": 50}, font={"size": 12})
    return str(fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True}))


# ----- sections ------------------------------------------------------------------------------


def _parameters(results: Sequence[SimulationResult], labels: Sequence[str]) -> str:
    first = results[0]
    p = first.params
    ts = first._prices["ts"]
    ts0 = int(ts.min()) if ts.len() else 0  # type: ignore[arg-type]
    span = (int(ts.max()) - ts0) / 1000.0 if ts.len() else 0.0  # type: ignore[arg-type]
    slip = p.get("slippage")
    rows: list[tuple[str, str]] = [
        ("policies", ", ".join(labels)),
        ("book", f"{p.get('positions', '?'):,} positions, {p.get('accounts', '?'):,} accounts"
         if isinstance(p.get("positions"), int) else "?"),
        ("symbols", ", ".join(map(str, p.get("symbols", sorted(set(first._prices["symbol"])))))),
        ("price path", f"{ts.n_unique():,} steps over {span:,.0f} s"
         + (f", from {_when(ts0, ts0)} UTC" if is_epoch_ms(ts0) else "")),
        ("insurance fund at start", f"{first.summary['fund_start'][0]:,.2f} quote"),
        ("horizon Δ of the haircuts", f"{first.horizon:,} ms ({first.horizon / 1000.0:g} s)"),
    ]
    if slip is not None:
        rows.append(("liquidation slippage", f"{slip.bps_per_million:g} bp per million of notional (this order + the "
                     f"last {slip.window / 1000.0:g} s of liquidations in the market), capped at {slip.max_bps:g} bp"))
    for key, label in (("maintenance_rate", "maintenance margin rate"), ("trigger", "ADL trigger"),
                       ("adl_price", "ADL price"), ("seed", "seed")):
        if key in p:
            rows.append((label, str(p[key])))
    if "decimals" in p:
        d = p["decimals"]
        rows.append(("decimals (cash, qty, price)", f"{d['cash']}, {d['qty']}, {d['price']}"))
    df = pl.DataFrame(rows, schema=["parameter", "value"], orient="row")
    return str(_gt(df).tab_options(column_labels_hidden=True).as_raw_html())


_SUMMARY_ROWS = (  # (column, label, decimals)
    ("liquidations", "liquidations", 0), ("liquidated_notional", "liquidated notional (quote)", 2),
    ("adl_events", "ADL events", 0), ("adl_notional", "ADL notional (quote)", 2), ("accounts_hit", "accounts hit", 0),
    ("fund_start", "fund at start (quote)", 2), ("fund_min", "fund low (quote)", 2), ("fund_end", "fund at end (quote)", 2),
    ("bad_debt", "bad debt (quote)", 2), ("deficit_covered", "deficit covered by ADL (quote)", 2),
    ("loss_vs_mark", "counterparties' loss vs mark (quote)", 2), ("haircut", "haircut x(Δ) (quote)", 2),
    ("overshoot", "overshoot (quote)", 2), ("max_haircut_pct", "largest haircut (% of equity)", 1),
    ("gini", "Gini of haircuts", 3), ("ptsr", "PTSR", 3), ("pmr", "PMR", 3),
)


def _summary(results: Sequence[SimulationResult], labels: Sequence[str]) -> str:
    """Metrics as rows, one column per policy: fits the page whatever the number of metrics."""
    data: dict[str, list[Any]] = {"metric": [label for _, label, _ in _SUMMARY_ROWS]}
    for r, name in zip(results, labels):
        s = r.summary.row(0, named=True)
        s["gini"] = gini(r.accounts["haircut"].to_numpy())
        data[name] = [s.get(col) for col, _, _ in _SUMMARY_ROWS]
    df = pl.DataFrame(data, schema={"metric": pl.String, **{n: pl.Float64 for n in labels}}).with_columns(
        pl.col(list(labels)).fill_nan(None))
    gt = _gt(df)
    for decimals in {d for _, _, d in _SUMMARY_ROWS}:
        rows = [i for i, (_, _, d) in enumerate(_SUMMARY_ROWS) if d == decimals]
        gt = gt.fmt_number(columns=list(labels), rows=rows, decimals=decimals, use_seps=True)
    gt = gt.sub_missing(columns=list(labels), missing_text="— (no bad debt)")
    return str(gt.cols_label(metric="").as_raw_html())


def _timeline(results: Sequence[SimulationResult], labels: Sequence[str], ts0: int) -> str:
    names = {"first_liquidation": "first liquidation", "fund_exhausted": "insurance fund exhausted",
             "first_adl": "first ADL", "first_bad_debt": "first bad debt", "peak": "peak (most notional liquidated)"}
    data: dict[str, list[Any]] = {"moment": list(names.values())}
    for r, name in zip(results, labels):
        t = r.timeline
        data[name] = [None if ts is None else f"{_when(ts, ts0)} (step {step})"
                      for ts, step in zip(t["ts"].to_list(), t["step"].to_list())]
    df = pl.DataFrame(data, schema={"moment": pl.String, **{n: pl.String for n in labels}})
    return str(_gt(df).sub_missing(missing_text="never").cols_label(moment="").as_raw_html())


def _prices(first: SimulationResult, ts0: int) -> str:
    go, make_subplots, _ = _plotly()
    px = first._prices
    symbols = px["symbol"].unique(maintain_order=True).to_list()
    cols = 1 if len(symbols) == 1 else 2
    rows = math.ceil(len(symbols) / cols)
    starts = {s: float(g["mark"][0]) for (s,), g in px.group_by("symbol", maintain_order=True)}
    fig = make_subplots(rows=rows, cols=cols, shared_xaxes=True, vertical_spacing=0.12 / max(rows, 1) + 0.04,
                        subplot_titles=[f"{s} (start {starts[s]:,.6g})" for s in symbols])
    for i, ((s,), g) in enumerate(px.group_by("symbol", maintain_order=True)):
        x, xtitle = time_axis(g["ts"], ts0)
        pct = ((g["mark"] / starts[str(s)] - 1.0) * 100.0).to_list()
        fig.add_trace(go.Scatter(x=x, y=pct, mode="lines", name=str(s), showlegend=False,
                                 hovertemplate="%{y:.2f} %<extra>" + html.escape(str(s)) + "</extra>"),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_yaxes(ticksuffix=" %", title_text="% from start")
    fig.update_xaxes(title_text=xtitle, row=rows)
    fig.update_layout(height=260 * rows + 60, title="Mark price, % change from each symbol's start")
    return _figure_html(fig)


def _fund(results: Sequence[SimulationResult], labels: Sequence[str], ts0: int) -> str:
    go, make_subplots, _ = _plotly()
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=["Insurance fund (end of step)", "Liquidated notional per step",
                                        "ADL notional per step"])
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    xtitle = "seconds from start"
    shown: set[str] = set()
    for row, col in ((1, "fund"), (2, "liquidated_notional"), (3, "adl_notional")):
        groups = identical_groups(labels, [r.fund[col] for r in results])
        for k, g in enumerate(groups):
            r = results[g[0]]
            x, xtitle = time_axis(r.fund["ts"], ts0)
            name = _group_name(labels, g)
            dash = ["solid", "dash", "dot", "dashdot"][k % 4]
            fig.add_trace(go.Scatter(x=x, y=r.fund[col].to_list(), mode="lines", line_shape="hv", name=name,
                                     legendgroup=name, showlegend=name not in shown,
                                     line={"color": colours[g[0] % len(colours)], "dash": dash}),
                          row=row, col=1)
            shown.add(name)
    # The cascade's turning points on the fund curve of each policy.
    for i, (r, name) in enumerate(zip(results, labels)):
        t = r.timeline.filter(pl.col("ts").is_not_null() & pl.col("moment").is_in(["fund_exhausted", "first_adl", "peak"]))
        if not t.height:
            continue
        at = t.join(r.fund.select("ts", "fund"), on="ts", how="left")
        x, _ = time_axis(at["ts"], ts0)
        fig.add_trace(go.Scatter(x=x, y=at["fund"].to_list(), mode="markers", name=f"{name}: turning points",
                                 marker={"color": colours[i % len(colours)], "size": 10, "symbol": "diamond-open"},
                                 text=[m.replace("_", " ") for m in at["moment"].to_list()],
                                 hovertemplate="%{text}<br>fund %{y:,.2f}<extra>" + html.escape(name) + "</extra>"),
                      row=1, col=1)
    fig.update_yaxes(title_text="quote", tickformat=",~f")
    fig.update_xaxes(title_text=xtitle, row=3)
    fig.update_layout(height=760, title="Fund, liquidations and ADL over time",
                      legend={"orientation": "h", "y": -0.12})
    return _figure_html(fig)


def _haircuts(results: Sequence[SimulationResult], labels: Sequence[str]) -> str:
    go, make_subplots, _ = _plotly()
    hit = [(r, n) for r, n in zip(results, labels) if r.accounts.height]
    if not hit:
        return "<p class='note'>No account was auto-deleveraged under any policy: there is no haircut to show.</p>"
    fig = make_subplots(rows=1, cols=2, subplot_titles=["Haircut as % of starting equity (accounts hit)",
                                                        "Lorenz curve of haircuts"], horizontal_spacing=0.1)
    for i, (r, name) in enumerate(hit):
        pct = r.accounts["haircut_pct"].drop_nulls().to_list()
        fig.add_trace(go.Histogram(x=pct, name=name, legendgroup=name, opacity=0.6, nbinsx=40,
                                   hovertemplate="%{x}: %{y} accounts<extra>" + html.escape(name) + "</extra>"),
                      row=1, col=1)
        x, y = lorenz(r.accounts["haircut"].to_numpy())
        g = gini(r.accounts["haircut"].to_numpy())
        fig.add_trace(go.Scatter(x=(x * 100).tolist(), y=(y * 100).tolist(), mode="lines", legendgroup=name,
                                 name=f"{name}: Gini {g:.3f}" if math.isfinite(g) else f"{name}: no positive haircut",
                                 line={"dash": ["solid", "dash", "dot", "dashdot"][i % 4]}), row=1, col=2)
    fig.add_trace(go.Scatter(x=[0, 100], y=[0, 100], mode="lines", name="equal shares",
                             line={"color": "#9aa5b1", "dash": "dot"}), row=1, col=2)
    fig.update_layout(barmode="overlay", height=420, title="Who paid: haircut distributions per policy",
                      legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(title_text="haircut (% of equity at start)", ticksuffix=" %", row=1, col=1)
    fig.update_yaxes(title_text="accounts", row=1, col=1)
    fig.update_xaxes(title_text="accounts, smallest haircut first (%)", ticksuffix=" %", row=1, col=2)
    fig.update_yaxes(title_text="share of all haircuts (%)", ticksuffix=" %", row=1, col=2)
    return _figure_html(fig)


def bad_debt_by_symbol(results: Sequence[SimulationResult], labels: Sequence[str]) -> pl.DataFrame:
    """``policy, symbol, bad_debt``: every (policy, symbol) of the runs, 0.0 where there was none.

    >>> import adl, polars as pl
    >>> book = pl.DataFrame({"account": [1], "side": ["long"], "qty": [10.0], "entry_price": [100.0], "margin": [50.0]})
    >>> path = pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [100.0, 90.0]})
    >>> res = adl.simulate(book, path, insurance_fund=0.0, liquidation=adl.Slippage(0.0))
    >>> bad_debt_by_symbol([res], ["bitmex"]).rows()      # 10 × (95 − 90): nobody to deleverage
    [('bitmex', 'default', 50.0)]
    """
    frames = []
    for r, name in zip(results, labels):
        symbols = pl.DataFrame({"symbol": r._prices["symbol"].unique(maintain_order=True)})
        per = r.liquidations.group_by("symbol").agg(pl.col("bad_debt").sum())
        frames.append(symbols.join(per, on="symbol", how="left").select(
            pl.lit(name).alias("policy"), "symbol", pl.col("bad_debt").fill_null(0.0)))
    return pl.concat(frames)


def _bad_debt(results: Sequence[SimulationResult], labels: Sequence[str]) -> str:
    go, _, _ = _plotly()
    df = bad_debt_by_symbol(results, labels)
    if float(df["bad_debt"].sum()) <= 0:
        return "<p class='note'>No bad debt under any policy: the fund and ADL covered every deficit.</p>"
    fig = go.Figure()
    for (name,), g in df.group_by("policy", maintain_order=True):
        fig.add_trace(go.Bar(x=g["symbol"].to_list(), y=g["bad_debt"].to_list(), name=str(name),
                             hovertemplate="%{x}: %{y:,.2f}<extra>" + html.escape(str(name)) + "</extra>"))
    fig.update_layout(barmode="group", height=360, title="Bad debt per symbol", yaxis={"title": "quote", "tickformat": ",.2f"})
    return _figure_html(fig)


def _most_hit(r: SimulationResult) -> str:
    top = r.accounts.head(10).select("account", "adl_qty", "adl_notional", "profit_taken", "loss_vs_mark", "haircut",
                                     "equity_start", "haircut_pct")
    if not top.height:
        return "<p class='note'>No account was auto-deleveraged.</p>"
    gt = _gt(top)
    if top.schema["account"].is_integer():   # string ids (UUIDs, names) are shown as they are
        gt = gt.fmt_integer(columns="account", use_seps=False)
    gt = (gt.fmt_number(columns=["adl_qty", "adl_notional", "profit_taken", "loss_vs_mark", "haircut", "equity_start"],
                      decimals=2)
          .fmt_number(columns="haircut_pct", decimals=1, pattern="{x} %")
          .sub_missing(missing_text="—"))
    return str(gt.as_raw_html())


def severity_table(results: Sequence[SimulationResult], labels: Sequence[str],
                   lams: Sequence[float] = (0.5, 1.0, 2.0)) -> pl.DataFrame:
    """The severity losses of every run that has them, one row per (run, λ): ``run, lam,
    online, rounds, tracking, fairness, total, pct_envelope, need, seized, overshoot, undershoot,
    adl_qty, bad_debt``.

    >>> import adl, polars as pl
    >>> book = pl.DataFrame({"account": [1, 2, 3], "side": ["long", "short", "short"],
    ...     "qty": [10.0, 6.0, 6.0], "entry_price": [100.0] * 3, "margin": [50.0, 100.0, 300.0]})
    >>> path = pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [100.0, 94.0]})
    >>> res = adl.simulate(book, path, insurance_fund=0.0, liquidation=adl.Slippage(0.0),
    ...                    severity=adl.severity.FixedTheta(0.5))
    >>> severity_table([res], ["half"], lams=[1.0]).select("run", "tracking", "bad_debt").row(0)   # 5 of 10 lots
    ('half', 5.0, 5.0)
    """
    frames = [r.severity.summary(lam).select(pl.lit(name).alias("run"), pl.lit(lam).alias("lam"), pl.exclude("policy"))
              for r, name in zip(results, labels) if r.severity is not None for lam in lams]
    cols = ["run", "lam", "online", "rounds", "tracking", "fairness", "total", "pct_envelope", "need", "seized",
            "overshoot", "undershoot", "adl_qty", "bad_debt"]
    return pl.concat(frames).select(cols).sort("lam", maintain_order=True) if frames else pl.DataFrame()


def _severity(results: Sequence[SimulationResult], labels: Sequence[str]) -> str:
    """Per round, each controller's budget against the need it could not see; then the losses."""
    go, make_subplots, _ = _plotly()
    runs = [(r, n) for r, n in zip(results, labels) if r.severity is not None]
    fig = make_subplots(rows=len(runs), cols=1, vertical_spacing=0.3 / max(len(runs), 1),
                        subplot_titles=[f"{n}: {r.severity.table.height} rounds" for r, n in runs])  # type: ignore[union-attr]
    for i, (r, name) in enumerate(runs):
        t = r.severity.table  # type: ignore[union-attr]
        x = t["round"].to_list()
        legend = i == 0
        for col, label, style in (("need", "need B^needed (ex-post)", {"color": "black", "dash": "dot"}),
                                  ("budget", "budget θ·D", {"color": "#1f77b4"}),
                                  ("seized", "seized H (ADL done)", {"color": "#2ca02c"}),
                                  ("bad_debt", "bad debt", {"color": "#d62728"})):
            fig.add_trace(go.Scatter(x=x, y=t[col].to_list(), mode="lines+markers", name=label, legendgroup=label,
                                     showlegend=legend, line=style, marker={"size": 5},
                                     hovertemplate="round %{x}: %{y:,.2f}<extra>" + html.escape(f"{name}: {label}") + "</extra>"),
                          row=i + 1, col=1)
        fig.update_yaxes(title_text="quote", tickformat=",~f", row=i + 1, col=1)
    fig.update_xaxes(title_text="round (liquidation that reached ADL)", row=len(runs), col=1)
    fig.update_layout(height=300 * len(runs) + 120, title="Budget against need per severity round",
                      legend={"orientation": "h", "y": -0.08})
    table = severity_table(results, labels)
    gt = (_gt(table).fmt_number(columns=["tracking", "fairness", "total", "need", "seized", "overshoot", "undershoot",
                                         "adl_qty", "bad_debt"],
                                decimals=2, use_seps=True)
          .fmt_number(columns="pct_envelope", decimals=1, pattern="{x} %").fmt_number(columns="lam", decimals=1)
          .sub_missing(missing_text="—").cols_label(pct_envelope="% of B_inst", lam="λ"))
    note = ("<p class='note'>Each controller's cascade is its own: a cap changes who is left for later events, so "
            "rounds, need and B_inst differ between runs; compare totals. The need is revealed to a controller only "
            "once the horizon Δ has passed.</p>")
    return _figure_html(fig) + note + str(gt.as_raw_html())


def _glossary() -> str:
    df = pl.DataFrame(list(GLOSSARY), schema=["metric", "unit", "sign", "meaning"], orient="row")
    return str(_gt(df).cols_width({"metric": "17%", "unit": "10%", "sign": "13%", "meaning": "60%"}).as_raw_html())


def report(results: SimulationResult | Sequence[SimulationResult], path: str | Path, *,
           title: str = "ADL simulation report") -> Path:
    """Writes the report of ``results`` (one per policy, same book and path: what
    :func:`adl.compare` returns with ``return_results=True``) to ``path``, one HTML file with
    everything inlined, and returns the path.

    >>> import adl, polars as pl, tempfile, pathlib
    >>> book = pl.DataFrame({"account": [1, 2, 3], "side": ["long", "short", "short"],
    ...     "qty": [10.0, 6.0, 6.0], "entry_price": [100.0] * 3, "margin": [50.0, 100.0, 300.0]})
    >>> path = pl.DataFrame({"ts": [0, 1_000], "symbol": ["default"] * 2, "mark": [100.0, 94.0]})
    >>> _, results = adl.compare(book, path, policies=["bitmex", "size_pro_rata"], insurance_fund=0.0,
    ...                          return_results=True)
    >>> out = adl.report(results, pathlib.Path(tempfile.mkdtemp()) / "r.html")
    >>> "Glossary" in out.read_text()
    True
    """
    # One run or several (told apart without importing adl.cascade, which imports this module).
    runs: list[SimulationResult] = (
        [results] if hasattr(results, "summary") else list(results))  # type: ignore[list-item]
    if not runs:
        raise ValueError("report needs at least one simulation result")
    _, _, get_plotlyjs = _plotly()
    labels = _labels(runs)
    first = runs[0]
    ts0 = int(first._prices["ts"].min()) if first._prices.height else 0  # type: ignore[arg-type]
    axis = "UTC (ts read as epoch ms)" if is_epoch_ms(ts0) else "seconds from the path's start (ts read as ms)"
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>{len(runs)} run(s) of the same book and price path; times are {axis}. Charts are "
        "interactive: hover for values, drag to zoom, click a legend entry to hide it. Units and signs of every "
        "metric are in the glossary at the end.</p>",
        "<h2>Parameters</h2>", _parameters(runs, labels),
        "<h2>Summary</h2>", _summary(runs, labels),
        "<h2>Cascade timeline</h2>", _timeline(runs, labels, ts0),
        "<h2>Prices</h2>", _prices(first, ts0),
        "<h2>Fund, liquidations and ADL</h2>", _fund(runs, labels, ts0),
        "<h2>Who paid</h2>", _haircuts(runs, labels),
        "<h2>Bad debt per symbol</h2>", _bad_debt(runs, labels),
    ]
    if any(r.severity is not None for r in runs):
        parts += ["<h2>Severity: budget, need and losses</h2>", _severity(runs, labels)]
    for r, name in zip(runs, labels):
        parts += [f"<h2>Most-hit accounts: {html.escape(name)}</h2>", _most_hit(r)]
    parts += ["<h2>Glossary</h2>", _glossary()]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style><script type='text/javascript'>{get_plotlyjs()}</script></head>"
            f"<body>{''.join(parts)}</body></html>")
    out = Path(path)
    out.write_text(page, encoding="utf-8")
    return out


write_report = report  # the name the CLI and earlier releases used

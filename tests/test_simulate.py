"""The cascade simulator: hand-computed steps, agreement with the naive full-rescan loop,
the summary identities, and the CLI and report around it."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import adl
from naive import simulate_naive
from adl.cli import app

WHOLE = {"cash_decimals": 2, "qty_decimals": 0, "price_decimals": 0}


def test_one_step_by_hand() -> None:
    # Long 10 @100 m50 (P_bk 95); shorts 6 @100 m100 and 6 @100 m300. Mark 97: equity
    # 50 − 30 = 20 ≥ 4.85, nothing. Mark 94: equity −10, the fund is empty, the book fill is
    # the mark (no slippage): ADL 10 lots at 95, the more levered short first (6), then 4.
    book = pl.DataFrame({"account": [1, 2, 3], "side": ["long", "short", "short"], "qty": [10.0, 6.0, 6.0],
                         "entry_price": [100.0] * 3, "margin": [50.0, 100.0, 300.0]})
    path = pl.DataFrame({"ts": [0, 10, 20, 30], "symbol": ["default"] * 4, "mark": [100.0, 97.0, 94.0, 90.0]})
    res = adl.simulate(book, path, insurance_fund=0.0, liquidation=adl.Slippage(0.0), horizon=10, **WHOLE)
    assert res.liquidations.select("ts", "account", "qty", "fill_price", "adl_qty").rows() == [(20, 1, 10.0, 94.0, 10.0)]
    assert res.fills.select("account", "qty", "price").rows() == [(2, 6.0, 95.0), (3, 4.0, 95.0)]
    assert res.fund["liquidations"].to_list() == [0, 0, 1, 0]
    acc = dict((r["account"], r) for r in res.accounts.iter_rows(named=True))
    # loss_vs_mark: σ·q·(mark − P_ADL) = −q·(94 − 95) = q for the shorts (the mark gapped past
    # P_bk); haircut Δ = 10 later (mark 90): −q·(90 − 95) = 5q; profit taken: q·(100 − 94) = 6q.
    assert (acc[2]["loss_vs_mark"], acc[2]["haircut"], acc[2]["profit_taken"]) == (6.0, 30.0, 36.0)
    assert (acc[3]["loss_vs_mark"], acc[3]["haircut"], acc[3]["profit_taken"]) == (4.0, 20.0, 24.0)
    s = res.summary.row(0, named=True)
    # The deficit ADL covered equals the bankrupt equity −10 (the book fills at the mark: no
    # slippage, so it is also the loss against the mark); the haircut 10 later is 50.
    assert (s["loss_vs_mark"], s["deficit_covered"], s["haircut"], s["overshoot"], s["bad_debt"], s["accounts_hit"]) == (
        10.0, 10.0, 50.0, 40.0, 0.0, 2)
    assert s["ptsr"] is None and "residual" not in s   # no bad debt: undefined (null); no duplicate column
    assert res.engine.liquidatable().height == 0


def test_deficit_covered_and_timeline_by_hand() -> None:
    # Longs 10 @100: #2 margin 30 (P_bk 97, liquidation price 970/9.95 = 97.487), #1 margin 50
    # (P_bk 95, 950/9.95 = 95.477); the short #3 takes the ADL. Slippage 50,000 bp per million.
    book = pl.DataFrame({"account": [1, 2, 3], "side": ["long", "long", "short"], "qty": [10.0, 10.0, 20.0],
                         "entry_price": [100.0] * 3, "margin": [50.0, 30.0, 600.0]})
    path = pl.DataFrame({"ts": [0, 1_000, 2_000, 3_000], "symbol": ["default"] * 4, "mark": [100.0, 97.4, 95.4, 90.0]})
    res = adl.simulate(book, path, insurance_fund=0.8, liquidation=adl.Slippage(50_000.0), horizon=1_000,
                       cash_decimals=2, qty_decimals=0, price_decimals=2)
    # ts 1000: #2 (notional 974: 48.7 bp) fills at floor(97.4·(1 − 0.00487)) = 96.92, d = 0.08
    # per lot: the fund pays 10·0.08 = 0.80 and is empty. ts 2000: #1 (954 + 974 in the window:
    # 96.4 bp) fills at floor(95.4·(1 − 0.00964)) = 94.48, the fund has nothing: ADL 10 at 95.
    assert res.liquidations.select("ts", "account", "fill_price", "from_fund", "adl_qty").rows() == [
        (1_000, 2, 96.92, 0.8, 0.0), (2_000, 1, 94.48, 0.0, 10.0)]
    s = res.summary.row(0, named=True)
    # The short closes at 95, inside the mark 95.4: loss_vs_mark = −10·(95.4 − 95) = −4. The
    # deficit it took over is 10·(95 − 94.48) = 5.2 = −4 + the book's slippage 10·(95.4 − 94.48).
    # Haircut 1 s later (mark 90): −10·(90 − 95) = 50; overshoot 50 − 5.2 = 44.8.
    assert (s["loss_vs_mark"], s["deficit_covered"], s["haircut"], s["overshoot"]) == pytest.approx((-4.0, 5.2, 50.0, 44.8))
    # Its equity at the first mark is its margin 600: haircut 50/600 = 8.33 %.
    assert res.accounts["haircut_pct"].to_list() == pytest.approx([100 * 50 / 600])
    assert res.timeline.rows() == [("first_liquidation", 1_000, 1), ("fund_exhausted", 1_000, 1),
                                   ("first_adl", 2_000, 2), ("first_bad_debt", None, None),
                                   ("peak", 1_000, 1)]   # 974 liquidated at ts 1000 > 954 at ts 2000


def test_slippage_grows_with_size_and_recent_volume() -> None:
    m = adl.Slippage(bps_per_million=10.0, window=60, max_bps=50.0)
    # 1M of notional: 10 bps; with 2M liquidated just before: 30 bps; capped at 50.
    book = pl.DataFrame({"account": [1, 2, 3, 9], "side": ["long", "long", "long", "short"],
                         "qty": [10_000.0, 20_000.0, 100_000.0, 200_000.0], "entry_price": [100.0] * 4,
                         "margin": [50_000.0, 99_000.0, 500_000.0, 1e7]})
    path = pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [100.0, 94.0]})
    res = adl.simulate(book, path, insurance_fund=1e9, liquidation=m)
    fills = dict(zip(res.liquidations["account"], res.liquidations["fill_price"]))
    # Worst first: #2 (2M notional at 94 = 1.88M: 18.8 bps), then #1 (0.94M + 1.88M: 28.2 bps), then #3 (capped).
    assert fills[2] == pytest.approx(94.0 * (1 - 18.8e-4), abs=1e-4)
    assert fills[1] == pytest.approx(94.0 * (1 - 28.2e-4), abs=1e-4)
    assert fills[3] == pytest.approx(94.0 * (1 - 50e-4), abs=1e-4)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(50, 400),
    policy=st.sampled_from(["bitmex", "binance", "size_pro_rata", "min_max_leverage", "hyperliquid"]),
    fund=st.sampled_from([0.0, 200.0, 1e6]),
    bps=st.sampled_from([0.0, 50.0]),
)
def test_simulate_matches_the_naive_rescan_loop(seed: int, n: int, policy: str, fund: float, bps: float) -> None:
    book = adl.synthetic_book(n, seed=seed, symbols=("X", "Y"), median_notional=500.0)
    path = adl.crash_path(symbols=("X", "Y"), steps=40, duration=25, drop=0.2, rebound=0.3, dt=1, noise=0.003, seed=seed)
    model = adl.Slippage(bps_per_million=bps, window=5)
    fast = adl.simulate(book, path, policy=policy, insurance_fund=fund, liquidation=model)  # type: ignore[arg-type]
    slow = simulate_naive(book, path, policy=policy, insurance_fund=fund, liquidation=model)  # type: ignore[arg-type]
    cols = ["ts", "account", "symbol", "side", "qty", "fill_price", "adl_qty", "bad_debt"]
    # (qty on the naive side is a sum of two floats: compared to 1e-8, far below a lot.)
    rounded = [pl.col(c).round(8) if c in ("qty", "fill_price", "adl_qty", "bad_debt") else pl.col(c) for c in cols]
    assert fast.liquidations.select(rounded).equals(slow.select(rounded))
    # Every step ends with nobody below maintenance.
    assert fast.engine.liquidatable().height == 0


def test_compare_runs_each_policy_on_the_same_book() -> None:
    book = adl.synthetic_book(3_000, seed=4)
    path = adl.crash_path(steps=60, duration=40, dt=1_000, drop=0.25, seed=4)
    table = adl.compare(book, path, policies=["bitmex", "size_pro_rata", "min_max_leverage"], insurance_fund=10.0,
                        horizon=5_000)
    assert table["policy"].to_list() == ["bitmex", "size_pro_rata", "min_max_leverage"]
    # Same book, same path: the same liquidations happen before ADL changes anything; the
    # deficit ADL covered is close across policies and pro-rata touches the most accounts.
    assert table["accounts_hit"][1] == table["accounts_hit"].max()
    assert (table["fund_min"] < 10.0).all() and (table["deficit_covered"] > 0).all()


def test_bad_price_files_fail_clearly(tmp_path: Path) -> None:
    book = adl.synthetic_book(100, seed=1)
    with pytest.raises(adl.SchemaError):
        adl.simulate(book, pl.DataFrame({"ts": [0], "mark": [1.0]}))
    with pytest.raises(adl.InvalidInputError) as e:
        adl.simulate(book, pl.DataFrame({"ts": [0, 1], "symbol": ["BTC-PERP"] * 2, "mark": [100.0, float("nan")]}))
    assert (e.value.field, e.value.row) == ("mark", 1)
    with pytest.raises(adl.InvalidInputError):
        adl.simulate(book, pl.DataFrame({"ts": [0], "symbol": ["ETH"], "mark": [1.0]}))
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(adl.SchemaError):
        adl.read_prices(tmp_path / "bad.csv")
    with pytest.raises(adl.StorageError):
        adl.read_positions(tmp_path / "none.parquet")


def test_cli_scenario_simulate_compare_report(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["scenario", str(tmp_path / "s"), "--positions", "2000", "--steps", "50"])
    assert r.exit_code == 0, r.output
    pos, px = str(tmp_path / "s" / "positions.parquet"), str(tmp_path / "s" / "prices.parquet")
    r = runner.invoke(app, ["simulate", pos, px, "--insurance-fund", "50", "--out", str(tmp_path / "res")])
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(tmp_path / "res" / "summary.parquet")["policy"].to_list() == ["bitmex"]
    r = runner.invoke(app, ["compare", pos, px, "--policies", "bitmex,size_pro_rata", "--out", str(tmp_path / "c.parquet")])
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(tmp_path / "c.parquet").height == 2
    r = runner.invoke(app, ["simulate", str(tmp_path / "missing.parquet"), px])
    assert r.exit_code == 2 and "does not exist" in r.output
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    r = runner.invoke(app, ["compare", str(tmp_path / "broken.parquet"), px])
    assert r.exit_code == 2 and "cannot read" in r.output
    r = runner.invoke(app, ["simulate", "--help"])
    assert "Example" in r.output


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        assert not os.environ.get("ADL_REQUIRE_CHROMIUM"), "chromium is required here"
        pytest.skip("chromium is not installed (.ci/run installs it)")
    return browser


def _render(browser: str, page: Path) -> tuple[str, str]:
    """The DOM after the page's scripts ran, and Chromium's log (console messages included)."""
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                          "--host-resolver-rules=MAP * ~NOTFOUND",
                          "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180)
    return run.stdout, run.stderr


def _console(log: str) -> list[str]:
    """The page's console messages (Chromium logs every level as INFO:CONSOLE, uncaught
    exceptions included); the report writes none."""
    return [line for line in log.splitlines() if ":CONSOLE" in line]


def test_the_console_error_check_catches_a_failing_script(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><html><body><p>x</p><script>undefinedFunction()</script></body></html>")
    _, log = _render(_chromium(), page)
    assert any("Uncaught ReferenceError" in line for line in _console(log)), log


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    pytest.importorskip("great_tables")
    browser = _chromium()
    book = adl.synthetic_book(3_000, seed=2, symbols=("BTC-PERP", "DOGE-PERP"))
    path = adl.crash_path(symbols=("BTC-PERP", "DOGE-PERP"), steps=80, duration=50, seed=2)
    table, results = adl.compare(book, path, policies=["bitmex", "size_pro_rata"], insurance_fund=100.0,
                                 horizon=10_000, return_results=True)
    assert table["policy"].to_list() == ["bitmex", "size_pro_rata"]
    one = results[0].report(tmp_path / "one.html")
    assert "Most-hit accounts: bitmex" in one.read_text()
    page = adl.report(results, tmp_path / "report.html")
    text = page.read_text()
    for section in ("Parameters", "Summary", "Cascade timeline", "Who paid", "Bad debt per symbol",
                    "Most-hit accounts: size_pro_rata", "Glossary", "deficit_covered", "max_haircut_pct"):
        assert section in text, section
    # Self-contained: no script, style or font is fetched from anywhere (Chromium below resolves
    # no host name, and plotly must still draw every figure).
    markup = re.sub(r"<script.*?</script>", "", text, flags=re.S)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", markup) and "@import" not in markup
    assert "<script src" not in text
    tables = "".join(re.findall(r"<table.*?</table>", markup, flags=re.S))
    assert tables.count("<table") >= 6 and not re.search(r"\de[+-]?\d", tables)   # no scientific notation
    dom, log = _render(browser, page)
    assert not _console(log), _console(log)
    # plotly.js ran: each figure (prices, fund, haircuts, bad debt if any) drew its SVG.
    figures = text.count("Plotly.newPlot")
    assert figures >= 3 and dom.count('class="main-svg"') >= figures
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--virtual-time-budget=5000", "--window-size=1100,1400", page.as_uri()],
                   check=True, capture_output=True, timeout=180)
    from PIL import Image

    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    colours = len(set(img.getdata()))
    assert hi - lo > 100 and colours > 20, "the screenshot is blank"


def test_report_without_adl_and_identical_fund_curves(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    # A fund large enough that nothing is deleveraged: every policy has the same fund curve,
    # drawn once and labelled with both; no haircut to show, no bad debt.
    book = adl.synthetic_book(500, seed=3)
    path = adl.crash_path(steps=30, duration=20, seed=3)
    _, results = adl.compare(book, path, policies=["bitmex", "size_pro_rata"], insurance_fund=1e9, return_results=True)
    assert all(r.summary["adl_events"].item() == 0 for r in results)
    pyplot_before = "matplotlib.pyplot" in sys.modules
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no legend (or any) warning
        text = adl.report(results, tmp_path / "calm.html").read_text()
    assert "bitmex = size_pro_rata (identical)" in text
    assert "No account was auto-deleveraged under any policy" in text and "No bad debt under any policy" in text
    # A notebook's plotting backend is left alone: the report does not load matplotlib.
    assert ("matplotlib.pyplot" in sys.modules) == pyplot_before


def test_report_helpers_by_hand() -> None:
    from adl.inequality import gini, lorenz
    from adl.reporting import identical_groups, time_axis

    # G = 2·Σ i·x_i / (n·Σx) − (n+1)/n = 2·(1+4+9+16)/(4·10) − 5/4 = 0.25; the mean absolute
    # difference gives the same: Σ|x_i − x_j| = 20 over 2·n²·mean = 80.
    assert gini([4.0, 1.0, 3.0, 2.0]) == pytest.approx(0.25)
    assert gini([5.0, 5.0, 5.0]) == 0.0 and gini([0.0, 0.0, 7.0]) == pytest.approx(2 / 3)
    assert gini([-3.0, 0.0, 6.0]) == pytest.approx(2 / 3)   # negative haircuts count as 0
    assert math.isnan(gini([])) and math.isnan(gini([0.0, -1.0]))
    x, y = lorenz([4.0, 1.0, 3.0, 2.0])
    assert x.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0] and y.tolist() == pytest.approx([0.0, 0.1, 0.3, 0.6, 1.0])
    assert [a.tolist() for a in lorenz([])] == [[0.0, 1.0], [0.0, 1.0]]
    assert identical_groups(["a", "b", "c"], [pl.Series([1.0]), pl.Series([2.0]), pl.Series([1.0])]) == [[0, 2], [1]]
    assert time_axis(pl.Series([5_000, 6_500]), 5_000) == ([0.0, 1.5], "seconds from start")
    when, label = time_axis(pl.Series([1_760_054_400_000]), 1_760_054_400_000)   # 10 Oct 2025 00:00 UTC
    assert label == "time (UTC)" and when[0].isoformat() == "2025-10-10T00:00:00"


def test_result_and_engine_reprs() -> None:
    book = pl.DataFrame({"account": [1, 2, 3], "symbol": ["BTC"] * 3, "side": ["long", "short", "short"],
                         "qty": [10.0, 6.0, 6.0], "entry_price": [100.0] * 3, "margin": [50.0, 100.0, 300.0]})
    path = pl.DataFrame({"ts": [0, 1], "symbol": ["BTC"] * 2, "mark": [100.0, 94.0]})
    res = adl.simulate(book, path, insurance_fund=0.0, liquidation=adl.Slippage(0.0))
    cell = res._repr_html_()
    assert "<table" in cell and "deficit_covered" in cell and "bitmex" in cell
    # The long's 10 lots were deleveraged: #2 closed all 6, #3 keeps 6 − 4 = 2: one position left.
    assert repr(res.engine) == "Engine(policy='bitmex', markets=['BTC'], positions=1, insurance_fund=0.00, bad_debt=0.00)"


def sweep_runs() -> list[dict[str, object]]:
    return [{"positions": 800, "seed": s, "steps": 40, "duration": 25, "drop": 0.25, "insurance_fund": f, "horizon": 5_000}
            for s in (1, 2) for f in (0.0, 50.0)]


def test_local_sweep_equals_single_runs() -> None:
    table = adl.sweep(sweep_runs(), ["bitmex", "size_pro_rata"], backend="local", workers=2)
    assert table.height == 8
    assert table.select("scenario_seed", "scenario_insurance_fund", "policy").rows()[:3] == [
        (1, 0.0, "bitmex"), (1, 0.0, "size_pro_rata"), (1, 50.0, "bitmex")]
    one = adl.simulate(adl.synthetic_book(800, seed=2), adl.crash_path(steps=40, duration=25, drop=0.25, seed=2),
                       policy="size_pro_rata", insurance_fund=50.0, horizon=5_000)
    row = table.filter((pl.col("scenario_seed") == 2) & (pl.col("scenario_insurance_fund") == 50.0)
                       & (pl.col("policy") == "size_pro_rata"))
    assert row.drop([c for c in row.columns if c.startswith("scenario_")]).equals(one.summary)
    with pytest.raises(adl.InvalidInputError):
        adl.sweep(sweep_runs(), ["bitmex"], backend="spark")  # type: ignore[arg-type]


def test_ray_sweep_on_a_local_instance() -> None:
    ray = pytest.importorskip("ray")
    try:
        table = adl.sweep(sweep_runs(), ["bitmex", "min_max_leverage"], backend="ray")
    finally:
        ray.shutdown()
    local = adl.sweep(sweep_runs(), ["bitmex", "min_max_leverage"], backend="local")
    assert table.equals(local)


def test_the_oracles_own_example() -> None:
    import doctest

    import naive

    result = doctest.testmod(naive)
    assert result.attempted > 0 and result.failed == 0


def test_report_severity_section(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    pytest.importorskip("great_tables")
    from adl.reporting import severity_table

    book = adl.synthetic_book(300, seed=5, median_notional=500.0)
    path = adl.crash_path(steps=30, duration=20, drop=0.25, rebound=0.3, dt=1_000, noise=0.003, seed=5)
    controllers = [adl.severity.FixedTheta(1.0, name="production"), adl.severity.FixedTheta(0.5)]
    runs = [adl.simulate(book, path, insurance_fund=20.0, horizon=2_000, keep_fills=False, severity=c,
                         liquidation=adl.Slippage(80.0, window=5_000)) for c in controllers]
    plain = adl.simulate(book, path, insurance_fund=20.0, keep_fills=False)
    labels = ["bitmex · production", "bitmex · fixed_theta"]
    table = severity_table(runs, labels)
    # One row per run and λ; at λ = 0.5 the totals are tracking + fairness; θ = 0.5 ADLs at most half.
    assert table.select("run", "lam").rows() == [(n, lam) for lam in (0.5, 1.0, 2.0) for n in labels]
    assert table["total"].to_list() == pytest.approx((table["tracking"] + table["fairness"]).to_list())
    assert table["adl_qty"][1] <= 0.5 * table["adl_qty"][0] + 1e-9 and table["rounds"][0] > 3
    text = adl.report([*runs, plain], tmp_path / "severity.html").read_text()
    for needle in ("Severity: budget, need and losses", "Budget against need per severity round", "bitmex · fixed_theta",
                   "% of B_inst", "need (B_t^needed)", "tracking, fairness, total"):
        assert needle in text, needle
    markup = re.sub(r"<script.*?</script>", "", text, flags=re.S)
    tables = "".join(re.findall(r"<table.*?</table>", markup, flags=re.S))
    assert not re.search(r"\de[+-]?\d", tables)   # no scientific notation
    # Without severity runs there is no such section.
    assert "Severity: budget" not in adl.report([plain], tmp_path / "plain.html").read_text()
    browser = _chromium()
    dom, log = _render(browser, tmp_path / "severity.html")
    assert not _console(log), _console(log)
    assert dom.count('class="main-svg"') >= text.count("Plotly.newPlot")

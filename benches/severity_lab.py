"""The severity lab on Hyperliquid's 10 Oct 2025 ADL (16 waves): every policy's tracking,
fairness and total loss (docs/model.md §8) and its share of the envelope B_inst, at λ = 0.5, 1
and 2, in one run. Online policies decide each round before its need is known; ex-post ones
(the paper's allocators, OGD at η*, the best fixed θ, the oracle θ*) read the whole record.
``gap`` is a policy's total minus the best ex-post total: the cost of not knowing the need.

    python benches/severity_lab.py [--theta0 0.5]
"""

from __future__ import annotations

import argparse
import time

import polars as pl

from adl import severity


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--theta0", type=float, default=0.5, help="first-round θ of the online controllers")
    args = ap.parse_args()
    rounds = severity.hl_oct10()
    print(f"16 waves: Σ D = {rounds.table['deficit'].sum() / 1e6:.2f}M, Σ need = {rounds.table['need'].sum() / 1e6:.2f}M, "
          f"P = {rounds.path_length():.4f}, B_inst = {rounds.envelope() / 1e6:.2f}M")
    pl.Config.set_tbl_rows(40)
    pl.Config.set_tbl_width_chars(160)
    pl.Config.set_tbl_hide_dataframe_shape(True)
    start = time.perf_counter()
    for lam in (0.5, 1.0, 2.0):
        t = severity.lab(rounds, lam=lam, theta0=args.theta0).sort("online", "total", descending=[True, False])
        print(f"\nλ = {lam}  (USD millions; pct = % of B_inst)")
        print(t.select("policy", "online", *(pl.col(c).truediv(1e6).round(3) for c in ("tracking", "fairness", "total", "gap", "gap_oracle")),
                       pl.col("pct_envelope").round(2).alias("pct")))
    print(f"\n{time.perf_counter() - start:.2f} s")
    instability()
    cascade()


def instability() -> None:
    """Per-account diagnostics on a simulated cascade (1,000 positions, a 30 % crash): the
    Spearman correlation of normalised burdens between adjacent ADL rounds, per policy."""
    import adl

    book = adl.synthetic_book(1_000, seed=1)
    path = adl.crash_path(drop=0.3, steps=200, duration=50, rebound=0.0, noise=0.002)
    rows = []
    for policy in ("bitmex", "min_max_leverage", "size_pro_rata", "wealth_pro_rata"):
        res = adl.simulate(book, path, policy=policy, insurance_fund=0.0, keep_fills=True)
        rho = severity.burden_rank_correlation(severity.cascade_burdens(res.fills, book))["spearman"]
        rows.append({"policy": policy, "adl_rounds": rho.len() + 1, "spearman_mean": rho.mean(), "spearman_min": rho.min()})
    print("\nInstability on a simulated cascade (burden = contracts ADL'd / contracts held):")
    print(pl.DataFrame(rows))


def cascade() -> None:
    """Controllers inside a simulated cascade (``simulate(..., severity=controller)``; 1,000
    positions, a 25 % crash over 30 s with a 60 % rebound, 80 bp of slippage per million, an
    insurance fund of 50): each liquidation that reaches ADL is a round; the need is the
    round's deficit at the mark Δ later. Every controller plays its own cascade."""
    import adl

    book = adl.synthetic_book(1_000, seed=3, median_notional=500.0)
    path = adl.crash_path(steps=90, duration=30, drop=0.25, rebound=0.6, dt=1_000, noise=0.003, seed=3)
    pl.Config.set_tbl_cols(12)
    for horizon in (0, 10_000):
        controllers = [severity.FixedTheta(1.0, name="production"), severity.FixedTheta(0.5)] + severity.online_baselines()
        start = time.perf_counter()
        runs = [adl.simulate(book, path, insurance_fund=50.0, horizon=horizon, keep_fills=False, severity=c,
                             liquidation=adl.Slippage(80.0, window=5_000)) for c in controllers]
        took = time.perf_counter() - start
        print(f"\nSimulated cascade, Δ = {horizon / 1000:g} s ({len(runs)} runs in {took:.1f} s; quote units; "
              "pct = % of that run's B_inst):")
        for lam in (0.5, 1.0, 2.0):
            t = pl.concat([r.severity.summary(lam) for r in runs if r.severity is not None])
            print(f"λ = {lam}")
            print(t.select("policy", "rounds", *(pl.col(c).round(2) for c in ("tracking", "fairness", "total")),
                           pl.col("pct_envelope").round(1).alias("pct"),
                           *(pl.col(c).round(2) for c in ("deficit", "need", "seized", "bad_debt"))))


if __name__ == "__main__":
    main()

"""Size your insurance fund: the smallest fund (on a grid) for which no scenario of a crash
sweep reaches ADL or bad debt (run: python examples/size_fund.py)."""

import polars as pl

import adl

runs = [{"positions": 2_000, "seed": s, "steps": 60, "duration": 40, "drop": d, "insurance_fund": f, "horizon": 0}
        for s in (1, 2) for d in (0.15, 0.25) for f in (0.0, 100.0, 1_000.0, 10_000.0)]
table = adl.sweep(runs, ["bitmex"], backend="local", workers=1)
hit = table.group_by("scenario_insurance_fund").agg(
    p_adl=((pl.col("adl_notional") > 0) | (pl.col("bad_debt") > 0)).mean()
).sort("scenario_insurance_fund")
print(hit)
enough = hit.filter(pl.col("p_adl") == 0.0)
print("smallest fund with no ADL in any scenario:",
      enough["scenario_insurance_fund"].min() if enough.height else "none on this grid")
assert hit["p_adl"].to_list() == sorted(hit["p_adl"].to_list(), reverse=True)  # more fund, less ADL

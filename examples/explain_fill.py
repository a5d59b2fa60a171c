"""Explain one ADL fill by hand: every number below is recomputed from the book and checked
against what the engine did (run: python examples/explain_fill.py)."""

import polars as pl

import adl

# Whole contracts, whole-dollar ticks, cash in cents; maintenance 0.5 %, empty insurance fund.
eng = adl.Engine("bitmex", insurance_fund=0.0, maintenance_rate=0.005, cash_decimals=2, qty_decimals=0, price_decimals=0)
eng.load(pl.DataFrame({
    "account": [1, 2, 3],
    "side": ["long", "short", "short"],
    "qty": [10.0, 10.0, 10.0],
    "entry_price": [100.0, 100.0, 95.0],
    "margin": [20.0, 20.0, 5.0],
}))
eng.set_marks(90.0)  # a 10 % gap down

# The long: equity 20 + 10 * (90 - 100) = -80 < 0, bankruptcy price 100 - 20/10 = 98.
long = eng.positions().filter(pl.col("account") == 1).row(0, named=True)
assert (long["equity"], long["bankruptcy_price"]) == (-80.0, 98.0)

# The shorts' queue (BitMEX: pnl% x leverage): #3 pnl 5/95, leverage 900/55 -> 0.861 first;
# #2 pnl 10/100, leverage 900/120 -> 0.75 second.
queue = eng.indicator().filter(pl.col("side") == "short").sort("rank")
assert queue["account"].to_list() == [3, 2]

res = eng.liquidate(1, side="long")
# #3 heads the queue but cannot pay at 98: its own bankruptcy price is 95 + 5/10 = 95.5, so
# closing at 98 would pay it 5 + 10 * (95 - 98) = -25. It is passed over and keeps its place.
assert res.passed_over.select("account", "reason").rows() == [(3, "beyond_bankruptcy")]
# #2 takes all 10 lots at 98 and receives its margin 20 plus 10 * (100 - 98) = 40.
assert res.fills.select("account", "qty", "price", "kind").rows() == [(2, 10.0, 98.0, "adl")]
assert eng.accounts().filter(pl.col("account") == 2)["cash"].item() == 40.0
# The bankrupt account ends at exactly zero; nothing was lost: no fund payment, no bad debt.
assert (res.from_fund, res.bad_debt) == (0.0, 0.0)
print(res.fills.select("account", "side", "qty", "price", "rank", "score"))
print(res.passed_over)

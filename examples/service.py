"""Run the engine in a service: recover from the operation log, take marks and liquidation
requests, persist every acknowledged call (run: python examples/service.py)."""

import tempfile
from pathlib import Path

import polars as pl

import adl

state = Path(tempfile.mkdtemp())
book = pl.DataFrame({"account": [1, 2, 3], "symbol": ["BTC-PERP"] * 3, "side": ["long", "short", "short"],
                     "qty": [1.0, 1.0, 2.0], "entry_price": [60_000.0] * 3, "margin": [600.0, 6_000.0, 12_000.0]})

# Start: a fresh engine that logs every call before acknowledging it.
eng = adl.Engine("bitmex", insurance_fund=0.0, qty_decimals=3, price_decimals=1, cash_decimals=4)
eng.load(book)
eng.log_to(state / "ops.log")
eng.set_marks({"BTC-PERP": 59_200.0}, ts=1)          # from the mark-price feed
for account, side in eng.liquidatable().select("account", "side").iter_rows():  # the risk loop
    eng.liquidate(account, "BTC-PERP", side)

# After a crash: replay the log into a new engine; it is the same engine.
back = adl.Engine.replay(state / "ops.log")
assert back.positions().equals(eng.positions()) and back.totals() == eng.totals()
print(back.accounts())

# A user's position screen, one request: one account, no whole-book frame. Account 2 was
# deleveraged (1 BTC at the long's bankruptcy price 59,400); account 3 now heads the queue.
screen = back.account(3)
assert screen.positions[0].queue is not None and screen.positions[0].queue.rank == 1
assert back.account(2).positions == ()
print(screen)

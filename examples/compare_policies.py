"""Compare ADL policies on your book: the same crash under several policies, who paid and how
concentrated it was (run: python examples/compare_policies.py)."""

import adl

# A venue-like book would come from your own files: adl.read_positions("book.parquet").
book = adl.synthetic_book(5_000, seed=7, symbols=("BTC-PERP", "ETH-PERP"))
path = adl.crash_path(symbols=("BTC-PERP", "ETH-PERP"), steps=120, duration=60, dt=1_000, drop=0.25, seed=7)
table = adl.compare(book, path, policies=["bitmex", "size_pro_rata", "min_max_leverage"], insurance_fund=50.0,
                    horizon=5_000)
print(table.select("policy", "liquidations", "bad_debt", "adl_notional", "accounts_hit", "haircut"))
# Same book, same path: the policies differ on who pays, not on whether the waterfall balances.
assert table.height == 3 and (table["bad_debt"] >= 0).all()

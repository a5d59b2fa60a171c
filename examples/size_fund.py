"""Size your insurance fund: the smallest fund (on a grid) for which the share of crash
scenarios that reach ADL or bad debt stays below a target (run: python examples/size_fund.py)."""

import adl

# Your own book (adl.read_positions("book.parquet")) and price paths (replayed histories,
# adl.read_prices(...), or generated crashes, as here: one symbol, 10-30 % falls).
book = adl.synthetic_book(2_000, seed=1)
paths = {f"fall {d:.0%} seed {s}": adl.crash_path(steps=60, duration=40, drop=d, seed=s)
         for d in (0.1, 0.2, 0.3) for s in (1, 2)}
answer = adl.size_fund(book, paths, funds=[0.0, 100.0, 1_000.0, 10_000.0, 100_000.0], max_probability=0.2)
print(answer.table)
print("smallest fund with P(ADL or bad debt) < 20 %:", answer.fund)
# More fund never means more scenarios with ADL on this grid.
probabilities = answer.table["probability"].to_list()
assert probabilities == sorted(probabilities, reverse=True)

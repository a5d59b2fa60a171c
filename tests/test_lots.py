"""Allocators of one ADL round (adl.lots): hand-computed cases and properties."""

from __future__ import annotations

import itertools
from fractions import Fraction

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adl
from adl import lots

# u = 3·10 = 30, 1·20 = 20, 5·2 = 10: U = 60.
BOOK = pl.DataFrame({"account": [1, 2, 3], "lots": [3, 1, 5], "lot_value": [10, 20, 2]})


def test_queue_takes_the_largest_capacity_first() -> None:
    # Score = capacity: 30 from account 1, then 15 of account 2's 20.
    assert lots.queue(BOOK, 45)["seized"].to_list() == [30.0, 15.0, 0.0]
    assert lots.queue(BOOK.with_columns(score=pl.Series([0.0, 0.0, 1.0])), 15)["seized"].to_list() == [5.0, 0.0, 10.0]


def test_pro_rata_burden_is_budget_over_capacity() -> None:
    out = lots.pro_rata(BOOK, 30)  # h = 30/60 on everyone
    assert out["seized"].to_list() == pytest.approx([15.0, 10.0, 5.0])
    assert out["burden"].to_list() == pytest.approx([0.5, 0.5, 0.5])
    assert lots.pro_rata(BOOK, 100)["seized"].sum() == pytest.approx(60.0)  # capped at U


def test_mirror_descent_from_zero_and_from_a_start() -> None:
    # From h0 = 0: h = μ·u, Σ u²μ = (900 + 400 + 100)μ = 28 -> μ = 0.02: h = 0.6, 0.4, 0.2.
    out = lots.mirror_descent(BOOK, 28)
    assert out["burden"].to_list() == pytest.approx([0.6, 0.4, 0.2])
    # From h0 = (1, 0, 0), g = 0, budget 30: the projection keeps h = (1, 0, 0) (already feasible).
    start = BOOK.with_columns(start=pl.Series([1.0, 0.0, 0.0]))
    assert lots.mirror_descent(start, 30)["seized"].to_list() == pytest.approx([30.0, 0.0, 0.0])
    # A gradient on account 1: y = (1 - 0.15·10, 0, 0) = (-0.5, 0, 0); Σ u·clip(y - λu) = 30 -> λ < 0:
    # h_i = clip(y_i - λ u_i): with λ = -0.05: (1, 1, 0.5) too much; solve on the segment where
    # account 1 is free (0 < -0.5 - 30λ < 1) and 2, 3 free: 30(-0.5-30λ) + 20(-20λ) + 10(-10λ) = 30
    # -> -15 - 1400λ = 30 -> λ = -45/1400: h = (0.4643, 0.6429, 0.3214).
    grad = BOOK.with_columns(start=pl.Series([1.0, 0.0, 0.0]), gradient=pl.Series([10.0, 0.0, 0.0]))
    h = lots.mirror_descent(grad, 30)["burden"].to_list()
    lam = -45 / 1400
    assert h == pytest.approx([-0.5 - 30 * lam, -20 * lam, -10 * lam])


def test_contract_pro_rata_by_hand() -> None:
    # B = 35: floor(35·3/60) = 1, floor(35/60) = 0, floor(35·5/60) = 2 -> 10 + 0 + 4 = 14, 21 left.
    # Remainders 105 mod 60 = 45, 35, 175 mod 60 = 55: account 3 (+2 -> 16), account 1 (+10 -> 26),
    # account 2 (20 > 9 left: skipped).
    out = lots.contract_pro_rata(BOOK, 35)
    assert out["closed"].to_list() == [2, 0, 3]
    assert out["seized"].to_list() == [20, 0, 6]
    assert out["seized"].dtype == pl.Int64


def test_min_max_lots_by_hand() -> None:
    # B = 35. Candidate levels k/q: 1/5, 1/3, 2/5, 3/5, 2/3, 4/5, 1. Taken(m) = Σ floor(m q_i)·v_i:
    # m = 3/5: 1·10 + 0 + 3·2 = 16; m = 2/3: 2·10 + 0 + 3·2 = 26; m = 4/5: 20 + 0 + 8 = 28;
    # m = 1: 30 + 20 + 10 = 60 >= 35. So m* = 1 (account 2 has one lot: any use of it is burden 1).
    assert lots.min_max_level([3, 1, 5], [10, 20, 2], 35) == Fraction(1)
    # B = 26: m* = 2/3 (Taken(3/5) = 16 < 26 <= Taken(2/3) = 26).
    out = lots.min_max_lots(BOOK, 26)
    assert lots.min_max_level([3, 1, 5], [10, 20, 2], 26) == Fraction(2, 3)
    assert out["closed"].to_list() == [2, 0, 3]
    assert out["burden"].max() == pytest.approx(2 / 3)
    # B = 35 at m* = 1: everyone drops one lot at their level-1 edge (2, 0, 4 -> 28), then the
    # smallest lot covering the 7 short: account 1 (10) -> 38.
    out = lots.min_max_lots(BOOK, 35)
    assert out["closed"].to_list() == [3, 0, 4] and out["seized"].sum() == 38


def test_bad_input_names_the_field() -> None:
    with pytest.raises(adl.InvalidInputError) as e:
        lots.min_max_lots(BOOK.with_columns(lots=pl.Series([1, -1, 2])), 5)
    assert (e.value.field, e.value.row) == ("lots", 1)
    with pytest.raises(adl.InvalidInputError) as e:
        lots.contract_pro_rata(BOOK, 2.5)  # type: ignore[arg-type]
    assert e.value.field == "budget"
    with pytest.raises(adl.SchemaError):
        lots.queue(BOOK.drop("lot_value"), 1.0)


books = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6)), min_size=1, max_size=4).map(
    lambda rows: pl.DataFrame({"account": list(range(1, len(rows) + 1)), "lots": [r[0] for r in rows],
                               "lot_value": [r[1] for r in rows]})
)


def brute_min_max(q: list[int], v: list[int], budget: int) -> Fraction:
    best = Fraction(2)
    for ks in itertools.product(*(range(qi + 1) for qi in q)):
        if sum(k * vi for k, vi in zip(ks, v)) >= budget:
            best = min(best, max((Fraction(k, qi) for k, qi in zip(ks, q) if qi > 0), default=Fraction(0)))
    return best


@settings(max_examples=200, deadline=None)
@given(books, st.integers(0, 60))
def test_min_max_lots_is_optimal_against_brute_force(book: pl.DataFrame, budget: int) -> None:
    q, v = book["lots"].to_list(), book["lot_value"].to_list()
    cap = sum(a * b for a, b in zip(q, v))
    out = lots.min_max_lots(book, budget)
    x, u = out["seized"].to_list(), out["capacity"].to_list()
    assert all(0 <= xi <= ui for xi, ui in zip(x, u))
    if budget <= cap:
        m = brute_min_max(q, v, budget)
        assert lots.min_max_level(q, v, budget) == m
        worst = max((Fraction(k, qi) for k, qi in zip(out["closed"].to_list(), q) if qi > 0), default=Fraction(0))
        assert worst == m
        assert sum(x) == budget or budget < sum(x) < budget + max(v)  # covers, overshoot below one lot
    else:
        assert sum(x) == cap


@settings(max_examples=200, deadline=None)
@given(books, st.integers(0, 60))
def test_every_allocator_respects_budget_and_capacity(book: pl.DataFrame, budget: int) -> None:
    cap = int(book.select(pl.col("lots") * pl.col("lot_value")).sum().item())
    for name in ("queue", "pro_rata", "mirror_descent"):
        out = getattr(lots, name)(book, float(budget))
        x, u = out["seized"].to_numpy(), out["capacity"].to_numpy()
        assert (x >= -1e-9).all() and (x <= u + 1e-9).all(), name
        assert x.sum() == pytest.approx(min(budget, cap), abs=1e-6), name
        assert (out["burden"] <= 1 + 1e-12).all()
    out = lots.contract_pro_rata(book, budget)
    assert out["seized"].sum() <= budget
    assert ((out["closed"] >= 0) & (out["closed"] <= out["lots"])).all()
    # Pro-rata has the least worst burden of all (model §8: Prop. 9), the ILP the least among lots.
    pr = lots.pro_rata(book, float(budget))["burden"].max()
    for name in ("queue", "mirror_descent"):
        assert getattr(lots, name)(book, float(budget))["burden"].max() >= pr - 1e-9  # type: ignore[operator]
    assert lots.min_max_lots(book, budget)["burden"].max() >= pr - 1e-9  # type: ignore[operator]

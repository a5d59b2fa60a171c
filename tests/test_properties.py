"""Property tests: adl against a slow pure-Python reference of docs/model.md §1-§3.

Every book lives on the whole-units grid (whole lots, whole-quote prices) so the reference can
work in exact integers: cash is in cents in the engine (``whole_units_engine``: cash_decimals 2)
and in units of 1e-8 in the stateless calls (``adl.stateless.CASH_DECIMALS`` = 8). The value of
``lots * ticks`` in cash units is ``lots * ticks * FACTOR``.

Scores. The reference score is the exact rational (``Fraction``) of docs/model.md §3 (BitMEX):
``pnl% = σ(P−E)/E``, ``e = M + σq(P−E)``, ``ℓ = qP/e``, score ``pnl%·ℓ`` or ``pnl%/ℓ``. adl
evaluates it in f64 (one division for pnl%, one for ℓ, one product or quotient, each correctly
rounded), so its score is within a few ulps of the exact value: scores are compared with a
relative tolerance of 1e-12 (``SCORE_RTOL``, about 4500 ulps: far above that float noise,
far below any error in the formula). The queue order is checked separately and exactly; ranks,
lights, quantities and every cash amount are compared exactly.

Queue order. The reference orders by the exact score (descending), then account, then row
(docs/model.md §3: "Ties: ascending account id, then input row order"). Two positions whose exact
scores are equal but whose f64 scores differ in the last bit are therefore ordered by account
here; ``test_exact_score_tie_goes_to_lower_account`` pins the minimal such case.

Each property records ``hypothesis.event``s (``pytest --hypothesis-show-statistics``) showing
how often the interesting branches run: ADL, partial counterparties, hedge-mode self-skips,
bad debt, refusals, ties.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import polars as pl
import pytest
from conftest import conserved_value, whole_units_engine
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

import adl

SETTINGS = settings(max_examples=200, deadline=None, derandomize=False)
SCORE_RTOL = 1e-12
ENGINE_FACTOR = 100  # cents per (lot · quote): whole_units_engine has cash_decimals 2
STATELESS_FACTOR = 10**8  # adl.stateless.CASH_DECIMALS = 8 with qty/price decimals 0
MMR_PPM = 5_000  # the engine's default maintenance rate 0.005
WHOLE = adl.Market(qty_decimals=0, price_decimals=0)
SIDE_NAME = {1: "long", -1: "short"}
SIDE_CODE = {"long": 1, "short": -1}


# ----- reference ---------------------------------------------------------------------------


@dataclass
class Pos:
    """One isolated position on the whole-units grid; ``margin`` in cash units."""

    account: int
    symbol: str
    side: int
    qty: int
    entry: int
    margin: int

    def equity(self, mark: int, factor: int) -> int:
        return self.margin + self.side * self.qty * (mark - self.entry) * factor


def ref_score(p: Pos, mark: int, factor: int) -> Fraction | None:
    """Exact BitMEX score, or None when not eligible (equity <= 0)."""
    e = p.equity(mark, factor)
    if e <= 0:
        return None
    pnl = Fraction(p.side * (mark - p.entry), p.entry)
    lev = Fraction(p.qty * mark * factor, e)
    return pnl * lev if pnl > 0 else pnl / lev


def close(got: float | None, want: Fraction | None) -> bool:
    if want is None or got is None:
        return want is None and got is None
    return math.isclose(got, float(want), rel_tol=SCORE_RTOL, abs_tol=0.0)


def lights(r: int, n: int) -> int:
    return 6 - -(-5 * r // n)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def quantity_lights(queue: list[tuple[Fraction, int]]) -> list[tuple[float, int]]:
    """(percentile, lights) by cumulative quantity for a queue of (exact score, qty) in queue
    order (docs/model.md §3): lots up to the end of the position's group of exactly equal
    scores over the queue's total; lights 6 - ceil(5·cum/total)."""
    total = sum(q for _, q in queue)
    out: list[tuple[float, int]] = []
    start, cum = 0, 0
    for i, (s, q) in enumerate(queue):
        cum += q
        if i + 1 == len(queue) or queue[i + 1][0] != s:
            out.extend([(cum / total, 6 - ceil_div(5 * cum, total))] * (i + 1 - start))
            start = i + 1
    return out


def ref_queue(rows: list[Pos], marks: dict[str, int], factor: int) -> dict[int, tuple[int, int, Fraction]]:
    """Row index -> (rank, n, exact score) per (symbol, side), by score desc, account, row."""
    groups: dict[tuple[str, int], list[tuple[Fraction, int, int]]] = {}
    for i, p in enumerate(rows):
        s = ref_score(p, marks[p.symbol], factor)
        if s is not None:
            groups.setdefault((p.symbol, p.side), []).append((s, p.account, i))
    out = {}
    for members in groups.values():
        members.sort(key=lambda t: (-t[0], t[1], t[2]))
        for r, (s, _, i) in enumerate(members, start=1):
            out[i] = (r, len(members), s)
    return out


@dataclass
class AdlLeg:
    account: int
    qty: int
    rank: int
    score: Fraction
    carried: int  # bankrupt margin handed over with the lots (cash units)
    released: int  # counterparty margin released into its cash
    credit: int  # total credit to the counterparty's cash


@dataclass
class Outcome:
    to_fund: int = 0
    from_fund: int = 0
    first_from_fund: int = 0
    bad_debt: int = 0
    covered: int = 0  # lots the fund covered (first external fill)
    surplus_external: int = 0  # lots closed on the book in case 1 (d <= 0)
    leftover: int = 0  # lots with no counterparty (bad_debt fill)
    legs: list[AdlLeg] = field(default_factory=list)
    passed: list[int] = field(default_factory=list)  # counterparties that could not pay

    @property
    def adl_qty(self) -> int:
        return sum(leg.qty for leg in self.legs)

    @property
    def external_qty(self) -> int:
        return self.surplus_external + self.covered + self.leftover


def ref_liquidate(book: dict[tuple[int, str, int], Pos], key: tuple[int, str, int], mark: int,
                  fill: int, fund: int, factor: int = ENGINE_FACTOR) -> Outcome:
    """The waterfall of docs/model.md §2 and README "Units and rounding", in exact integers."""
    p = book[key]
    s, q, e, m = p.side, p.qty, p.entry, p.margin
    out = Outcome()

    def at_fill(lots: int, margin: int) -> int:
        return margin + s * lots * (fill - e) * factor

    whole = at_fill(q, m)
    if whole >= 0:
        out.to_fund = whole
        out.surplus_external = q
        return out

    def pay(k: int) -> int:  # the covered lots carry ceil(M·k/Q) of the margin
        return -(ceil_div(m * k, q) + s * k * (fill - e) * factor)

    covered = max(k for k in range(q + 1) if pay(k) <= fund)
    out.covered = covered
    out.from_fund = out.first_from_fund = pay(covered)
    fund_left = fund - out.from_fund
    lots_left = q - covered
    margin_left = m - ceil_div(m * covered, q)
    # The opposite queue: eligible (equity > 0) positions of the other side, fresh scores.
    queue = []
    for c in book.values():
        if c.symbol == p.symbol and c.side == -s:
            sc = ref_score(c, mark, factor)
            if sc is not None:
                queue.append((sc, c.account, c))
    queue.sort(key=lambda t: (-t[0], t[1]))
    # The ADL price, exactly: P_bk = E - s*M/(L*factor) of the lots left after the fund.
    p_adl = e - Fraction(s * margin_left, lots_left * factor) if lots_left else Fraction(e)
    for rank, (sc, _, c) in enumerate(queue, start=1):  # our own entry counts for rank
        if lots_left == 0:
            break
        if c.account == p.account:
            continue
        # Solvency (docs/model.md §2 step 4): the cash it receives at P_ADL must be >= 0.
        if c.margin + c.side * c.qty * (p_adl - c.entry) * factor < 0:
            out.passed.append(c.account)
            continue
        take = min(lots_left, c.qty)
        carried = margin_left * take // lots_left
        margin_left -= carried
        lots_left -= take
        released = c.margin * take // c.qty if take < c.qty else c.margin
        credit = released - s * take * (e - c.entry) * factor + carried
        if credit < 0:  # rounding only: the margin is released rounded up instead
            released = ceil_div(c.margin * take, c.qty)
            credit = released - s * take * (e - c.entry) * factor + carried
        out.legs.append(AdlLeg(c.account, take, rank, sc, carried, released, credit))
    if lots_left > 0:
        out.leftover = lots_left
        value = at_fill(lots_left, margin_left)
        if value >= 0:
            out.to_fund += value
        else:
            cover = min(fund_left, -value)
            out.from_fund += cover
            out.bad_debt = -value - cover
    return out


def apply_outcome(book: dict[tuple[int, str, int], Pos], cash: dict[int, int],
                  key: tuple[int, str, int], out: Outcome) -> None:
    p = book.pop(key)
    for leg in out.legs:
        ck = (leg.account, p.symbol, -p.side)
        c = book[ck]
        cash[leg.account] = cash.get(leg.account, 0) + leg.credit
        if leg.qty == c.qty:
            del book[ck]
        else:
            c.qty -= leg.qty
            c.margin -= leg.released


# ----- adl <-> reference -------------------------------------------------------------------


def frame(rows: list[Pos], factor_to_quote: int = 100) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account": pl.Series([p.account for p in rows], dtype=pl.UInt64),
            "symbol": [p.symbol for p in rows],
            "side": [SIDE_NAME[p.side] for p in rows],
            "qty": [float(p.qty) for p in rows],
            "entry_price": [float(p.entry) for p in rows],
            "margin": [p.margin / factor_to_quote for p in rows],
        },
        schema_overrides={"symbol": pl.String, "side": pl.String},
    )


def engine_book(eng: adl.Engine) -> dict[tuple[int, str, int], Pos]:
    out = {}
    for a, sym, side, qty, entry, margin in eng.positions().select(
        "account", "symbol", "side", "qty", "entry_price", "margin"
    ).iter_rows():
        p = Pos(a, sym, SIDE_CODE[side], int(qty), int(entry), round(margin * ENGINE_FACTOR))
        assert (p.qty, p.entry, p.margin / ENGINE_FACTOR) == (qty, entry, margin)
        out[(a, sym, p.side)] = p
    return out


def engine_cash(eng: adl.Engine) -> dict[int, int]:
    return {a: round(c * ENGINE_FACTOR) for a, c in eng.accounts().select("account", "cash").iter_rows()}


def check_indicator(eng: adl.Engine, book: dict[tuple[int, str, int], Pos], marks: dict[str, int]) -> None:
    """eng.indicator() = a full sort of the current positions by fresh exact scores."""
    ind = eng.indicator()
    got: dict[tuple[str, int], list[tuple[int, int, float, float, int, int, float]]] = {}
    for a, sym, side, score, r, pct, li, q, ahead in ind.select(
        "account", "symbol", "side", "score", "rank", "percentile", "lights", "quantile", "notional_ahead"
    ).iter_rows():
        got.setdefault((sym, SIDE_CODE[side]), []).append((r, a, score, pct, li, q, ahead))
    want: dict[tuple[str, int], list[tuple[Fraction, int, Pos]]] = {}
    for p in book.values():
        s = ref_score(p, marks[p.symbol], ENGINE_FACTOR)
        if s is not None:
            want.setdefault((p.symbol, p.side), []).append((s, p.account, p))
    assert set(got) == set(want), (sorted(got), sorted(want))
    for grp, members in want.items():
        members.sort(key=lambda t: (-t[0], t[1]))
        rows = sorted(got[grp])
        n = len(members)
        assert [r[0] for r in rows] == list(range(1, n + 1)), (grp, rows)
        for (r, a, score, pct, li, quant, ahead), (s, acc, _) in zip(rows, members, strict=True):
            assert close(score, s), (grp, r, a, score, float(s))
        ahead = 0
        # The engine's preset (bitmex) buckets lights by cumulative quantity.
        by_qty = quantity_lights([(s, p.qty) for s, _, p in members])
        for (r, a, score, pct, li, quant, got_ahead), (s, acc, p), (wpct, wli) in zip(rows, members, by_qty, strict=True):
            assert (a, pct, li, quant) == (acc, wpct, wli, wli - 1), (grp, rows, members)
            assert got_ahead == ahead * marks[grp[0]], (grp, r, got_ahead, ahead)
            ahead += p.qty


# ----- strategies --------------------------------------------------------------------------

SYMBOLS = ["AAA-PERP", "BBB-PERP"]


@st.composite
def stateless_books(draw: st.DrawFn) -> tuple[list[Pos], dict[str, int]]:
    symbols = SYMBOLS[: draw(st.integers(1, 2))]
    marks = {s: draw(st.integers(85, 115)) for s in symbols}
    rows = draw(
        st.lists(
            st.builds(
                Pos,
                account=st.integers(1, 6),
                symbol=st.sampled_from(symbols),
                side=st.sampled_from([1, -1]),
                qty=st.integers(1, 50),
                entry=st.integers(80, 120),
                margin=st.integers(0, 200_000),  # cents: 0 .. 2000.00
            ),
            min_size=1,
            max_size=20,
        )
    )
    # Copies of some rows under another (or the same) account: equal scores, so the order
    # falls to the account and then to the row.
    copies = draw(st.lists(st.tuples(st.integers(0, len(rows) - 1), st.integers(1, 6)), max_size=4))
    rows += [Pos(a, rows[i].symbol, rows[i].side, rows[i].qty, rows[i].entry, rows[i].margin) for i, a in copies]
    return rows, marks


def to_stateless(rows: list[Pos]) -> list[Pos]:
    """Cents -> the stateless calls' cash units of 1e-8."""
    return [Pos(p.account, p.symbol, p.side, p.qty, p.entry, p.margin * 10**6) for p in rows]


@st.composite
def margins(draw: st.DrawFn, qty: int) -> int:
    """Cents: 0..5 or 0..30 quote per lot plus odd cents, so splits round and many positions are
    bankrupt at the mark or at a nearby book price."""
    per_lot = draw(st.one_of(st.integers(0, 500), st.integers(0, 3_000)))
    return per_lot * qty + draw(st.integers(0, 99))


@st.composite
def engine_books(draw: st.DrawFn, max_positions: int = 16) -> tuple[dict[tuple[int, str, int], Pos], dict[str, int]]:
    symbols = SYMBOLS[: draw(st.integers(1, 2))]
    marks = {s: draw(st.integers(85, 115)) for s in symbols}
    keys = draw(
        st.lists(
            st.tuples(st.integers(1, 5), st.sampled_from(symbols), st.sampled_from([1, -1])),
            min_size=4,
            max_size=max_positions,
            unique=True,
        )
    )
    book: dict[tuple[int, str, int], Pos] = {}
    for a, sym, side in keys:
        kind = draw(st.sampled_from(["random", "random", "levered", "copy", "at maintenance"]))
        same_queue = [p for p in book.values() if (p.symbol, p.side) == (sym, side)]
        if kind == "copy" and same_queue:
            # Another account with the same position: equal scores, the account decides.
            c = draw(st.sampled_from(same_queue))
            book[(a, sym, side)] = Pos(a, sym, side, c.qty, c.entry, c.margin)
            continue
        q = draw(st.integers(1, 50))
        entry = draw(st.integers(80, 120))
        if kind == "at maintenance":
            # Equity at the mark within a cent of maintenance (the refusal boundary).
            mm = ceil_div(q * marks[sym] * ENGINE_FACTOR * MMR_PPM, 10**6)
            margin = mm - side * q * (marks[sym] - entry) * ENGINE_FACTOR + draw(st.integers(-1, 1))
            if margin >= 0:
                book[(a, sym, side)] = Pos(a, sym, side, q, entry, margin)
                continue
        if kind == "levered":
            # A venue's leverage setting (1-125x) on the entry notional; marks 85-115 against
            # entries 80-120 are gaps of up to ~30 %.
            lev = draw(st.sampled_from([1, 2, 3, 5, 10, 20, 25, 50, 75, 100, 125]))
            book[(a, sym, side)] = Pos(a, sym, side, q, entry, q * entry * ENGINE_FACTOR // lev)
            continue
        book[(a, sym, side)] = Pos(a, sym, side, q, entry, draw(margins(q)))
    return book, marks


def load_engine(book: dict[tuple[int, str, int], Pos], marks: dict[str, int], fund: int,
                cash: dict[int, int]) -> adl.Engine:
    eng = whole_units_engine(fund / ENGINE_FACTOR)
    for s in marks:  # a market may have no positions
        eng.add_market(s, qty_decimals=0, price_decimals=0)
    accounts = pl.DataFrame(
        {
            "account": pl.Series(list(cash), dtype=pl.UInt64),
            "cash": pl.Series([c / ENGINE_FACTOR for c in cash.values()], dtype=pl.Float64),
        }
    )
    eng.load(frame(list(book.values())), accounts=accounts)
    eng.set_marks({s: float(m) for s, m in marks.items()}, ts=7)
    return eng


# ----- 1. rank -----------------------------------------------------------------------------


@SETTINGS
@given(stateless_books())
def test_rank_matches_reference(data: tuple[list[Pos], dict[str, int]]) -> None:
    rows, marks = data
    out = adl.rank(frame(rows), mark={s: float(m) for s, m in marks.items()}, markets=WHOLE, lights="count")
    want = ref_queue(to_stateless(rows), marks, STATELESS_FACTOR)
    event(f"rows: {'1' if len(rows) == 1 else '2-5' if len(rows) <= 5 else '6+'}")
    event("some row not eligible" if len(want) < len(rows) else "every row eligible")
    tied = {(rows[i].symbol, rows[i].side, w[2]) for i, w in want.items()}
    if len(tied) < len(want):
        event("equal scores in a queue")
    assert out.height == len(rows)
    got = out.select("score", "rank", "percentile", "lights").rows()
    for i, (score, r, pct, li) in enumerate(got):
        if i not in want:
            assert (score, r, pct, li) == (None, None, None, None), (i, got[i])
            continue
        wr, n, ws = want[i]
        assert close(score, ws), (i, score, float(ws))
    # Ranks last, so a score mismatch is reported as such first.
    for i, (score, r, pct, li) in enumerate(got):
        if i in want:
            wr, n, _ = want[i]
            assert (r, pct, li) == (wr, wr / n, lights(wr, n)), (i, got[i], want[i])
    # The bitmex preset: by cumulative quantity, exact ties sharing their group's end.
    by_qty = adl.rank(frame(rows), mark={s: float(m) for s, m in marks.items()}, markets=WHOLE)
    assert by_qty["rank"].to_list() == out["rank"].to_list()
    queues: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for i, (r, _, _) in want.items():
        queues.setdefault((rows[i].symbol, rows[i].side), []).append((r, i))
    got_qty = by_qty.select("percentile", "lights").rows()
    for queue in queues.values():
        order = [i for _, i in sorted(queue)]
        ref = quantity_lights([(want[i][2], rows[i].qty) for i in order])
        assert [got_qty[i] for i in order] == ref, (order, ref)


def test_exact_score_tie_goes_to_lower_account() -> None:
    # Mark 100. Account 1: short 1 @80, margin 21: pnl% = -1/4, e = 1, ℓ = 100, score -1/400.
    # Account 2: short 1 @96, margin 10: pnl% = -1/24, e = 6, ℓ = 100/6, score -1/400.
    # Equal scores: docs/model.md §3 puts the lower account first. In f64 the first evaluates to
    # -0.0025 and the second to -0.0024999999999999996.
    rows = [Pos(1, "X", -1, 1, 80, 2_100), Pos(2, "X", -1, 1, 96, 1_000)]
    assert ref_score(to_stateless(rows)[0], 100, STATELESS_FACTOR) == ref_score(to_stateless(rows)[1], 100, STATELESS_FACTOR)
    out = adl.rank(frame(rows), mark=100.0, markets=WHOLE)
    assert out["rank"].to_list() == [1, 2]
    # The engine's queue too: the indicator, and who a bankrupt long is matched against first.
    book = {(p.account, p.symbol, p.side): p for p in rows + [Pos(3, "X", 1, 1, 100, 50)]}
    eng = load_engine(book, {"X": 100}, 0, {})
    check_indicator(eng, book, {"X": 100})
    res = eng.liquidate(3, "X", "long", fill_price=99.0, force=True)
    assert res.fills.select("account", "rank", "kind").rows() == [(1, 1, "adl")]


# ----- 2. deleverage -----------------------------------------------------------------------


@SETTINGS
@given(stateless_books(), st.integers(80, 120), st.data())
def test_deleverage_matches_reference_queue(
    data: tuple[list[Pos], dict[str, int]], price: int, more: st.DataObject
) -> None:
    rows, marks = data
    symbol = more.draw(st.sampled_from(sorted({p.symbol for p in rows})), label="symbol")
    # The bankrupt side: one whose opposite side holds rows in this symbol.
    side = more.draw(st.sampled_from(sorted({-p.side for p in rows if p.symbol == symbol})), label="side")
    srows = to_stateless(rows)
    queue = ref_queue(srows, marks, STATELESS_FACTOR)
    # Rows that cannot pay at the ADL price (cash M + s*q*(price - E) < 0) keep their rank
    # but are passed over.
    opposite = sorted(
        (queue[i][0], i) for i, p in enumerate(srows)
        if i in queue and p.symbol == symbol and p.side == -side and p.equity(price, STATELESS_FACTOR) >= 0
    )
    available = sum(rows[i].qty for _, i in opposite)
    qty = more.draw(st.one_of(st.integers(1, max(1, available)), st.integers(available + 1, available + 30)), label="qty")

    def call() -> pl.DataFrame:
        return adl.deleverage(frame(rows), mark={s: float(m) for s, m in marks.items()}, side=SIDE_NAME[side],
                              qty=float(qty), price=float(price), symbol=symbol, markets=WHOLE)

    if available < qty:
        event("insufficient liquidity")
        with pytest.raises(adl.InsufficientLiquidityError) as info:
            call()
        assert (info.value.requested, info.value.available, info.value.missing) == (qty, available, qty - available)
        return
    event("filled")
    fills = call()
    assert fills["qty"].sum() == qty
    want = []
    left = qty
    for r, i in opposite:
        if left == 0:
            break
        take = min(left, rows[i].qty)
        want.append((rows[i].account, symbol, SIDE_NAME[-side], float(take), float(price), r, queue[i][2]))
        left -= take
    got = fills.select("account", "symbol", "side", "qty", "price", "rank", "score").rows()
    note(f"want {want}\ngot {got}")
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert close(g[6], w[6]), (g, w)
    assert [g[:6] for g in got] == [w[:6] for w in want]
    # Partial last: every fill but the last closes the whole position.
    assert all(w[3] == rows[i].qty for w, (_, i) in zip(want[:-1], opposite, strict=False))


# ----- 3. engine sequences -----------------------------------------------------------------

operations = st.lists(
    st.tuples(
        st.one_of(st.just(0), st.integers(0, 1_000)),  # which open position (0 = the worst)
        st.one_of(st.none(), st.integers(-12, 12)),  # fill price offset from the mark (None = mark)
        st.booleans(),  # force
        st.booleans(),  # preview with dry_run first
    ),
    min_size=1,
    max_size=10,
)


State = tuple[dict[str, int], pl.DataFrame, pl.DataFrame, int]
Op = tuple[int, int | None, bool, bool]
Book = dict[tuple[int, str, int], Pos]


def state(eng: adl.Engine) -> State:
    return (eng.totals(), eng.positions(), eng.accounts(), eng.events().height)


def same_state(a: State, b: State) -> bool:
    return a[0] == b[0] and a[1].equals(b[1]) and a[2].equals(b[2]) and a[3] == b[3]


def same_result(a: adl.LiquidationResult, b: adl.LiquidationResult) -> bool:
    return a.fills.equals(b.fills) and (a.to_fund, a.from_fund, a.bad_debt, a.adl_qty, a.external_qty) == (
        b.to_fund, b.from_fund, b.bad_debt, b.adl_qty, b.external_qty
    )


@SETTINGS
@given(engine_books(), st.one_of(st.just(0), st.integers(0, 2_000), st.integers(0, 20_000)), st.dictionaries(st.integers(1, 5), st.integers(0, 100_000)), operations)
def test_engine_sequences_keep_the_invariants(
    data: tuple[Book, dict[str, int]], fund: int, cash: dict[int, int], ops: list[Op]
) -> None:
    book, marks = data
    eng = load_engine(book, marks, fund, cash)
    cash = dict(cash)
    check_indicator(eng, book, marks)
    value0 = conserved_value(eng)
    for choice, offset, force, preview in ops:
        if not book:
            break
        # Worst first (lowest equity per lot at the mark), so choice 0 is the most bankrupt.
        keys = sorted(book, key=lambda k: (Fraction(book[k].equity(marks[k[1]], ENGINE_FACTOR), book[k].qty), k))
        key = keys[choice % len(keys)]
        account, symbol, side = key
        p = book[key]
        mark = marks[symbol]
        fill = None if offset is None else max(1, mark + offset)
        t0 = eng.totals()
        s0 = state(eng)
        fund0 = t0.fund
        eq = p.equity(mark, ENGINE_FACTOR)
        mm = ceil_div(p.qty * mark * ENGINE_FACTOR * MMR_PPM, 10**6)
        refused = eq >= mm and not force
        fill_price = None if fill is None else float(fill)

        def liquidate(dry_run: bool = False) -> adl.LiquidationResult:
            return eng.liquidate(account, symbol, SIDE_NAME[side], fill_price, force=force, dry_run=dry_run)

        note(f"liquidate {key} at {fill_price} force={force} (equity {eq}, maintenance {mm}, fund {fund0})")
        dry = None
        if preview:
            if refused:
                with pytest.raises(adl.NotLiquidatableError):
                    liquidate(dry_run=True)
            else:
                dry = liquidate(dry_run=True)
            assert same_state(state(eng), s0), "dry run changed the engine"
        if refused:
            event("refused")
            with pytest.raises(adl.NotLiquidatableError):
                liquidate()
            assert same_state(state(eng), s0), "refused liquidation changed the engine"
            continue
        want = ref_liquidate(book, key, mark, mark if fill is None else fill, fund0)
        res = liquidate()
        event("adl" if want.legs else "book only")
        if any(leg.qty < book[(leg.account, symbol, -side)].qty for leg in want.legs):
            event("a counterparty closes part of its position")
        if any(leg.rank > i + 1 for i, leg in enumerate(want.legs)):
            event("the liquidated account's own opposite position is skipped")
        if want.bad_debt:
            event("bad debt")
        if dry is not None:
            assert same_result(dry, res), "dry run differs from the real run"
        t1 = eng.totals()
        f = res.fills
        # Conservation, fund, bad debt: exact integers.
        assert conserved_value(eng) == value0
        assert t1.fund >= 0
        assert t1.bad_debt >= t0.bad_debt
        book_qty = int(f.filter(pl.col("kind") != "adl")["qty"].sum())
        adl_qty = int(f.filter(pl.col("kind") == "adl")["qty"].sum())
        d_oi = (t1.long_lots - t1.short_lots) - (t0.long_lots - t0.short_lots)
        assert d_oi == -side * book_qty
        assert (t0.long_lots - t1.long_lots, t0.short_lots - t1.short_lots) == (
            (p.qty, adl_qty) if side == 1 else (adl_qty, p.qty)
        )
        assert t1.book_value - t0.book_value == side * book_qty * (mark - (mark if fill is None else fill)) * ENGINE_FACTOR
        assert int(f["qty"].sum()) == p.qty
        assert f["bankrupt_account"].unique().to_list() == [account]
        assert f["bankrupt_side"].unique().to_list() == [SIDE_NAME[side]]
        adl_fills = f.filter(pl.col("kind") == "adl")
        assert account not in adl_fills["account"].to_list()
        assert adl_fills["side"].to_list() == [SIDE_NAME[-side]] * adl_fills.height
        assert adl_fills["account"].n_unique() == adl_fills.height
        for a, q in adl_fills.select("account", "qty").iter_rows():
            assert 0 < q <= book[(a, symbol, -side)].qty
        sc = adl_fills["score"].to_list()
        assert all(x >= y for x, y in zip(sc, sc[1:], strict=False)), sc
        # Amounts and fills against the reference waterfall.
        assert (res.to_fund, res.from_fund, res.bad_debt) == (
            want.to_fund / ENGINE_FACTOR, want.from_fund / ENGINE_FACTOR, want.bad_debt / ENGINE_FACTOR
        ), want
        assert (res.adl_qty, res.external_qty) == (want.adl_qty, want.external_qty)
        got_adl = adl_fills.select("account", "qty", "rank").rows()
        assert got_adl == [(leg.account, leg.qty, leg.rank) for leg in want.legs], (got_adl, want.legs)
        for got_score, leg in zip(sc, want.legs, strict=True):
            assert close(got_score, leg.score)
        for got_price, leg in zip(adl_fills["price"].to_list(), want.legs, strict=True):
            assert math.isclose(got_price, p.entry - side * leg.carried / (leg.qty * ENGINE_FACTOR), rel_tol=1e-12)
        kinds = ["external"] if want.surplus_external or want.covered else []
        kinds += ["adl"] * len(want.legs) + (["bad_debt"] if want.leftover else [])
        assert f["kind"].to_list() == kinds
        # Nobody is made insolvent by ADL: every counterparty (all isolated here) receives
        # cash >= 0, and the passed-over ones are reported.
        assert all(leg.credit >= 0 for leg in want.legs), want.legs
        assert res.passed_over["account"].to_list() == want.passed
        if want.passed:
            event("a counterparty that cannot pay is passed over")
        # The state after the event, position by position and account by account.
        apply_outcome(book, cash, key, want)
        assert engine_book(eng) == book
        got_cash = engine_cash(eng)
        assert {a: got_cash.get(a, 0) for a in got_cash | cash} == {a: cash.get(a, 0) for a in got_cash | cash}
        assert t1.fund == fund0 + want.to_fund - want.from_fund
        check_indicator(eng, book, marks)


# ----- 4. the waterfall amounts ------------------------------------------------------------


@st.composite
def single_liquidations(draw: st.DrawFn) -> tuple[Book, dict[str, int], tuple[int, str, int], int | None, int]:
    book, marks = draw(engine_books(max_positions=10))
    symbol = draw(st.sampled_from(sorted(marks)))
    mark = marks[symbol]
    side = draw(st.sampled_from([1, -1]))
    account = draw(st.integers(1, 5))
    qty = draw(st.integers(1, 50))
    # Entry within ±20 of the mark on the losing side more often than not, margin 0..15 per
    # lot: the book price is below the bankruptcy price in most examples.
    entry = mark + side * draw(st.integers(-5, 20))
    margin = draw(st.integers(0, 1_500)) * qty + draw(st.integers(0, 99))
    book[(account, symbol, side)] = Pos(account, symbol, side, qty, max(1, entry), margin)
    if draw(st.booleans()):
        # Hedge mode: the same account holds a profitable (high-score) opposite position.
        q2 = draw(st.integers(1, 50))
        m2 = draw(st.integers(0, 3_000)) * q2 + draw(st.integers(0, 99))
        book[(account, symbol, -side)] = Pos(account, symbol, -side, q2, mark + side * draw(st.integers(1, 20)), m2)
    fill = draw(st.one_of(st.none(), st.integers(mark - 15, mark + 15)))
    fund = draw(st.one_of(st.just(0), st.integers(0, 5_000), st.integers(0, 300_000)))
    return book, marks, (account, symbol, side), fill, fund


@SETTINGS
@given(single_liquidations())
def test_waterfall_amounts_match_reference(data: tuple[Book, dict[str, int], tuple[int, str, int], int | None, int]) -> None:
    book, marks, key, fill, fund = data
    account, symbol, side = key
    p = book[key]
    mark = marks[symbol]
    f_px = mark if fill is None else fill
    eng = load_engine(book, marks, fund, {})
    res = eng.liquidate(account, symbol, SIDE_NAME[side], None if fill is None else float(fill), force=True)
    # By hand, in cents: equity of the whole position at F.
    at_f = p.margin + side * p.qty * (f_px - p.entry) * ENGINE_FACTOR
    if at_f >= 0:
        event("book pays the bankruptcy price")
        assert (res.external_qty, res.adl_qty, res.to_fund, res.from_fund, res.bad_debt) == (
            p.qty, 0, at_f / ENGINE_FACTOR, 0, 0
        )
        assert res.fills.select("kind", "qty").rows() == [("external", p.qty)]
        return

    def pay(k: int) -> int:
        return -(ceil_div(p.margin * k, p.qty) + side * k * (f_px - p.entry) * ENGINE_FACTOR)

    q_f = max(k for k in range(p.qty + 1) if pay(k) <= fund)
    # Counterparties must be able to pay at the ADL price P_bk of the lots left (exact).
    lots_left, margin_left = p.qty - q_f, p.margin - ceil_div(p.margin * q_f, p.qty)
    p_adl = p.entry - Fraction(side * margin_left, max(1, lots_left) * ENGINE_FACTOR)
    eligible = sum(
        c.qty for c in book.values()
        if c.symbol == symbol and c.side == -side and c.account != account and c.equity(mark, ENGINE_FACTOR) > 0
        and c.margin + c.side * c.qty * (p_adl - c.entry) * ENGINE_FACTOR >= 0
    )
    adl_qty = min(p.qty - q_f, eligible)
    leftover = p.qty - q_f - adl_qty
    event("fund covers all" if q_f == p.qty else "adl" if leftover == 0 else "bad debt possible")
    assert (res.external_qty, res.adl_qty) == (q_f + leftover, adl_qty)
    if leftover == 0:
        assert res.to_fund == 0.0
    ext = res.fills.filter(pl.col("kind") == "external")["qty"].to_list()
    assert ext == ([q_f] if q_f else [])
    assert res.from_fund >= pay(q_f) / ENGINE_FACTOR
    if leftover == 0:
        assert (res.from_fund, res.bad_debt) == (pay(q_f) / ENGINE_FACTOR, 0.0)
    else:
        assert res.from_fund <= fund / ENGINE_FACTOR
    assert eng.insurance_fund >= 0
    assert res.bad_debt >= 0
    # The full reference agrees too (leftover lots' share of the fund and bad debt).
    want = ref_liquidate(book, key, mark, f_px, fund)
    assert want.first_from_fund == pay(q_f) and want.covered == q_f and want.adl_qty == adl_qty
    adl_fills = res.fills.filter(pl.col("kind") == "adl")
    assert account not in adl_fills["account"].to_list()
    assert adl_fills.select("account", "qty", "rank").rows() == [(g.account, g.qty, g.rank) for g in want.legs]
    if any(g.rank > i + 1 for i, g in enumerate(want.legs)):
        event("the liquidated account's own opposite position is skipped")
    assert (res.to_fund, res.from_fund, res.bad_debt) == (
        want.to_fund / ENGINE_FACTOR, want.from_fund / ENGINE_FACTOR, want.bad_debt / ENGINE_FACTOR
    )

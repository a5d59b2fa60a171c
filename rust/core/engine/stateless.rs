//! Stateless calls on columns: rank every row (`ranks`), or deleverage one quantity against a
//! side (`fills`). Each validates every row inside the same pass that scores it, the shared
//! scoring context here; large inputs are split into one chunk per core.

use crate::core::book::input::{block_valid, parse_mark, parse_row, PositionColumns};
use crate::core::book::position::Side;
use crate::core::market::tiers::{rate_ppm, Tiers};
use crate::core::policy::prorata::{holding, Holding, Weighting};
use crate::core::policy::ranking::QueueOrder;
use crate::core::policy::score::{desc_key, Fraction, Policy};
use crate::core::units::error::{AdlError, Result};
use crate::core::units::fixed::Grid;

mod block;
mod fills;
mod ranks;

pub use crate::core::engine::stateless::fills::{deleverage, StatelessFill};
pub use crate::core::engine::stateless::ranks::{rank, Ranked};

use crate::core::engine::stateless::block::{bitmex_block, round_small, Block, BlockRows, BlockScores, BLOCK, TWO_52};

/// Inputs smaller than this run on one thread (spawning costs more than it saves).
const PARALLEL_ROWS: usize = 100_000;

/// Per-market parameters for a stateless call, indexed by market code.
pub struct MarketTable<'a> {
    pub grids: &'a [Grid],
    /// Mark per market code, as a float price.
    pub marks: &'a [f64],
    /// Maintenance-margin rate per market code (used by scores that need maintenance).
    pub rates: &'a [f64],
    pub names: &'a [String],
}

/// A candidate's queue key: score as a total-order key (smaller = earlier), account, row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    score: u64,
    account: u64,
    row: u32,
}

/// An eligible row as seen by `score_rows`.
#[derive(Clone, Copy, Debug)]
struct Scored {
    side: Side,
    market: u32,
    key: Key,
    lots: i64,
    /// Entry in ticks and margin in cash units (the row as validated).
    entry: i64,
    margin: i128,
    score: f64,
}

/// Validated call context: grids and marks in ticks.
struct Context<'a> {
    cols: &'a PositionColumns<'a>,
    grids: &'a [Grid],
    marks: Vec<i64>,
    rates: Vec<Tiers>,
    policy: Policy,
    /// The grid shared by every market, if they all have the same one (the fast path).
    uniform: Option<Grid>,
    /// The caller's scores (policy `custom`), one per row.
    custom: Option<&'a [f64]>,
}

impl<'a> Context<'a> {
    fn new(cols: &'a PositionColumns<'a>, markets: &'a MarketTable<'a>, policy: Policy, custom: Option<&'a [f64]>) -> Result<Context<'a>> {
        let custom = match (policy, custom) {
            (Policy::Custom, Some(scores)) => {
                if scores.len() != cols.len() {
                    return Err(AdlError::config("score", format!("{} scores for {} rows", scores.len(), cols.len())));
                }
                if let Some(row) = scores.iter().position(|s| !s.is_finite()) {
                    return Err(AdlError::value("score", row, format!("{} is not a finite score", scores[row])));
                }
                Some(scores)
            }
            (Policy::Custom, None) => return Err(AdlError::config("score", "policy custom needs a score column")),
            _ => None,
        };
        cols.check_shape(markets.grids.len())?;
        let n = markets.grids.len();
        if markets.marks.len() != n || markets.names.len() != n || markets.rates.len() != n {
            return Err(AdlError::config("mark", "one mark, name and maintenance rate per market are required"));
        }
        let rates = markets.rates.iter().map(|&r| rate_ppm("maintenance_rate", r).map(Tiers::flat)).collect::<Result<_>>()?;
        if cols.len() > u32::MAX as usize {
            return Err(AdlError::config("positions", "at most 2^32 - 1 rows"));
        }
        let marks = markets
            .grids
            .iter()
            .zip(markets.marks)
            .zip(markets.names)
            .map(|((g, &m), name)| parse_mark(g, name, m))
            .collect::<Result<_>>()?;
        let uniform = markets.grids.iter().all(|g| *g == markets.grids[0]).then(|| markets.grids[0]);
        Ok(Context { cols, grids: markets.grids, marks, rates, policy, uniform, custom })
    }

    /// Validates rows `range`, scores those in a (market, side) that `wanted` accepts, and
    /// calls `keep` for each eligible one. On one grid, blocks of rows are screened by a
    /// vectorised check and only the wanted rows are converted and scored. `wanted` takes the
    /// side's code (`Side::sign`): the screen then compares the column's own byte, where a
    /// `Side` made from it first would cost an extra operation per row.
    #[inline]
    fn score_rows(&self, range: std::ops::Range<usize>, wanted: impl Fn(u32, i8) -> bool, keep: impl FnMut(Scored)) -> Result<()> {
        self.score_rows_above(range, wanted, f64::NEG_INFINITY, keep).map(|_| ())
    }

    /// `score_rows` that may leave out eligible rows scoring below `floor`: returns the lots
    /// of those it left out. Rows the block kernel scores exactly are screened there, so a
    /// caller that needs only the head of the queue builds no `Scored` for the rest.
    #[inline]
    fn score_rows_above(
        &self,
        range: std::ops::Range<usize>,
        wanted: impl Fn(u32, i8) -> bool,
        floor: f64,
        mut keep: impl FnMut(Scored),
    ) -> Result<i128> {
        let Some(g) = self.uniform else { return self.score_rows_scalar(range, wanted, keep).map(|_| 0) };
        let c = self.cols;
        let mut below = 0i128;
        let mut rows = [0u32; BLOCK];
        let mut pick = [0u16; BLOCK];
        let mut accounts = [0u64; BLOCK];
        let mut block = Box::new(Block::default());
        let mut start = range.start;
        while start < range.end {
            let end = (start + BLOCK).min(range.end);
            if !block_valid(&g, &c.side[start..end], &c.qty[start..end], &c.entry[start..end], &c.margin[start..end]) {
                for row in start..end {
                    parse_row(&g, row, c.side[row], c.qty[row], c.entry[row], c.margin[row])?;
                }
            }
            // Which rows are wanted, and how many (no branch per row: sides are random).
            let n = end - start;
            let (input, out) = (&mut block.input, &mut block.out);
            let sides = &c.side[start..end];
            if c.market.is_empty() {
                for (w, &side) in input.want[..n].iter_mut().zip(sides) {
                    *w = wanted(0, side);
                }
            } else {
                for ((w, &side), &code) in input.want[..n].iter_mut().zip(sides).zip(&c.market[start..end]) {
                    *w = wanted(code, side);
                }
            }
            let k = input.want[..n].iter().map(|&w| w as usize).sum::<usize>();
            let dense = 4 * k >= n;
            let scored = if dense {
                // Most rows are wanted: score the whole block straight from the columns (the
                // others are masked out below), which costs less than collecting the wanted.
                if c.market.is_empty() {
                    input.mark[..n].fill(self.marks[0] as f64);
                } else {
                    for (p, &code) in input.mark[..n].iter_mut().zip(&c.market[start..end]) {
                        *p = self.marks[code as usize] as f64;
                    }
                }
                let cols = (&c.side[start..end], &c.qty[start..end], &c.entry[start..end], &c.margin[start..end]);
                self.block_scores(&g, cols, &input.mark[..n], out);
                n
            } else {
                // Few rows are wanted: collect them, then score those.
                let mut m = 0;
                for row in start..end {
                    rows[m] = row as u32;
                    m += input.want[row - start] as usize;
                }
                for (j, &row) in rows[..k].iter().enumerate() {
                    let row = row as usize;
                    input.want[j] = true;
                    input.side[j] = c.side[row];
                    input.qty[j] = c.qty[row];
                    input.entry[j] = c.entry[row];
                    input.margin[j] = c.margin[row];
                    input.mark[j] = self.marks[c.market_of(row) as usize] as f64;
                }
                let cols = (&input.side[..k], &input.qty[..k], &input.entry[..k], &input.margin[..k]);
                self.block_scores(&g, cols, &input.mark[..k], out);
                k
            };
            // Rows not wanted, and exact rows not eligible or below `floor`, go no further
            // (wanted ones below `floor` are counted). One branch-free pass marks the rows
            // that go on (in `want`), then a loop with a rarely taken branch collects them.
            let mut lots_below = 0i64;
            let want = &mut input.want[..scored];
            let (score, lots, eligible, exact) = (&out.score[..scored], &out.lots[..scored], &out.eligible[..scored], &out.exact[..scored]);
            for j in 0..scored {
                let low = exact[j] & eligible[j] & (score[j] < floor);
                // Times 0 or 1 (exact), not a branch: about half the rows are counted, at random.
                let below_lots = lots[j] * ((want[j] & low) as u8 as f64);
                // An integer below 2^51 in f64 as i64: the low bits of `v + 2^52` (no
                // saturating conversion, no overflow branch). 1024 rows cannot overflow.
                lots_below = lots_below.wrapping_add((below_lots + TWO_52).to_bits().wrapping_sub(TWO_52.to_bits()) as i64);
                want[j] &= !(exact[j] & !eligible[j]) & !low;
            }
            below += lots_below as i128;
            let mut picked = 0;
            for (j, &w) in want.iter().enumerate() {
                if w {
                    pick[picked] = j as u16;
                    picked += 1;
                }
            }
            let row_of = |j: usize| if dense { start + j } else { rows[j] as usize };
            // The picked rows are scattered: load their accounts in one tight loop, so the
            // cache misses overlap instead of waiting one by one behind `keep`.
            for (a, &j) in accounts[..picked].iter_mut().zip(&pick[..picked]) {
                *a = c.account[row_of(j as usize)];
            }
            for (&j, &account) in pick[..picked].iter().zip(&accounts[..picked]) {
                let j = j as usize;
                let row = row_of(j);
                let code = c.market_of(row);
                // An exact row's grid integers, as `bitmex_block` rounded them (below 2^51);
                // computed only where a caller reads them.
                let (lots, entry, margin, score) = if out.exact[j] {
                    let entry = round_small(c.entry[row] * g.price_scale) as i64;
                    let margin = round_small(c.margin[row] * g.cash_scale) as i64 as i128; // < 2^51
                    debug_assert!(parse_row(&g, row, c.side[row], c.qty[row], c.entry[row], c.margin[row]).is_ok_and(|r| (
                        r.lots, r.entry, r.margin
                    ) == (
                        out.lots[j] as i64,
                        entry,
                        margin
                    )));
                    (out.lots[j] as i64, entry, margin, out.eligible[j].then_some(out.score[j]))
                } else {
                    let r = parse_row(&g, row, c.side[row], c.qty[row], c.entry[row], c.margin[row])?;
                    (r.lots, r.entry, r.margin, self.row_score(&g, code, row, r))
                };
                if let Some(score) = score {
                    let key = Key { score: desc_key(score), account, row: row as u32 };
                    keep(Scored { side: Side::of_screened(c.side[row]), market: code, key, lots, entry, margin, score });
                }
            }
            start = end;
        }
        Ok(below)
    }

    /// The score of a validated row in market `code` (the caller's own under `custom`), or
    /// `None` when the policy does not let it be chosen.
    #[inline]
    fn row_score(&self, g: &Grid, code: u32, row: usize, r: crate::core::book::input::Row) -> Option<f64> {
        let score = self.policy.score(g, &self.rates[code as usize], r.side, r.lots, r.entry, r.margin, self.marks[code as usize])?;
        Some(self.custom.map_or(score, |s| s[row]))
    }

    /// `score_rows` for markets on different grids: row by row.
    fn score_rows_scalar(
        &self,
        range: std::ops::Range<usize>,
        wanted: impl Fn(u32, i8) -> bool,
        mut keep: impl FnMut(Scored),
    ) -> Result<()> {
        let c = self.cols;
        for row in range {
            let code = c.market_of(row);
            let g = &self.grids[code as usize];
            let r = parse_row(g, row, c.side[row], c.qty[row], c.entry[row], c.margin[row])?;
            if !wanted(code, r.side.sign()) {
                continue;
            }
            if let Some(score) = self.row_score(g, code, row, r) {
                let key = Key { score: desc_key(score), account: c.account[row], row: row as u32 };
                keep(Scored { side: r.side, market: code, key, lots: r.lots, entry: r.entry, margin: r.margin, score });
            }
        }
        Ok(())
    }
}

impl Context<'_> {
    /// `prorata::holding` of a scored row that can pay at the ADL price.
    fn holding(&self, s: &Scored, weighting: Weighting) -> Holding {
        let g = &self.grids[s.market as usize];
        let r = crate::core::book::input::Row { side: s.side, lots: s.lots, entry: s.entry, margin: s.margin };
        let p = self.cols.position(s.key.row as usize, r, s.market);
        let mark = self.marks[s.market as usize];
        holding(&p, g, mark, p.equity(g, mark), weighting, p.qty)
    }

    /// Whether a scored row can pay for its lots at the ADL price `adl` (ticks of its
    /// market): the cash it would receive, `M + σ·q·(P_ADL − E)`, is >= 0 (docs/model.md §2
    /// step 4; every row is isolated here).
    fn scored_pays(&self, s: &Scored, adl: i64) -> bool {
        let g = &self.grids[s.market as usize];
        s.margin + s.side.sign_i128() * g.value(s.lots, adl - s.entry) >= 0
    }

    /// Scores every 127th wanted row of `range` and returns the key below which the sample
    /// (scaled up) holds about twice `want` lots, or `None` if it holds less. Rows that fail
    /// validation are skipped here: the full pass reports them.
    fn sample_cut(&self, range: std::ops::Range<usize>, wanted: &impl Fn(u32, i8) -> bool, want: i64) -> Option<(Key, f64)> {
        // Odd, so that a book whose rows alternate sides is sampled on both.
        const STRIDE: usize = 127;
        let c = self.cols;
        let mut sample: Vec<(Key, i64, f64)> = Vec::with_capacity(range.len() / STRIDE + 1);
        for row in range.step_by(STRIDE) {
            let code = c.market_of(row);
            let g = &self.grids[code as usize];
            let Ok(r) = parse_row(g, row, c.side[row], c.qty[row], c.entry[row], c.margin[row]) else { continue };
            if !wanted(code, r.side.sign()) {
                continue;
            }
            if let Some(score) = self.row_score(g, code, row, r) {
                sample.push((Key { score: desc_key(score), account: c.account[row], row: row as u32 }, r.lots, score));
            }
        }
        sample.sort_unstable_by_key(|x| x.0);
        let target = 2 * want as i128;
        let mut held = 0i128;
        for &(key, lots, score) in &sample {
            held += lots as i128 * STRIDE as i128;
            if held >= target {
                return Some((key, score));
            }
        }
        None
    }
}

/// Queue order of rows: score (near-ties exactly), then account, then row.
impl QueueOrder for Context<'_> {
    fn account(&self, row: u32) -> u64 {
        self.cols.account[row as usize]
    }
    fn exact(&self, row: u32) -> Option<Fraction> {
        let (c, r) = (self.cols, row as usize);
        let code = c.market_of(r);
        let g = &self.grids[code as usize];
        let p = parse_row(g, r, c.side[r], c.qty[r], c.entry[r], c.margin[r]).ok()?;
        self.policy.exact_score(g, &self.rates[code as usize], p.side, p.lots, p.entry, p.margin, self.marks[code as usize])
    }
}

impl Context<'_> {
    /// The block kernel of the policy for the rows `cols` (marks in ticks), or `exact = false`
    /// for every row where the policy has none.
    #[inline(always)]
    fn block_scores(&self, g: &Grid, cols: BlockRows<'_>, mark: &[f64], out: &mut BlockScores) {
        match self.policy {
            Policy::Bitmex => bitmex_block(g, cols, mark, out),
            // No branch-free kernel: every row takes the integer path.
            _ => out.exact[..mark.len()].fill(false),
        }
    }
}

/// Runs `work` on consecutive row ranges, one per core for large inputs, and returns the
/// results in row order (so the first error reported is the one at the lowest row).
fn in_chunks<T: Send>(n: usize, work: impl Fn(std::ops::Range<usize>) -> T + Sync) -> Vec<T> {
    in_chunks_into(&mut vec![(); n], |range, _| work(range))
}

/// `in_chunks` where each range also gets its own part of `out` (one entry per row), so
/// workers write their results in place instead of returning vectors to be joined.
fn in_chunks_into<O: Send, T: Send>(out: &mut [O], work: impl Fn(std::ops::Range<usize>, &mut [O]) -> T + Sync) -> Vec<T> {
    let n = out.len();
    let threads = if n < PARALLEL_ROWS { 1 } else { std::thread::available_parallelism().map_or(1, |p| p.get()).min(8) };
    if threads == 1 {
        return vec![work(0..n, out)];
    }
    let step = n.div_ceil(threads);
    std::thread::scope(|s| {
        let mut parts = out.chunks_mut(step).enumerate();
        let (_, first) = parts.next().expect("n > 0");
        // The calling thread takes the first chunk itself.
        let handles: Vec<_> = parts
            .map(|(i, part)| {
                let work = &work;
                s.spawn(move || work(i * step..i * step + part.len(), part))
            })
            .collect();
        let mut results = vec![work(0..first.len(), first)];
        results.extend(handles.into_iter().map(|h| h.join().expect("worker panicked")));
        results
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::policy::score::Lights;

    /// One whole-unit market named X (the fixture of these tests and of `ranks` and `fills`).
    /// 250k rows of one market (two scoring chunks), with many exact ties: account, side,
    /// qty, entry, margin columns.
    pub(crate) fn two_chunk_rows() -> (Vec<u64>, Vec<i8>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = 250_000usize;
        (
            (0..n as u64).map(|i| i % 1000).collect(),
            (0..n).map(|i| if i % 3 == 0 { 1 } else { -1 }).collect(),
            (0..n).map(|i| (i % 17 + 1) as f64).collect(),
            (0..n).map(|i| (90 + i % 21) as f64).collect(),
            (0..n).map(|i| (i % 50) as f64).collect(),
        )
    }

    pub(crate) fn table() -> ([Grid; 1], [String; 1]) {
        ([Grid::new(0, 0, 0).unwrap()], ["X".to_string()])
    }

    const ACCOUNT: [u64; 4] = [1, 2, 3, 4];
    const SIDE: [i8; 4] = [-1, -1, -1, 1];
    const QTY: [f64; 4] = [10.0, 10.0, 10.0, 1.0];
    const ENTRY: [f64; 4] = [100.0, 100.0, 90.0, 90.0];
    const MARGIN: [f64; 4] = [20.0, 60.0, 10.0, 5.0];

    pub(crate) fn cols() -> PositionColumns<'static> {
        one_market(&ACCOUNT, &SIDE, &QTY, &ENTRY, &MARGIN)
    }

    /// Isolated rows of one market, no ADL caps.
    pub(crate) fn one_market<'a>(
        account: &'a [u64],
        side: &'a [i8],
        qty: &'a [f64],
        entry: &'a [f64],
        margin: &'a [f64],
    ) -> PositionColumns<'a> {
        PositionColumns { account, market: &[], side, qty, entry, margin, adl_cap: &[], cross: &[] }
    }

    #[test]
    fn chunked_runs_match_single_thread() {
        // 250k rows so that two chunks are used; compare against a direct sort.
        let (account, side, qty, entry, margin) = two_chunk_rows();
        let n = account.len();
        let c = one_market(&account, &side, &qty, &entry, &margin);
        let (g, names) = table();
        let t = MarketTable { grids: &g, marks: &[100.0], rates: &[0.005], names: &names };
        let r = rank(&c, &t, Policy::Bitmex, None, Lights::Count).unwrap();
        let mut shorts: Vec<((Fraction, u64, usize), usize)> = (0..n)
            .filter(|&i| side[i] == -1)
            .filter_map(|i| {
                let s = Policy::Bitmex.exact_score(
                    &g[0],
                    &Tiers::flat(5_000),
                    Side::Short,
                    qty[i] as i64,
                    entry[i] as i64,
                    margin[i] as i128,
                    100,
                )?;
                Some(((s, account[i], i), i))
            })
            .collect();
        // Reference order: exact score descending, then account, then row.
        shorts.sort_by(|a, b| b.0 .0.cmp_value(&a.0 .0).then(a.0 .1.cmp(&b.0 .1)).then(a.0 .2.cmp(&b.0 .2)));
        for (pos, &(_, row)) in shorts.iter().enumerate() {
            assert_eq!(r.rank[row] as usize, pos + 1);
        }
        let f = deleverage(&c, &t, Policy::Bitmex, 0, Side::Long, 1000.0, 99.0, 0, None).unwrap();
        let mut left = 1000i64;
        for (i, fill) in f.iter().enumerate() {
            let row = shorts[i].1;
            assert_eq!(fill.row as usize, row);
            assert_eq!(fill.lots, left.min(qty[row] as i64));
            left -= fill.lots;
        }
        assert_eq!(left, 0);
        // A bad value late in the second chunk is reported at its row.
        let mut bad = qty.clone();
        bad[240_000] = f64::NAN;
        bad[200_000] = -1.0;
        let c2 = PositionColumns { qty: &bad, ..c };
        assert!(rank(&c2, &t, Policy::Bitmex, None, Lights::Count).unwrap_err().to_string().starts_with("qty[row 200000]"));
    }
}

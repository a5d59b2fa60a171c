//! Stateless calls on columns: rank every row, or deleverage one quantity against a side.
//! Each validates every row inside the same pass that scores it; large inputs are split
//! into one chunk per core.

use std::collections::BinaryHeap;

use crate::core::book::input::{block_valid, check_side, parse_mark, parse_price, parse_row, PositionColumns};
use crate::core::book::position::{side_slot, Side};
use crate::core::market::tiers::{rate_ppm, Tiers};
use crate::core::policy::dydx::{distinct_accounts, start_of, walk_from, DydxWalk};
use crate::core::policy::kernel;
use crate::core::policy::prorata::{holding, pro_rata_shares, weighted_then_size, Holding, Weighting};
use crate::core::policy::ranking::{sort_queue, QueueOrder};
use crate::core::policy::score::{desc_key, key_score, lights_by_quantity, lights_le, near, Fraction, Lights, Policy};
use crate::core::units::error::{AdlError, Result};
use crate::core::units::fixed::Grid;

/// Inputs smaller than this run on one thread (spawning costs more than it saves).
const PARALLEL_ROWS: usize = 100_000;
/// Rows screened at a time by `block_valid`.
const BLOCK: usize = 1024;

/// Per-market parameters for a stateless call, indexed by market code.
pub struct MarketTable<'a> {
    pub grids: &'a [Grid],
    /// Mark per market code, as a float price.
    pub marks: &'a [f64],
    /// Maintenance-margin rate per market code (used by scores that need maintenance).
    pub rates: &'a [f64],
    pub names: &'a [String],
}

/// Output of `rank`, one value per input row. `rank == 0` means "not eligible" (and then
/// `score`/`percentile` are NaN and `lights` is 0).
#[derive(Debug, Default, PartialEq)]
pub struct Ranked {
    pub score: Vec<f64>,
    pub rank: Vec<u32>,
    pub percentile: Vec<f64>,
    pub lights: Vec<u8>,
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
    /// vectorised check and only the wanted rows are converted and scored.
    #[inline]
    fn score_rows(&self, range: std::ops::Range<usize>, wanted: impl Fn(u32, Side) -> bool, mut keep: impl FnMut(Scored)) -> Result<()> {
        let Some(g) = self.uniform else { return self.score_rows_scalar(range, wanted, keep) };
        let c = self.cols;
        let mut rows = [0u32; BLOCK];
        let mut block = Box::new(Block::default());
        let mut start = range.start;
        while start < range.end {
            let end = (start + BLOCK).min(range.end);
            if !block_valid(&g, &c.side[start..end], &c.qty[start..end], &c.entry[start..end], &c.margin[start..end]) {
                for row in start..end {
                    parse_row(&g, row, c.side[row], c.qty[row], c.entry[row], c.margin[row])?;
                }
            }
            // Collect the wanted rows without a branch per row (sides are random).
            let mut k = 0;
            for row in start..end {
                rows[k] = row as u32;
                k += wanted(c.market_of(row), c.side[row]) as usize;
            }
            // Score the wanted rows in one branch-free pass, then hand them on.
            let block = &mut *block;
            for (j, &row) in rows[..k].iter().enumerate() {
                let row = row as usize;
                block.side[j] = c.side[row] as f64;
                block.qty[j] = c.qty[row];
                block.entry[j] = c.entry[row];
                block.margin[j] = c.margin[row];
                block.mark[j] = self.marks[c.market_of(row) as usize] as f64;
            }
            match self.policy {
                Policy::Bitmex => bitmex_block(&g, k, block),
                // No branch-free kernel: every row takes the integer path.
                _ => block.exact[..k].fill(false),
            }
            for (j, &row) in rows[..k].iter().enumerate() {
                let row = row as usize;
                let code = c.market_of(row);
                // An exact row's grid integers, as `bitmex_block` rounded them (below 2^51);
                // computed only where a caller reads them.
                let (lots, entry, margin, score) = if block.exact[j] {
                    let entry = round_small(block.entry[j] * g.price_scale) as i64;
                    let margin = round_small(block.margin[j] * g.cash_scale) as i128;
                    debug_assert!(parse_row(&g, row, c.side[row], c.qty[row], c.entry[row], c.margin[row]).is_ok_and(|r| (
                        r.lots, r.entry, r.margin
                    ) == (
                        block.lots[j] as i64,
                        entry,
                        margin
                    )));
                    (block.lots[j] as i64, entry, margin, block.eligible[j].then_some(block.score[j]))
                } else {
                    let r = parse_row(&g, row, c.side[row], c.qty[row], c.entry[row], c.margin[row])?;
                    (r.lots, r.entry, r.margin, self.row_score(&g, code, row, r))
                };
                if let Some(score) = score {
                    let key = Key { score: desc_key(score), account: c.account[row], row: row as u32 };
                    keep(Scored { side: c.side[row], market: code, key, lots, entry, margin, score });
                }
            }
            start = end;
        }
        Ok(())
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
        wanted: impl Fn(u32, Side) -> bool,
        mut keep: impl FnMut(Scored),
    ) -> Result<()> {
        let c = self.cols;
        for row in range {
            let code = c.market_of(row);
            let g = &self.grids[code as usize];
            let r = parse_row(g, row, c.side[row], c.qty[row], c.entry[row], c.margin[row])?;
            if !wanted(code, r.side) {
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

    /// `pays` of a scored row, from what `score_rows` already parsed.
    fn scored_pays(&self, s: &Scored, adl: i64) -> bool {
        let g = &self.grids[s.market as usize];
        s.margin + s.side as i128 * g.value(s.lots, adl - s.entry) >= 0
    }

    /// Whether a (validated) row can pay for its lots at the ADL price `adl` (ticks of its
    /// market): the cash it would receive, `M + σ·q·(P_ADL − E)`, is >= 0 (docs/model.md §2
    /// step 4; every row is isolated here).
    fn pays(&self, row: usize, adl: i64) -> bool {
        let c = self.cols;
        let g = &self.grids[c.market_of(row) as usize];
        parse_row(g, row, c.side[row], c.qty[row], c.entry[row], c.margin[row])
            .is_ok_and(|r| r.margin + r.side as i128 * g.value(r.lots, adl - r.entry) >= 0)
    }

    /// Scores every 128th wanted row of `range` and returns the key below which the sample
    /// (scaled up) holds about twice `want` lots, or `None` if it holds less. Rows that fail
    /// validation are skipped here: the full pass reports them.
    fn sample_cut(&self, range: std::ops::Range<usize>, wanted: &impl Fn(u32, Side) -> bool, want: i64) -> Option<(Key, f64)> {
        const STRIDE: usize = 128;
        let c = self.cols;
        let mut sample: Vec<(Key, i64, f64)> = Vec::with_capacity(range.len() / STRIDE + 1);
        for row in range.step_by(STRIDE) {
            let code = c.market_of(row);
            let g = &self.grids[code as usize];
            let Ok(r) = parse_row(g, row, c.side[row], c.qty[row], c.entry[row], c.margin[row]) else { continue };
            if !wanted(code, r.side) {
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

/// Inputs and outputs of `bitmex_block` for the wanted rows of one block.
struct Block {
    side: [f64; BLOCK],
    qty: [f64; BLOCK],
    entry: [f64; BLOCK],
    margin: [f64; BLOCK],
    mark: [f64; BLOCK],
    score: [f64; BLOCK],
    lots: [f64; BLOCK],
    eligible: [bool; BLOCK],
    exact: [bool; BLOCK],
}

impl Default for Block {
    fn default() -> Self {
        Block {
            side: [0.0; BLOCK],
            qty: [0.0; BLOCK],
            entry: [0.0; BLOCK],
            margin: [0.0; BLOCK],
            mark: [0.0; BLOCK],
            score: [0.0; BLOCK],
            lots: [0.0; BLOCK],
            eligible: [false; BLOCK],
            exact: [false; BLOCK],
        }
    }
}

/// BitMEX scores of `n` validated rows on one grid, computed on the grid integers held in
/// f64 with no branches, so the compiler vectorises the loop (divisions included). Where
/// every intermediate is an integer below 2^53 each operation is exact and the score is
/// bit-for-bit `bitmex_score`'s; rows outside that range get `exact = false` and go
/// through the integer path.
fn bitmex_block(g: &Grid, n: usize, b: &mut Block) {
    const TWO_51: f64 = 2_251_799_813_685_248.0;
    const TWO_53: f64 = 9_007_199_254_740_992.0;
    let f = g.factor as f64;
    for i in 0..n {
        let (s, p) = (b.side[i], b.mark[i]);
        let mv = b.margin[i] * g.cash_scale;
        // Validated: qty and entry are within 1e15 < 2^51 on the grid.
        let q = round_small(b.qty[i] * g.qty_scale);
        let t = round_small(b.entry[i] * g.price_scale);
        let m = round_small(mv);
        let d = s * (p - t);
        let equity = m + s * (q * (p - t) * f);
        let notional = q * p * f;
        let win = d > 0.0;
        let num = if win { notional } else { equity };
        let den = if win { equity } else { notional };
        b.score[i] = d * num / (t * den);
        b.lots[i] = q;
        b.eligible[i] = equity > 0.0;
        b.exact[i] = (mv < TWO_51) & (q * p.max(t) * f < TWO_53);
    }
}

/// `v` rounded to the nearest integer, for |v| < 2^51, without a branch.
#[inline(always)]
fn round_small(v: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5·2^52: (v + MAGIC) − MAGIC rounds |v| < 2^51
    (v + MAGIC) - MAGIC
}

/// Runs `work` on consecutive row ranges, one per core for large inputs, and returns the
/// results in row order (so the first error reported is the one at the lowest row).
fn in_chunks<T: Send>(n: usize, work: impl Fn(std::ops::Range<usize>) -> T + Sync) -> Vec<T> {
    let threads = if n < PARALLEL_ROWS { 1 } else { std::thread::available_parallelism().map_or(1, |p| p.get()).min(8) };
    if threads == 1 {
        return vec![work(0..n)];
    }
    let step = n.div_ceil(threads);
    std::thread::scope(|s| {
        // The calling thread takes the first chunk itself.
        let handles: Vec<_> = (1..threads)
            .map(|i| {
                let work = &work;
                s.spawn(move || work(i * step..((i + 1) * step).min(n)))
            })
            .collect();
        let mut out = vec![work(0..step.min(n))];
        out.extend(handles.into_iter().map(|h| h.join().expect("worker panicked")));
        out
    })
}

/// Ranks every row within its (market, side): exact rank, percentile and lights by count
/// (`r/n`) or by cumulative quantity (`score::Lights`). Ties: ascending account, then row order.
pub fn rank(
    cols: &PositionColumns<'_>,
    markets: &MarketTable<'_>,
    policy: Policy,
    custom: Option<&[f64]>,
    method: Lights,
) -> Result<Ranked> {
    if !policy.is_ranked() {
        return Err(AdlError::config("policy", format!("{} does not rank positions", policy.name())));
    }
    let ctx = Context::new(cols, markets, policy, custom)?;
    let n = cols.len();
    let n_groups = markets.grids.len() * 2;
    // Each chunk scores its rows in order and collects packed (score key, row, lots) per
    // group; by quantity it also sums the lots of each group.
    let by_qty = method == Lights::Quantity;
    type Part = (Vec<f64>, Vec<Vec<u128>>, Vec<i128>);
    let parts = in_chunks(n, |range| -> Result<Part> {
        let mut scores = vec![f64::NAN; range.len()];
        let mut held = vec![0i128; n_groups];
        let start = range.start;
        let mut groups: Vec<Vec<u128>> = vec![Vec::new(); n_groups];
        if n_groups <= 4 {
            // Reserve (virtual memory only until touched) so pushes never reallocate.
            groups.iter_mut().for_each(|g| g.reserve(range.len()));
        }
        ctx.score_rows(
            range,
            |_, _| true,
            |s| {
                scores[s.key.row as usize - start] = s.score;
                let group = s.market as usize * 2 + side_slot(s.side);
                // The lots travel with the sort, so the by-quantity pass reads them in queue
                // order (0 when they need more than 32 bits: then they are read from the row).
                let packed_lots = if by_qty {
                    held[group] += s.lots as i128;
                    u32::try_from(s.lots).unwrap_or(0)
                } else {
                    0
                };
                groups[group].push(((s.key.score as u128) << 64) | ((s.key.row as u128) << 32) | packed_lots as u128);
            },
        )?;
        Ok((scores, groups, held))
    });
    let mut score = Vec::with_capacity(n);
    let mut totals = vec![0i128; n_groups];
    let mut groups: Vec<Vec<u128>> = vec![Vec::new(); n_groups];
    for part in parts {
        let (s, g, h) = part?;
        score.extend_from_slice(&s);
        totals.iter_mut().zip(h).for_each(|(t, h)| *t += h);
        for (all, mut v) in groups.iter_mut().zip(g) {
            if all.is_empty() {
                *all = v;
            } else {
                all.append(&mut v);
            }
        }
    }
    // By quantity: a queue entry's lots (read from the row when they need more than 32 bits)
    // and whether the next entry has exactly its score.
    let lots_of = |x: u128| match (x & u32::MAX as u128) as i64 {
        0 => {
            let r = packed_row(x);
            let g = &ctx.grids[cols.market_of(r) as usize];
            parse_row(g, r, cols.side[r], cols.qty[r], cols.entry[r], cols.margin[r]).map_or(0, |p| p.lots)
        }
        held => held,
    };
    let tie = |a: u128, b: u128| {
        near(packed_score(a), packed_score(b)) && {
            let (ra, rb) = (packed_row(a), packed_row(b));
            ctx.same_score((score[ra], ra as u32), (score[rb], rb as u32))
        }
    };
    // Per group: sort on the packed integer key, settle runs of near-tied scores exactly
    // (score, account, row) as `sort_queue` does, then walk the queue once for each row's rank,
    // percentile and lights, filed by window of rows (see `Placed`).
    let windows = (n >> WINDOW_BITS) + 1;
    // Each worker files into its own buckets, one per window of rows.
    let buckets =
        |workers: usize| -> Vec<Vec<Placed>> { (0..windows).map(|_| Vec::with_capacity(n / windows / workers * 5 / 4)).collect() };
    let place = |group: usize, g: &mut Vec<u128>, out: &mut [Vec<Placed>]| {
        g.sort_unstable();
        let row = |x: u128| packed_row(x) as u32;
        // The key holds the score: no random reads of `score` except inside near-tie runs.
        let mut start = 0;
        for i in 1..=g.len() {
            if i == g.len() || !near(packed_score(g[i - 1]), packed_score(g[i])) {
                if i - start > 1 {
                    g[start..i].sort_by(|&a, &b| ctx.cmp((score[row(a) as usize], row(a)), (score[row(b) as usize], row(b))));
                }
                start = i;
            }
        }
        let mut file = |x: u128, rank: usize, percentile: f64, lights: u8| {
            let row = packed_row(x);
            out[row >> WINDOW_BITS].push(Placed::new(row, rank as u32, percentile, lights));
        };
        if by_qty {
            // Percentile = lots queued up to the end of the entry's run of exactly equal
            // scores / lots of the queue; lights 6 − ⌈5·percentile⌉ in integers.
            let total = totals[group];
            // Within u64 / 5 (any real queue): u64 arithmetic, no i128 division or conversion.
            let small = u64::try_from(total).ok().filter(|&t| t <= u64::MAX / 5);
            let total_f = total as f64;
            let (mut start, mut cum) = (0, 0i128);
            for i in 0..g.len() {
                cum += lots_of(g[i]) as i128;
                if i + 1 == g.len() || !tie(g[i], g[i + 1]) {
                    let (percentile, lights) = match small {
                        Some(t) => ((cum as u64) as f64 / total_f, lights_le(cum as u64, t)),
                        None => (cum as f64 / total_f, lights_by_quantity(cum, total)),
                    };
                    (start..=i).for_each(|k| file(g[k], k + 1, percentile, lights));
                    start = i + 1;
                }
            }
        } else {
            // Percentile r/n, lights 6 − ⌈5·r/n⌉ (n < 2^32).
            let total = g.len() as u64;
            for (i, &x) in g.iter().enumerate() {
                let r = i as u64 + 1;
                file(x, r as usize, r as f64 / total as f64, lights_le(r, total));
            }
        }
    };
    let big = groups.iter().filter(|g| g.len() >= PARALLEL_ROWS / 2).count();
    let placed: Vec<Vec<Vec<Placed>>> = if big >= 2 {
        // A bounded pool: at most one worker per core, each taking the next group.
        let workers = std::thread::available_parallelism().map_or(1, |p| p.get()).min(8).min(big);
        let queue = std::sync::Mutex::new(groups.iter_mut().enumerate());
        std::thread::scope(|s| {
            let spawned: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut out = buckets(workers);
                        loop {
                            // Take the next group, releasing the lock before working on it.
                            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                            let Some((i, g)) = next else { return out };
                            place(i, g, &mut out);
                        }
                    })
                })
                .collect();
            spawned.into_iter().map(|h| h.join().expect("worker panicked")).collect()
        })
    } else {
        let mut out = buckets(1);
        groups.iter_mut().enumerate().for_each(|(i, g)| place(i, g, &mut out));
        vec![out]
    };
    drop(groups);
    // Write the outputs window by window (in parallel for large inputs): every write of a
    // window lands in a few hundred KB of the output columns, instead of at random in all.
    let mut rank = vec![0u32; n];
    let mut percentile = vec![f64::NAN; n];
    let mut light = vec![0u8; n];
    let width = 1 << WINDOW_BITS;
    type Window<'a> = (usize, ((&'a mut [u32], &'a mut [f64]), &'a mut [u8]));
    let write = |(win, ((rank, percentile), light)): &mut Window<'_>| {
        for p in placed.iter().flat_map(|g| &g[*win]) {
            let i = p.offset();
            rank[i] = p.rank;
            percentile[i] = p.percentile;
            light[i] = p.lights();
        }
    };
    let mut jobs: Vec<Window<'_>> =
        rank.chunks_mut(width).zip(percentile.chunks_mut(width)).zip(light.chunks_mut(width)).enumerate().collect();
    let threads = if n < PARALLEL_ROWS { 1 } else { std::thread::available_parallelism().map_or(1, |p| p.get()).min(8) };
    let per = jobs.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let mut parts = jobs.chunks_mut(per);
        let first = parts.next();
        for part in parts {
            s.spawn(|| part.iter_mut().for_each(write));
        }
        first.into_iter().for_each(|part| part.iter_mut().for_each(write));
    });
    Ok(Ranked { score, rank, percentile, lights: light })
}

/// Rows per output window of `rank` (2^15: a window's rank, percentile and lights, 13 bytes
/// a row, stay within a core's L2 cache).
const WINDOW_BITS: u32 = 15;

/// A row's rank, percentile and lights as `rank` computes them in queue order, waiting to be
/// written to its window of the output columns: 16 bytes.
#[derive(Clone, Copy)]
struct Placed {
    percentile: f64,
    rank: u32,
    /// The row's offset in its window (low 16 bits) and its lights (above).
    slot: u32,
}

impl Placed {
    #[inline]
    fn new(row: usize, rank: u32, percentile: f64, lights: u8) -> Placed {
        Placed { percentile, rank, slot: (row & ((1 << WINDOW_BITS) - 1)) as u32 | (lights as u32) << 16 }
    }
    #[inline]
    fn offset(&self) -> usize {
        (self.slot & 0xFFFF) as usize
    }
    #[inline]
    fn lights(&self) -> u8 {
        (self.slot >> 16) as u8
    }
}

/// The score of a packed (score key, row, lots) queue entry of `rank`.
#[inline]
fn packed_score(x: u128) -> f64 {
    key_score((x >> 64) as u64)
}

/// The row of a packed (score key, row, lots) queue entry of `rank`.
#[inline]
fn packed_row(x: u128) -> usize {
    ((x >> 32) & u32::MAX as u128) as usize
}

/// One ADL fill of the stateless `deleverage`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatelessFill {
    pub row: u32,
    pub lots: i64,
    pub rank: u32,
    pub score: f64,
}

/// The best candidates seen so far that are needed to cover `want` lots, in float-score
/// order: a max-heap on the key (its top is the worst kept), trimmed whenever the others
/// already cover `want`. Candidates within a near-tie of the worst kept are never dropped,
/// so the exact order (see `cmp_desc`) can be settled among them at the end.
struct TopQueue {
    heap: BinaryHeap<(Key, i64, u64)>,
    held: i128,
    want: i128,
    available: i128,
}

impl TopQueue {
    fn new(want: i64) -> TopQueue {
        TopQueue { heap: BinaryHeap::new(), held: 0, want: want as i128, available: 0 }
    }

    #[inline]
    fn offer(&mut self, key: Key, lots: i64, score: f64) {
        self.available += lots as i128;
        if self.held >= self.want {
            if let Some(top) = self.heap.peek() {
                if key >= top.0 && !near(score, f64::from_bits(top.2)) {
                    return;
                }
            }
        }
        self.heap.push((key, lots, score.to_bits()));
        self.held += lots as i128;
        self.trim();
    }

    /// Drops the worst candidates while the rest still covers `want`. A near-tie cluster at
    /// the bottom goes only as a whole (its exact order is settled later).
    fn trim(&mut self) {
        while let Some(&top) = self.heap.peek() {
            if self.held - (top.1 as i128) < self.want {
                return;
            }
            self.heap.pop();
            match self.heap.peek() {
                Some(next) if near(f64::from_bits(next.2), f64::from_bits(top.2)) => {
                    self.heap.push(top);
                    self.trim_cluster();
                    return;
                }
                _ => self.held -= top.1 as i128,
            }
        }
    }

    /// The rare case: the worst candidates are near-tied. Drop them all or keep them all.
    #[cold]
    fn trim_cluster(&mut self) {
        let worst = f64::from_bits(self.heap.peek().expect("non-empty").2);
        let mut cluster = Vec::new();
        let mut lots = 0i128;
        while let Some(&c) = self.heap.peek() {
            if !near(f64::from_bits(c.2), worst) {
                break;
            }
            lots += c.1 as i128;
            cluster.push(c);
            self.heap.pop();
        }
        if self.held - lots >= self.want {
            self.held -= lots;
            self.trim();
        } else {
            self.heap.extend(cluster);
        }
    }
}

/// Candidates for ADL fills: (queue key, lots, score bits).
type Candidates = Vec<(Key, i64, u64)>;

/// Sorts candidates by key and drops those after the prefix that covers `want` lots,
/// keeping any near-tie of the last needed one (their exact order is settled later).
fn keep_covering_prefix(cands: &mut Candidates, want: i64) {
    cands.sort_unstable_by_key(|c| c.0);
    let mut held = 0i128;
    if let Some(last) = cands.iter().position(|c| {
        held += c.1 as i128;
        held >= want as i128
    }) {
        let edge = f64::from_bits(cands[last].2);
        let end = cands[last + 1..].iter().position(|c| !near(f64::from_bits(c.2), edge)).map_or(cands.len(), |p| last + 1 + p);
        cands.truncate(end);
    }
}

/// Closes `qty` of a bankrupt `side` position in market `market` against the opposite side,
/// in queue order (whole positions, partial last). Σ lots = qty in lots exactly.
/// One streaming pass keeps only the candidates that can be needed, so the cost is
/// O(n + k log k) for k fills, with no sort of the whole side.
#[allow(clippy::too_many_arguments)]
pub fn deleverage(
    cols: &PositionColumns<'_>,
    markets: &MarketTable<'_>,
    policy: Policy,
    market: u32,
    side: Side,
    qty: f64,
    price: f64,
    seed: u64,
    custom: Option<&[f64]>,
) -> Result<Vec<StatelessFill>> {
    check_side(side, None)?;
    if market as usize >= markets.grids.len() {
        return Err(AdlError::config("symbol", format!("market code {market} out of range")));
    }
    let g = markets.grids[market as usize];
    let want = match g.lots(qty) {
        Some(l) if l > 0 => l,
        _ => return Err(AdlError::config("qty", format!("{qty} must be > 0 (at least one lot) and finite"))),
    };
    let adl = parse_price(&g, "price", 0, price).map_err(|_| AdlError::config("price", format!("{price} must be a finite price > 0")))?;
    let ctx = Context::new(cols, markets, policy, custom)?;
    let wanted = |m: u32, s: Side| (m == market) & (s == -side);
    if !policy.is_ranked() {
        return unranked_fills(&ctx, &wanted, want, &g, seed, adl);
    }
    let parts = in_chunks(cols.len(), |range| -> Result<(Candidates, i128)> {
        // Fast path: a cut estimated from a sample keeps about 2x what the chunk needs,
        // in a plain Vec. If the cut proves too strict, the chunk runs again with the heap.
        if let Some(cut) = ctx.sample_cut(range.clone(), &wanted, want) {
            let (mut kept, mut held, mut available) = (Vec::new(), 0i128, 0i128);
            ctx.score_rows(range.clone(), wanted, |s| {
                available += s.lots as i128;
                if s.key <= cut.0 || near(s.score, cut.1) {
                    kept.push((s.key, s.lots, s.score.to_bits()));
                    held += s.lots as i128;
                }
            })?;
            if held >= want as i128 || held == available {
                keep_covering_prefix(&mut kept, want);
                return Ok((kept, available));
            }
        }
        let mut top = TopQueue::new(want);
        ctx.score_rows(range, wanted, |s| top.offer(s.key, s.lots, s.score))?;
        Ok((top.heap.into_vec(), top.available))
    });
    let mut cands = Vec::new();
    let mut available = 0i128;
    for part in parts {
        let (kept, avail) = part?;
        available += avail;
        cands.extend(kept);
    }
    if available < want as i128 && !kernel::falls_back_to_size(policy) {
        // Short even counting everyone: report what the rows that can pay hold.
        let mut payers = 0i64;
        ctx.score_rows(0..cols.len(), wanted, |s| payers += if ctx.scored_pays(&s, adl) { s.lots } else { 0 })?;
        let (req, avail) = (g.qty_f64(want), g.qty_f64(payers));
        return Err(AdlError::InsufficientLiquidity { requested: req, available: avail, missing: req - avail });
    }
    sort_queue(&mut cands, |c| (f64::from_bits(c.2), c.0.account, c.0.row), &ctx);
    let (mut fills, mut left, passed) = queue_fills(&ctx, &cands, want, adl);
    if left > 0 && passed {
        // Rows that cannot pay at the ADL price were passed over, and the kept prefix may
        // not cover the rest: walk the whole side (rare; O(n log n)).
        cands.clear();
        ctx.score_rows(0..cols.len(), wanted, |s| cands.push((s.key, s.lots, s.score.to_bits())))?;
        sort_queue(&mut cands, |c| (f64::from_bits(c.2), c.0.account, c.0.row), &ctx);
        (fills, left, _) = queue_fills(&ctx, &cands, want, adl);
    }
    if left > 0 {
        if !kernel::falls_back_to_size(policy) {
            let (req, avail) = (g.qty_f64(want), g.qty_f64(want - left));
            return Err(AdlError::InsufficientLiquidity { requested: req, available: avail, missing: req - avail });
        }
        // min_max_leverage: every profitable row that can pay is taken (all were candidates).
        let queued: Vec<u32> = cands.iter().map(|c| c.0.row).collect();
        fills.extend(size_fallback(cols, markets, &wanted, &queued, (want, left), &g, adl)?);
    }
    Ok(fills)
}

/// Fills of the sorted candidates in queue order (whole rows, partial last), passing over
/// rows that cannot pay at the ADL price; the rank counts every queued row. Returns the
/// fills, the lots left and whether any row was passed over.
fn queue_fills(ctx: &Context<'_>, cands: &Candidates, want: i64, adl: i64) -> (Vec<StatelessFill>, i64, bool) {
    let mut fills = Vec::new();
    let mut left = want;
    let mut passed = false;
    for (i, &(key, lots, score)) in cands.iter().enumerate() {
        if left == 0 {
            break;
        }
        if !ctx.pays(key.row as usize, adl) {
            passed = true;
            continue;
        }
        let take = left.min(lots);
        fills.push(StatelessFill { row: key.row, lots: take, rank: i as u32 + 1, score: f64::from_bits(score) });
        left -= take;
    }
    (fills, left, passed)
}

/// The rest of a `min_max_leverage` event once the profitable queue is used up: split by
/// size over the other opposite rows that are not bankrupt (docs/model.md §4), in account order.
fn size_fallback(
    cols: &PositionColumns<'_>,
    markets: &MarketTable<'_>,
    wanted: &impl Fn(u32, Side) -> bool,
    queued: &[u32],
    (want, left): (i64, i64),
    g: &Grid,
    adl: i64,
) -> Result<Vec<StatelessFill>> {
    let queued: rustc_hash::FxHashSet<u32> = queued.iter().copied().collect();
    let ctx = Context::new(cols, markets, Policy::SizeProRata, None)?;
    let mut rows: Vec<(u64, u32, i64)> = Vec::new();
    ctx.score_rows(0..cols.len(), wanted, |s| {
        if !queued.contains(&s.key.row) && ctx.scored_pays(&s, adl) {
            rows.push((s.key.account, s.key.row, s.lots));
        }
    })?;
    rows.sort_unstable();
    let shares = pro_rata_shares(&rows.iter().map(|r| Holding::by_size(r.0, r.2, r.2)).collect::<Vec<_>>(), left);
    let got: i64 = shares.iter().sum();
    if got < left {
        let (req, avail) = (g.qty_f64(want), g.qty_f64(want - left + got));
        return Err(AdlError::InsufficientLiquidity { requested: req, available: avail, missing: req - avail });
    }
    Ok(rows
        .iter()
        .zip(shares)
        .filter(|(_, l)| *l > 0)
        .map(|(r, lots)| StatelessFill { row: r.1, lots, rank: 0, score: f64::NAN })
        .collect())
}

/// `deleverage` for the policies that rank nobody (`rank` 0 and `score` NaN in the fills):
/// size pro-rata splits by size, fills in account order, over the rows that can pay at the
/// ADL price; dYdX walks from a start drawn from the seed (event 0) uniformly over the
/// accounts on the side, visiting at most 500 of them, those that cannot pay skipped but
/// counted; fills in walk order. Rows are in account order.
fn unranked_fills(
    ctx: &Context<'_>,
    wanted: &impl Fn(u32, Side) -> bool,
    want: i64,
    g: &Grid,
    seed: u64,
    adl: i64,
) -> Result<Vec<StatelessFill>> {
    let takes: Vec<(u64, u32, i64)> = if ctx.policy == Policy::Dydx {
        // dYdX's candidates include those that cannot pay (skipped in the walk, counted).
        let mut rows: Vec<(u64, u32, i64)> = Vec::new();
        let mut pays = rustc_hash::FxHashSet::default();
        ctx.score_rows(0..ctx.cols.len(), wanted, |s| {
            rows.push((s.key.account, s.key.row, s.lots));
            if ctx.scored_pays(&s, adl) {
                pays.insert(s.key.row);
            }
        })?;
        rows.sort_unstable();
        let holdings: Vec<(u64, i64)> = rows.iter().map(|r| (r.0, r.2)).collect();
        let start = start_of(seed, 0, distinct_accounts(&holdings));
        let walk = walk_from(&holdings, start, want, DydxWalk::MAX_ACCOUNTS, |i| pays.contains(&rows[i].1));
        walk.into_iter().map(|(i, lots)| (rows[i].0, rows[i].1, lots)).collect()
    } else {
        let weighting = kernel::weighting(ctx.policy);
        // One pass over the rows that can pay, in row order. The split does not depend on
        // the order (ties go to the lower account, then the earlier row, and rows of one
        // account stay in row order), so only the fills are sorted into account order.
        let (mut rows, mut holdings) = (Vec::new(), Vec::new());
        ctx.score_rows(0..ctx.cols.len(), wanted, |s| {
            if ctx.scored_pays(&s, adl) {
                rows.push(s.key.row);
                holdings.push(match weighting {
                    Some(w) => ctx.holding(&s, w),
                    None => Holding::by_size(s.key.account, s.lots, s.lots),
                });
            }
        })?;
        let shares = match weighting {
            Some(_) => weighted_then_size(&holdings, want),
            None => pro_rata_shares(&holdings, want),
        };
        let mut takes: Vec<(u64, u32, i64)> =
            shares.into_iter().enumerate().filter(|t| t.1 > 0).map(|(i, lots)| (holdings[i].account, rows[i], lots)).collect();
        takes.sort_unstable();
        takes
    };
    let got: i128 = takes.iter().map(|t| t.2 as i128).sum();
    if got < want as i128 {
        let (req, avail) = (g.qty_f64(want), g.qty_f64(got as i64));
        return Err(AdlError::InsufficientLiquidity { requested: req, available: avail, missing: req - avail });
    }
    Ok(takes.into_iter().map(|(_, row, lots)| StatelessFill { row, lots, rank: 0, score: f64::NAN }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::score::queue_lights;

    fn table() -> ([Grid; 1], [String; 1]) {
        ([Grid::new(0, 0, 0).unwrap()], ["X".to_string()])
    }

    const ACCOUNT: [u64; 4] = [1, 2, 3, 4];
    const SIDE: [i8; 4] = [-1, -1, -1, 1];
    const QTY: [f64; 4] = [10.0, 10.0, 10.0, 1.0];
    const ENTRY: [f64; 4] = [100.0, 100.0, 90.0, 90.0];
    const MARGIN: [f64; 4] = [20.0, 60.0, 10.0, 5.0];

    fn cols() -> PositionColumns<'static> {
        one_market(&ACCOUNT, &SIDE, &QTY, &ENTRY, &MARGIN)
    }

    /// Isolated rows of one market, no ADL caps.
    fn one_market<'a>(account: &'a [u64], side: &'a [i8], qty: &'a [f64], entry: &'a [f64], margin: &'a [f64]) -> PositionColumns<'a> {
        PositionColumns { account, market: &[], side, qty, entry, margin, adl_cap: &[], cross: &[] }
    }

    #[test]
    fn rank_hand_computed() {
        // Mark 96, whole units.
        // row0 short 10 @100 margin 20: score 0.64 (see score.rs)
        // row1 short 10 @100 margin 60: e = 100, ℓ = 9.6, score 0.384
        // row2 short 10 @ 90 margin 10: e = 10 − 60 < 0: bankrupt, no rank
        // row3 long 1 @ 90 margin 5: pnl% = 6/90, e = 11, ℓ = 96/11, score 0.5818
        let (g, names) = table();
        let t = MarketTable { grids: &g, marks: &[96.0], rates: &[0.005], names: &names };
        let r = rank(&cols(), &t, Policy::Bitmex, None, Lights::Count).unwrap();
        assert_eq!(r.rank, vec![1, 2, 0, 1]);
        // lights = 6 − ⌈5·r/n⌉: shorts n = 2 → 3 and 1; the lone long → 1.
        assert_eq!(r.lights, vec![3, 1, 0, 1]);
        assert_eq!(r.percentile[1], 1.0);
        assert!(r.score[2].is_nan());
    }

    #[test]
    fn rank_lights_by_quantity_hand_computed() {
        // Six longs holding 10, 20, 30, 10, 10, 20, queued by the caller's scores 6..1.
        let account = [1u64, 2, 3, 4, 5, 6];
        let side = [1i8; 6];
        let qty = [10.0, 20.0, 30.0, 10.0, 10.0, 20.0];
        let (entry, margin) = ([100.0; 6], [100.0; 6]);
        let c = one_market(&account, &side, &qty, &entry, &margin);
        let (g, names) = table();
        let t = MarketTable { grids: &g, marks: &[100.0], rates: &[0.005], names: &names };
        let scores = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0];
        // Cumulative 10, 30, 60, 70, 80, 100 of 100: 6 − ⌈0.5, 1.5, 3, 3.5, 4, 5⌉.
        let q = rank(&c, &t, Policy::Custom, Some(&scores), Lights::Quantity).unwrap();
        assert_eq!(q.lights, vec![5, 4, 3, 2, 2, 1]);
        assert_eq!(q.percentile, vec![0.1, 0.3, 0.6, 0.7, 0.8, 1.0]);
        // By count: 6 − ⌈5·r/6⌉ = 5, 4, 3, 2, 1, 1.
        let n = rank(&c, &t, Policy::Custom, Some(&scores), Lights::Count).unwrap();
        assert_eq!(n.lights, vec![5, 4, 3, 2, 1, 1]);
        // Accounts 2 and 3 tie exactly (score 5): ranks 2 and 3 by account, and both take the
        // end of their group, cumulative 60 → lights 3, percentile 0.6.
        let tied = rank(&c, &t, Policy::Custom, Some(&[6.0, 5.0, 5.0, 3.0, 2.0, 1.0]), Lights::Quantity).unwrap();
        assert_eq!(tied.rank, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(tied.lights, vec![5, 3, 3, 2, 2, 1]);
        assert_eq!((tied.percentile[1], tied.percentile[2]), (0.6, 0.6));
        // Holdings beyond 32 bits of lots (read from the row, not the packed queue entry):
        // the same proportions, 2^33 times larger, give the same lights; one small holding
        // among them (10 of 10 + 2^33·90 lots) stays exact.
        let big: Vec<f64> = qty.iter().map(|q| q * 2f64.powi(33)).collect();
        let c_big = PositionColumns { qty: &big, ..c };
        let q = rank(&c_big, &t, Policy::Custom, Some(&scores), Lights::Quantity).unwrap();
        assert_eq!((q.lights, q.percentile), (vec![5, 4, 3, 2, 2, 1], vec![0.1, 0.3, 0.6, 0.7, 0.8, 1.0]));
        let mixed = [10.0, big[1], big[2], big[3], big[4], big[5]];
        let q = rank(&PositionColumns { qty: &mixed, ..c }, &t, Policy::Custom, Some(&scores), Lights::Quantity).unwrap();
        // Cumulative 10 of 10 + 2^33·90: percentile ≈ 1.3e-11 (lights 5); the last holds the end.
        assert_eq!((q.lights[0], q.lights[5], q.percentile[5]), (5, 1, 1.0));
        assert_eq!(q.percentile[0], 10.0 / (10.0 + 2f64.powi(33) * 90.0));
    }

    #[test]
    fn rank_lights_by_quantity_beyond_64_bits_of_lots() {
        // 20,000 longs of 10^15 lots each (2·10^19 in the queue, past u64): with equal
        // holdings, lights by quantity are lights by count, 6 − ⌈5·r/n⌉.
        let n = 20_000;
        let account: Vec<u64> = (1..=n as u64).collect();
        let (side, qty) = (vec![1i8; n], vec![1e15; n]);
        let (entry, margin) = (vec![100.0; n], vec![1e17; n]);
        let scores: Vec<f64> = (0..n).map(|i| (n - i) as f64).collect();
        let c = one_market(&account, &side, &qty, &entry, &margin);
        let (g, names) = table();
        let t = MarketTable { grids: &g, marks: &[100.0], rates: &[0.005], names: &names };
        let by_qty = rank(&c, &t, Policy::Custom, Some(&scores), Lights::Quantity).unwrap();
        let by_count = rank(&c, &t, Policy::Custom, Some(&scores), Lights::Count).unwrap();
        assert_eq!(by_qty.rank, by_count.rank);
        assert_eq!(by_qty.lights, by_count.lights);
        assert_eq!((by_qty.lights[0], by_qty.lights[n - 1], by_qty.percentile[n - 1]), (5, 1, 1.0));
    }

    /// `rank` the plain way: per (market, side), sort the eligible rows by exact score
    /// (descending; the float for `custom`), then account, then row; percentile and lights
    /// from `score::queue_lights` with ties where the exact scores are equal.
    fn reference_rank(c: &PositionColumns<'_>, t: &MarketTable<'_>, policy: Policy, custom: Option<&[f64]>, method: Lights) -> Ranked {
        let n = c.len();
        let mut out = Ranked { score: vec![f64::NAN; n], rank: vec![0; n], percentile: vec![f64::NAN; n], lights: vec![0; n] };
        let tiers: Vec<Tiers> = t.rates.iter().map(|&r| Tiers::flat(rate_ppm("rate", r).unwrap())).collect();
        // (group, exact score, float score, lots, row) of each eligible row.
        let mut queued = Vec::new();
        for row in 0..n {
            let m = c.market_of(row) as usize;
            let g = &t.grids[m];
            let r = parse_row(g, row, c.side[row], c.qty[row], c.entry[row], c.margin[row]).unwrap();
            let mark = g.ticks(t.marks[m]).unwrap();
            let Some(float) = policy.score(g, &tiers[m], r.side, r.lots, r.entry, r.margin, mark) else { continue };
            let exact = policy.exact_score(g, &tiers[m], r.side, r.lots, r.entry, r.margin, mark);
            let float = custom.map_or(float, |s| s[row]);
            out.score[row] = float;
            queued.push((m * 2 + side_slot(r.side), exact, float, r.lots, row));
        }
        let order = |a: &(usize, Option<Fraction>, f64, i64, usize), b: &(usize, Option<Fraction>, f64, i64, usize)| {
            let by_score = match (&a.1, &b.1) {
                (Some(x), Some(y)) => y.cmp_value(x),
                _ => desc_key(a.2).cmp(&desc_key(b.2)),
            };
            a.0.cmp(&b.0).then(by_score).then(c.account[a.4].cmp(&c.account[b.4])).then(a.4.cmp(&b.4))
        };
        queued.sort_by(order);
        for group in queued.chunk_by(|a, b| a.0 == b.0) {
            let lots: Vec<i64> = group.iter().map(|q| q.3).collect();
            let tie = |i: usize| match (&group[i].1, &group[i + 1].1) {
                (Some(x), Some(y)) => x.cmp_value(y).is_eq(),
                _ => desc_key(group[i].2) == desc_key(group[i + 1].2),
            };
            for (i, ((pct, lights), q)) in queue_lights(method, &lots, tie).into_iter().zip(group).enumerate() {
                (out.rank[q.4], out.percentile[q.4], out.lights[q.4]) = (i as u32 + 1, pct, lights);
            }
        }
        out
    }

    /// `Ranked` with NaN made comparable (bit patterns).
    fn comparable(r: &Ranked) -> (Vec<u64>, &[u32], Vec<u64>, &[u8]) {
        (r.score.iter().map(|x| x.to_bits()).collect(), &r.rank, r.percentile.iter().map(|x| x.to_bits()).collect(), &r.lights)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]
        #[test]
        fn rank_equals_the_plain_sort(
            rows in proptest::collection::vec((0..3u32, proptest::bool::ANY, 1..40u32, 90..111u32, 0..300u32, 0..6u64, 0..5u32), 1..200),
            custom in proptest::bool::ANY,
            big_lots in proptest::bool::ANY,
        ) {
            // Few distinct values, so exact ties (equal scores, equal accounts) are common;
            // `big_lots` scales some holdings past 32 bits of lots.
            let account: Vec<u64> = rows.iter().map(|r| r.5).collect();
            let market: Vec<u32> = rows.iter().map(|r| r.0).collect();
            let side: Vec<i8> = rows.iter().map(|r| if r.1 { 1 } else { -1 }).collect();
            let scale = |i: usize| if big_lots && i.is_multiple_of(3) { 2f64.powi(33) } else { 1.0 };
            let qty: Vec<f64> = rows.iter().enumerate().map(|(i, r)| r.2 as f64 * scale(i)).collect();
            let entry: Vec<f64> = rows.iter().map(|r| r.3 as f64).collect();
            let margin: Vec<f64> = rows.iter().enumerate().map(|(i, r)| r.4 as f64 * scale(i)).collect();
            let scores: Vec<f64> = rows.iter().map(|r| r.6 as f64 * 0.5).collect();
            let c = PositionColumns { account: &account, market: &market, side: &side, qty: &qty, entry: &entry, margin: &margin, adl_cap: &[], cross: &[] };
            let g = [Grid::new(0, 0, 0).unwrap(); 3];
            let names = ["X".to_string(), "Y".to_string(), "Z".to_string()];
            let t = MarketTable { grids: &g, marks: &[96.0, 100.0, 104.0], rates: &[0.005; 3], names: &names };
            let (policy, custom) = if custom { (Policy::Custom, Some(&scores[..])) } else { (Policy::Bitmex, None) };
            for method in [Lights::Count, Lights::Quantity] {
                let got = rank(&c, &t, policy, custom, method).unwrap();
                let want = reference_rank(&c, &t, policy, custom, method);
                proptest::prop_assert_eq!(comparable(&got), comparable(&want));
            }
        }
    }

    #[test]
    fn rank_on_two_chunks_equals_the_plain_sort() {
        // 250k rows (two scoring chunks, both queues settled on the worker pool), with many
        // exact ties: both lights methods agree with the reference row for row.
        let n = 250_000usize;
        let account: Vec<u64> = (0..n as u64).map(|i| i % 1000).collect();
        let side: Vec<i8> = (0..n).map(|i| if i % 3 == 0 { 1 } else { -1 }).collect();
        let qty: Vec<f64> = (0..n).map(|i| (i % 17 + 1) as f64).collect();
        let entry: Vec<f64> = (0..n).map(|i| (90 + i % 21) as f64).collect();
        let margin: Vec<f64> = (0..n).map(|i| (i % 50) as f64).collect();
        let c = one_market(&account, &side, &qty, &entry, &margin);
        let (g, names) = table();
        let t = MarketTable { grids: &g, marks: &[100.0], rates: &[0.005], names: &names };
        for method in [Lights::Count, Lights::Quantity] {
            let got = rank(&c, &t, Policy::Bitmex, None, method).unwrap();
            assert_eq!(comparable(&got), comparable(&reference_rank(&c, &t, Policy::Bitmex, None, method)));
        }
    }

    #[test]
    fn deleverage_partial_last_and_shortfall() {
        let (g, names) = table();
        let t = MarketTable { grids: &g, marks: &[96.0], rates: &[0.005], names: &names };
        // A bankrupt long of 15: row0 (rank 1) closes 10, row1 closes 5; row2 is bankrupt.
        let f = deleverage(&cols(), &t, Policy::Bitmex, 0, 1, 15.0, 95.0, 0, None).unwrap();
        let got: Vec<(u32, i64, u32)> = f.iter().map(|x| (x.row, x.lots, x.rank)).collect();
        assert_eq!(got, vec![(0, 10, 1), (1, 5, 2)]);
        // Only 20 lots are eligible.
        match deleverage(&cols(), &t, Policy::Bitmex, 0, 1, 25.0, 95.0, 0, None) {
            Err(AdlError::InsufficientLiquidity { missing, .. }) => assert_eq!(missing, 5.0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn block_scores_are_bit_for_bit_the_integer_scores() {
        // Random validated rows on several grids: wherever the block path claims exactness,
        // its lots and score equal parse_row + Policy::score exactly.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        for (qd, pd, cd) in [(4, 2, 8), (0, 0, 0), (3, 1, 6), (6, 6, 12), (2, 2, 12)] {
            let g = Grid::new(qd, pd, cd).unwrap();
            let mut b = Block::default();
            let n = BLOCK;
            for i in 0..n {
                b.side[i] = if rnd() < 0.5 { 1.0 } else { -1.0 };
                b.qty[i] = (rnd() * 10f64.powi((rnd() * 8.0) as i32)).max(1.0);
                b.entry[i] = 50.0 + rnd() * 100.0;
                b.margin[i] = rnd() * b.qty[i] * b.entry[i] * 0.5;
                b.mark[i] = g.ticks(60.0 + rnd() * 80.0).unwrap() as f64;
            }
            bitmex_block(&g, n, &mut b);
            let mut exact = 0;
            for i in 0..n {
                // The block only ever sees validated rows.
                let Ok(r) = parse_row(&g, i, b.side[i] as i8, b.qty[i], b.entry[i], b.margin[i]) else { continue };
                let want = Policy::Bitmex.score(&g, &Tiers::flat(5_000), r.side, r.lots, r.entry, r.margin, b.mark[i] as i64);
                if b.exact[i] {
                    exact += 1;
                    assert_eq!(b.lots[i] as i64, r.lots);
                    assert_eq!(b.eligible[i].then_some(b.score[i].to_bits()), want.map(f64::to_bits), "row {i} grid {qd}/{pd}/{cd}");
                }
            }
            assert!(exact > n / 4, "grid {qd}/{pd}/{cd}: only {exact} exact rows");
        }
    }

    #[test]
    fn top_queue_keeps_exactly_what_covers_the_want() {
        let k = |score: u64, row: u32| Key { score, account: 0, row };
        let mut q = TopQueue::new(10);
        for (i, (score, lots)) in [(5, 4), (1, 3), (9, 100), (2, 5), (3, 1), (0, 2)].into_iter().enumerate() {
            q.offer(k(score, i as u32), lots, -(score as f64));
        }
        // Queue order by key: 0 (2 lots), 1 (3), 2 (5) cover 10; everything else is dropped.
        let mut kept: Vec<u64> = q.heap.into_vec().into_iter().map(|c| c.0.score).collect();
        kept.sort();
        assert_eq!(kept, vec![0, 1, 2]);
        assert_eq!(q.available, 115);
    }

    #[test]
    fn chunked_runs_match_single_thread() {
        // 250k rows so that two chunks are used; compare against a direct sort.
        let n = 250_000usize;
        let account: Vec<u64> = (0..n as u64).map(|i| i % 1000).collect();
        let side: Vec<i8> = (0..n).map(|i| if i % 3 == 0 { 1 } else { -1 }).collect();
        let qty: Vec<f64> = (0..n).map(|i| (i % 17 + 1) as f64).collect();
        let entry: Vec<f64> = (0..n).map(|i| (90 + i % 21) as f64).collect();
        let margin: Vec<f64> = (0..n).map(|i| (i % 50) as f64).collect();
        let c = one_market(&account, &side, &qty, &entry, &margin);
        let (g, names) = table();
        let t = MarketTable { grids: &g, marks: &[100.0], rates: &[0.005], names: &names };
        let r = rank(&c, &t, Policy::Bitmex, None, Lights::Count).unwrap();
        let mut shorts: Vec<((Fraction, u64, usize), usize)> = (0..n)
            .filter(|&i| side[i] == -1)
            .filter_map(|i| {
                let s =
                    Policy::Bitmex.exact_score(&g[0], &Tiers::flat(5_000), -1, qty[i] as i64, entry[i] as i64, margin[i] as i128, 100)?;
                Some(((s, account[i], i), i))
            })
            .collect();
        // Reference order: exact score descending, then account, then row.
        shorts.sort_by(|a, b| b.0 .0.cmp_value(&a.0 .0).then(a.0 .1.cmp(&b.0 .1)).then(a.0 .2.cmp(&b.0 .2)));
        for (pos, &(_, row)) in shorts.iter().enumerate() {
            assert_eq!(r.rank[row] as usize, pos + 1);
        }
        let f = deleverage(&c, &t, Policy::Bitmex, 0, 1, 1000.0, 99.0, 0, None).unwrap();
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

//! `rank`: every row's exact rank, percentile and lights within its (market, side), written
//! to the output columns in cache-sized windows.

use crate::core::book::input::{parse_row, PositionColumns};
use crate::core::engine::stateless::{in_chunks_into, Context, MarketTable, PARALLEL_ROWS};
use crate::core::policy::ranking::QueueOrder;
use crate::core::policy::score::{key_score, lights_by_quantity, lights_le, near, Lights, Policy};
use crate::core::units::error::{AdlError, Result};

/// Output of `rank`, one value per input row. `rank == 0` means "not eligible" (and then
/// `score`/`percentile` are NaN and `lights` is 0).
#[derive(Debug, Default, PartialEq)]
pub struct Ranked {
    pub score: Vec<f64>,
    pub rank: Vec<u32>,
    pub percentile: Vec<f64>,
    pub lights: Vec<u8>,
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
    type Part = (Vec<Vec<u128>>, Vec<i128>);
    // Zeroed pages come from the OS untouched: each worker writes its own part of `score`.
    let mut score = vec![0.0f64; n];
    let parts = in_chunks_into(&mut score, |range, scores| -> Result<Part> {
        scores.fill(f64::NAN);
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
                let group = s.market as usize * 2 + s.side.slot();
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
        Ok((groups, held))
    });
    let mut totals = vec![0i128; n_groups];
    let mut groups: Vec<Vec<u128>> = vec![Vec::new(); n_groups];
    for part in parts {
        let (g, h) = part?;
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
    // Zeroed (untouched) pages: each window fills its own percentiles with NaN first.
    let mut percentile = vec![0.0f64; n];
    let mut light = vec![0u8; n];
    let width = 1 << WINDOW_BITS;
    type Window<'a> = (usize, ((&'a mut [u32], &'a mut [f64]), &'a mut [u8]));
    let write = |(win, ((rank, percentile), light)): &mut Window<'_>| {
        percentile.fill(f64::NAN);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::engine::stateless::tests::{cols, one_market, table, two_chunk_rows};
    use crate::core::market::tiers::{rate_ppm, Tiers};
    use crate::core::policy::score::{desc_key, queue_lights, Fraction};
    use crate::core::units::fixed::Grid;

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
            queued.push((m * 2 + r.side.slot(), exact, float, r.lots, row));
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
        let (account, side, qty, entry, margin) = two_chunk_rows();
        let c = one_market(&account, &side, &qty, &entry, &margin);
        let (g, names) = table();
        let t = MarketTable { grids: &g, marks: &[100.0], rates: &[0.005], names: &names };
        for method in [Lights::Count, Lights::Quantity] {
            let got = rank(&c, &t, Policy::Bitmex, None, method).unwrap();
            assert_eq!(comparable(&got), comparable(&reference_rank(&c, &t, Policy::Bitmex, None, method)));
        }
    }
}

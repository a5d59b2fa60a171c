//! The branch-free block kernel of the stateless calls: BitMEX scores of up to `BLOCK` rows on
//! one grid, in f64, bit-for-bit the integer scores wherever it says they are exact.

use crate::core::units::fixed::Grid;

/// Rows screened at a time by `block_valid`.
pub(crate) const BLOCK: usize = 1024;
/// 2^52: an integer 0 <= v < 2^52 held in f64 is the low bits of `v + TWO_52`.
pub(crate) const TWO_52: f64 = 4_503_599_627_370_496.0;

/// One block's buffers: the wanted mask, the inputs of collected rows, the kernel's outputs.
#[derive(Default)]
pub(crate) struct Block {
    pub(crate) input: BlockInput,
    pub(crate) out: BlockScores,
}

/// Which rows of a block are wanted, and (when they are collected) their inputs.
pub(crate) struct BlockInput {
    pub(crate) want: [bool; BLOCK],
    pub(crate) side: [i8; BLOCK],
    pub(crate) qty: [f64; BLOCK],
    pub(crate) entry: [f64; BLOCK],
    pub(crate) margin: [f64; BLOCK],
    pub(crate) mark: [f64; BLOCK],
}

/// What `bitmex_block` gives for each row.
pub(crate) struct BlockScores {
    pub(crate) score: [f64; BLOCK],
    pub(crate) lots: [f64; BLOCK],
    pub(crate) eligible: [bool; BLOCK],
    pub(crate) exact: [bool; BLOCK],
}

impl Default for BlockInput {
    fn default() -> Self {
        BlockInput {
            want: [false; BLOCK],
            side: [0; BLOCK],
            qty: [0.0; BLOCK],
            entry: [0.0; BLOCK],
            margin: [0.0; BLOCK],
            mark: [0.0; BLOCK],
        }
    }
}

impl Default for BlockScores {
    fn default() -> Self {
        BlockScores { score: [0.0; BLOCK], lots: [0.0; BLOCK], eligible: [false; BLOCK], exact: [false; BLOCK] }
    }
}

/// A block's rows for the kernel: side codes, qty, entry and margin as given.
pub(crate) type BlockRows<'a> = (&'a [i8], &'a [f64], &'a [f64], &'a [f64]);

/// BitMEX scores of validated rows on one grid, computed on the grid integers held in f64
/// with no branches, so the compiler vectorises the loop (divisions included). Where every
/// intermediate is an integer below 2^53 each operation is exact and the score is
/// bit-for-bit `bitmex_score`'s; rows outside that range get `exact = false` and go through
/// the integer path. On x86-64 CPUs with AVX2 the same loop runs on 4 lanes instead of 2:
/// the same IEEE operations (no fused multiply-add), so the same bits.
pub(crate) fn bitmex_block(g: &Grid, cols: BlockRows<'_>, mark: &[f64], out: &mut BlockScores) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { bitmex_block_avx2(g, cols, mark, out) };
    }
    bitmex_kernel(g, cols, mark, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn bitmex_block_avx2(g: &Grid, cols: BlockRows<'_>, mark: &[f64], out: &mut BlockScores) {
    bitmex_kernel(g, cols, mark, out)
}

#[inline(always)]
fn bitmex_kernel(g: &Grid, (side, qty, entry, margin): BlockRows<'_>, mark: &[f64], out: &mut BlockScores) {
    const TWO_51: f64 = 2_251_799_813_685_248.0;
    const TWO_53: f64 = 9_007_199_254_740_992.0;
    let f = g.factor as f64;
    // Every slice cut to one length, so the loop has no bounds checks.
    let n = mark.len().min(BLOCK);
    let (side, qty, entry, margin, mark) = (&side[..n], &qty[..n], &entry[..n], &margin[..n], &mark[..n]);
    let (score, lots, eligible, exact) = (&mut out.score[..n], &mut out.lots[..n], &mut out.eligible[..n], &mut out.exact[..n]);
    for i in 0..n {
        let (s, p) = (side[i] as f64, mark[i]);
        let mv = margin[i] * g.cash_scale;
        // Validated: qty and entry are within 1e15 < 2^51 on the grid.
        let q = round_small(qty[i] * g.qty_scale);
        let t = round_small(entry[i] * g.price_scale);
        let m = round_small(mv);
        let d = s * (p - t);
        let equity = m + s * (q * (p - t) * f);
        let notional = q * p * f;
        let win = d > 0.0;
        let num = if win { notional } else { equity };
        let den = if win { equity } else { notional };
        score[i] = d * num / (t * den);
        lots[i] = q;
        eligible[i] = equity > 0.0;
        exact[i] = (mv < TWO_51) & (q * p.max(t) * f < TWO_53);
    }
}

/// `v` rounded to the nearest integer, for |v| < 2^51, without a branch.
#[inline(always)]
pub(crate) fn round_small(v: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5·2^52: (v + MAGIC) − MAGIC rounds |v| < 2^51
    (v + MAGIC) - MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::book::input::parse_row;
    use crate::core::market::tiers::Tiers;
    use crate::core::policy::score::Policy;

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
            let (mut b, mut out) = (BlockInput::default(), BlockScores::default());
            let n = BLOCK;
            for i in 0..n {
                b.side[i] = if rnd() < 0.5 { 1 } else { -1 };
                b.qty[i] = (rnd() * 10f64.powi((rnd() * 8.0) as i32)).max(1.0);
                b.entry[i] = 50.0 + rnd() * 100.0;
                b.margin[i] = rnd() * b.qty[i] * b.entry[i] * 0.5;
                b.mark[i] = g.ticks(60.0 + rnd() * 80.0).unwrap() as f64;
            }
            bitmex_block(&g, (&b.side, &b.qty, &b.entry, &b.margin), &b.mark, &mut out);
            let mut exact = 0;
            for i in 0..n {
                // The block only ever sees validated rows.
                let Ok(r) = parse_row(&g, i, b.side[i], b.qty[i], b.entry[i], b.margin[i]) else { continue };
                let want = Policy::Bitmex.score(&g, &Tiers::flat(5_000), r.side, r.lots, r.entry, r.margin, b.mark[i] as i64);
                if out.exact[i] {
                    exact += 1;
                    assert_eq!(out.lots[i] as i64, r.lots);
                    assert_eq!(out.eligible[i].then_some(out.score[i].to_bits()), want.map(f64::to_bits), "row {i} grid {qd}/{pd}/{cd}");
                }
            }
            assert!(exact > n / 4, "grid {qd}/{pd}/{cd}: only {exact} exact rows");
        }
    }
}

//! The pro-rata split arithmetic: holdings, exact water-filling by weight and by size, and
//! the weighted-then-size rule. Shared by the allocators (`alloc`) and the stateless column
//! path, which splits its columns with the same functions.

use ethnum::U256;

use crate::core::book::position::Position;
use crate::core::units::fixed::Grid;

/// A counterparty as the pro-rata kernels see it: it may close up to `cap` lots, in
/// proportion to `weight` (an integer: lots, or cash units), or by `size` in the fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holding {
    pub account: u64,
    pub cap: i64,
    /// 0 = not eligible for the weighted pass (only for the size fallback).
    pub weight: u128,
    pub size: i64,
}

impl Holding {
    /// A holding split by size: `size` lots, of which it can pay for `cap`.
    pub fn by_size(account: u64, size: i64, cap: i64) -> Holding {
        Holding { account, cap: cap.min(size), weight: size as u128, size }
    }
}

/// Splits `lots` over holdings in proportion to their size (`Holding::by_size`): whole lots,
/// largest remainder first (ties: lower account, then earlier entry), never beyond a cap
/// (the excess is water-filled to the others). Everyone fills its cap when they hold no more.
pub fn pro_rata_shares(holdings: &[Holding], lots: i64) -> Vec<i64> {
    water_fill(holdings, lots)
}

/// The exact water-filling behind every pro-rata split: find the level `λ` with
/// `Σ min(cap_i, λ·w_i) = lots`, give each holding `⌊λ·w_i⌋`, and the lots rounding leaves to
/// the largest remainders (ties: lower account, then earlier entry). `λ = R/W` with `R` the
/// lots not taken by saturated holdings and `W` the others' weight, so every share is the
/// fraction `R·w_i/W`: comparisons and remainders are integers (256-bit), decided exactly.
/// Holdings with weight 0 or cap 0 get nothing.
pub fn water_fill(holdings: &[Holding], lots: i64) -> Vec<i64> {
    let mut shares = vec![0i64; holdings.len()];
    let active: Vec<usize> = (0..holdings.len()).filter(|&i| holdings[i].weight > 0 && holdings[i].cap > 0).collect();
    let held: i128 = active.iter().map(|&i| holdings[i].cap as i128).sum();
    if held <= lots as i128 {
        for &i in &active {
            shares[i] = holdings[i].cap;
        }
        return shares;
    }
    // Every product below is at most max(cap)·W or lots·max(w) (saturation only lowers W and
    // R): in u128 when those fit, as they do for any real book, else in 256 bits.
    let weights = active.iter().try_fold(0u128, |acc, &i| acc.checked_add(holdings[i].weight));
    let max_cap = active.iter().map(|&i| holdings[i].cap as u128).max().unwrap_or(0);
    let max_weight = active.iter().map(|&i| holdings[i].weight).max().unwrap_or(0);
    let bound = |limit: u128| {
        weights.and_then(|w| w.checked_mul(max_cap)).is_some_and(|x| x <= limit)
            && (lots as u128).checked_mul(max_weight).is_some_and(|x| x <= limit)
    };
    if bound(u64::MAX as u128) {
        fill::<u64>(holdings, lots, active, &mut shares);
    } else if bound(u128::MAX) {
        fill::<u128>(holdings, lots, active, &mut shares);
    } else {
        fill::<U256>(holdings, lots, active, &mut shares);
    }
    shares
}

/// Unsigned integers for `water_fill`'s exact products.
trait Wide:
    Copy + Ord + std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> + std::ops::Mul<Output = Self> + std::ops::Div<Output = Self>
{
    const ZERO: Self;
    fn of(x: u128) -> Self;
    /// The value, known to be below 2^63.
    fn small(self) -> i64;
}

impl Wide for u64 {
    const ZERO: Self = 0;
    fn of(x: u128) -> Self {
        x as u64
    }
    fn small(self) -> i64 {
        self as i64
    }
}

impl Wide for u128 {
    const ZERO: Self = 0;
    fn of(x: u128) -> Self {
        x
    }
    fn small(self) -> i64 {
        self as i64
    }
}

impl Wide for U256 {
    const ZERO: Self = U256::ZERO;
    fn of(x: u128) -> Self {
        U256::from(x)
    }
    fn small(self) -> i64 {
        self.as_i64()
    }
}

/// `water_fill` on `active` holdings (weight > 0, cap > 0, caps holding more than `lots`).
fn fill<T: Wide>(holdings: &[Holding], lots: i64, mut active: Vec<usize>, shares: &mut [i64]) {
    let wide = |x: i64| T::of(x as u128);
    let weight_of = |active: &[usize]| active.iter().fold(T::ZERO, |acc, &i| acc + T::of(holdings[i].weight));
    // Saturate whoever the level reaches (`cap·W <= R·w`) and recompute it for the rest,
    // until nobody new saturates (a few O(n) rounds). Some holding stays unsaturated since
    // the caps hold more than `lots`.
    let mut remaining = lots;
    let mut wsum = weight_of(&active);
    loop {
        let r = wide(remaining);
        let saturates = |i: usize| wide(holdings[i].cap) * wsum <= r * T::of(holdings[i].weight);
        // A pass that allocates nothing first: usually nobody saturates (size splits never do).
        if !active.iter().any(|&i| saturates(i)) {
            break;
        }
        let (full, rest): (Vec<usize>, Vec<usize>) = active.iter().partition(|&&i| saturates(i));
        for &i in &full {
            shares[i] = holdings[i].cap;
            remaining -= holdings[i].cap;
        }
        active = rest;
        wsum = weight_of(&active);
    }
    let r = wide(remaining);
    let mut remainders = Vec::with_capacity(active.len());
    for &i in &active {
        let x = r * T::of(holdings[i].weight);
        // < cap (not saturated), so one more lot never exceeds the cap. Most holdings of a
        // large side get no whole lot (x < W): their remainder is x, no division.
        if x < wsum {
            remainders.push(x);
            continue;
        }
        let q = x / wsum;
        shares[i] = q.small();
        remainders.push(x - q * wsum);
    }
    let left = (remaining - active.iter().map(|&i| shares[i]).sum::<i64>()) as usize;
    if left > 0 {
        // Only the `left` largest remainders matter: select them, no full sort.
        let mut order: Vec<usize> = (0..active.len()).collect();
        order.select_nth_unstable_by_key(left - 1, |&k| (std::cmp::Reverse(remainders[k]), holdings[active[k]].account, active[k]));
        for &k in &order[..left] {
            shares[active[k]] += 1;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weighting {
    /// Lots ∝ unrealised profit u⁺ (`wealth_pro_rata`), up to the whole position.
    Profit,
    /// Lots ∝ leverage × u⁺ (`levered_pro_rata`), up to the whole position.
    LeveredProfit,
    /// Lots ∝ size, up to the fraction `adl_cap` of it (`capped_pro_rata`): every position
    /// closes the same fraction η, or its cap when that is lower.
    CappedSize,
}

/// A position as a holding for `weighted_then_size`, able to pay for `affordable` lots. The
/// weight is 0 (not eligible: not in profit) or: u⁺ in cash units (`Profit`);
/// `⌊u⁺·N/e⌋`, at least 1, with `N` the notional and `e` the equity (its account share if
/// cross) in cash units (`LeveredProfit`); the size in lots (`CappedSize`).
pub fn holding(p: &Position, grid: &Grid, mark: i64, equity: i128, weighting: Weighting, affordable: i64) -> Holding {
    let u = p.side.sign_i128() * grid.value(p.qty, mark - p.entry);
    let cap = affordable.min(p.qty);
    if u <= 0 || equity <= 0 {
        return Holding { account: p.account, cap, weight: 0, size: p.qty };
    }
    let (cap, weight) = match weighting {
        Weighting::Profit => (cap, u as u128),
        Weighting::LeveredProfit => {
            let (u, n, e) = (u as u128, grid.notional(p.qty, mark) as u128, equity as u128);
            let levered = match u.checked_mul(n) {
                Some(x) => x / e,
                None => (U256::from(u) * U256::from(n) / U256::from(e)).min(U256::from(u128::MAX)).as_u128(),
            };
            (cap, levered.max(1))
        }
        Weighting::CappedSize => (cap.min((p.qty as i128 * p.cap_bp as i128 / 10_000) as i64), p.qty as u128),
    };
    Holding { account: p.account, cap, weight, size: p.qty }
}

/// Splits `lots` over holdings: those with weight > 0 first, in proportion to weight and
/// never beyond their cap (exact water-filling, `water_fill`); what they cannot absorb goes
/// to the zero-weight holdings by size (`pro_rata_shares`).
pub fn weighted_then_size(holdings: &[Holding], lots: i64) -> Vec<i64> {
    let mut shares = water_fill(holdings, lots);
    let left = lots - shares.iter().sum::<i64>();
    if left > 0 {
        let rest: Vec<usize> = (0..holdings.len()).filter(|&i| holdings[i].weight == 0).collect();
        let by_size: Vec<Holding> =
            rest.iter().map(|&i| Holding::by_size(holdings[i].account, holdings[i].size, holdings[i].cap)).collect();
        for (&i, x) in rest.iter().zip(pro_rata_shares(&by_size, left)) {
            shares[i] += x;
        }
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_remainder_by_hand() {
        // 10 lots over 3, 3, 4 (Σ 10... = all) and 7 lots over 5, 3, 2: exact 3.5, 2.1, 1.4
        // -> base 3, 2, 1 (6), one left to the largest remainder (0.5): 4, 2, 1.
        let size = |h: &[(u64, i64)]| h.iter().map(|&(a, q)| Holding::by_size(a, q, q)).collect::<Vec<_>>();
        assert_eq!(pro_rata_shares(&size(&[(1, 3), (2, 3), (3, 4)]), 10), vec![3, 3, 4]);
        assert_eq!(pro_rata_shares(&size(&[(1, 5), (2, 3), (3, 2)]), 7), vec![4, 2, 1]);
        // Equal remainders go to the lower account: 1 lot over 1, 1 (accounts 9 and 4).
        assert_eq!(pro_rata_shares(&size(&[(9, 1), (4, 1)]), 1), vec![0, 1]);
        // More than the side holds: everyone closes fully.
        assert_eq!(pro_rata_shares(&size(&[(1, 2), (2, 3)]), 9), vec![2, 3]);
        // A cap below the size (what a cross account can pay for): 7 lots over 5, 3, 2 with
        // #1 capped at 2 -> #1 saturates (7·5/10 = 3.5 > 2); 5 lots over 3:2 = 3, 2.
        let capped = [Holding::by_size(1, 5, 2), Holding::by_size(2, 3, 3), Holding::by_size(3, 2, 2)];
        assert_eq!(pro_rata_shares(&capped, 7), vec![2, 3, 2]);
        // A holding that can pay for nothing gets nothing: 4 lots over 0-capped 5 and 3, 2.
        let passed = [Holding::by_size(1, 5, 0), Holding::by_size(2, 3, 3), Holding::by_size(3, 2, 2)];
        assert_eq!(pro_rata_shares(&passed, 4), vec![0, 2, 2]);
    }

    #[test]
    fn the_wide_path_agrees_with_the_u128_path() {
        // Weights near 2^122 (W·cap ~ 2^130) force 256-bit products; scaled down by 2^112
        // they fit u128. The same proportions give the same split.
        let h = |a, q, w: u128| Holding { account: a, cap: q, weight: w, size: q };
        let big = [h(1, 70, 3 << 122), h(2, 90, 5 << 122), h(3, 40, 1 << 122), h(4, 60, 5 << 122)];
        assert!(big.iter().map(|x| x.weight).sum::<u128>().checked_mul(90).is_none(), "the wide path is taken");
        let small: Vec<Holding> = big.iter().map(|x| Holding { weight: x.weight >> 112, ..*x }).collect();
        let mid: Vec<Holding> = big.iter().map(|x| Holding { weight: x.weight >> 60, ..*x }).collect();
        assert!(mid.iter().map(|x| x.weight).sum::<u128>() * 90 > u64::MAX as u128, "the u128 path is taken");
        for lots in 1..260 {
            assert_eq!(water_fill(&big, lots), water_fill(&small, lots), "lots {lots}");
            assert_eq!(water_fill(&mid, lots), water_fill(&small, lots), "lots {lots}");
        }
    }

    #[test]
    fn equal_remainders_are_decided_exactly() {
        // Weights 8, 24, 48 (profits) for accounts 9, 6, 5 and 6 lots: exact shares 0.6,
        // 1.8, 3.6 -> floors 0, 1, 3 and two lots to the remainders .8 (account 6) and the
        // exact tie .6 = .6 -> the lower account, 5: 0, 2, 4. (Floats made .6 != .6.)
        let h = |a, q, w| Holding { account: a, cap: q, weight: w, size: q };
        assert_eq!(water_fill(&[h(9, 2, 8), h(6, 4, 24), h(5, 6, 48)], 6), vec![0, 2, 4]);
    }

    /// `water_fill` as it was before the no-division path: every remainder by division, in
    /// 256 bits.
    fn water_fill_by_division(holdings: &[Holding], lots: i64) -> Vec<i64> {
        let mut shares = vec![0i64; holdings.len()];
        let mut active: Vec<usize> = (0..holdings.len()).filter(|&i| holdings[i].weight > 0 && holdings[i].cap > 0).collect();
        if active.iter().map(|&i| holdings[i].cap as i128).sum::<i128>() <= lots as i128 {
            active.iter().for_each(|&i| shares[i] = holdings[i].cap);
            return shares;
        }
        let w = |i: usize| U256::from(holdings[i].weight);
        let mut remaining = lots;
        loop {
            let wsum = active.iter().fold(U256::ZERO, |acc, &i| acc + w(i));
            let r = U256::from(remaining as u128);
            let (full, rest): (Vec<usize>, Vec<usize>) =
                active.iter().partition(|&&i| U256::from(holdings[i].cap as u128) * wsum <= r * w(i));
            if full.is_empty() {
                let mut rems: Vec<(U256, u64, usize)> = Vec::new();
                for &i in &active {
                    let x = r * w(i);
                    shares[i] = (x / wsum).as_i64();
                    rems.push((x % wsum, holdings[i].account, i));
                }
                let left = remaining - active.iter().map(|&i| shares[i]).sum::<i64>();
                rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
                rems.iter().take(left as usize).for_each(|&(_, _, i)| shares[i] += 1);
                return shares;
            }
            for &i in &full {
                shares[i] = holdings[i].cap;
                remaining -= holdings[i].cap;
            }
            active = rest;
        }
    }

    #[test]
    fn water_fill_agrees_with_the_division_of_every_remainder() {
        // Random sides from a few to many holdings, from lots far below the side (most get
        // no whole lot) to near all of it, with caps below the weight's share and ties.
        let mut state = 3u64;
        let mut next = move |n: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        for round in 0..3_000 {
            let n = 1 + next(if round % 3 == 0 { 400 } else { 30 }) as usize;
            let h: Vec<Holding> = (0..n)
                .map(|i| {
                    let size = 1 + next(if round % 2 == 0 { 5 } else { 1_000 }) as i64;
                    let weight = if next(6) == 0 { 0 } else { 1 + next(if round % 4 == 0 { 3 } else { 1 << 40 }) as u128 };
                    Holding { account: next(50) * 1_000 + i as u64, cap: size - next(size as u64 + 1) as i64, weight, size }
                })
                .collect();
            let total: i64 = h.iter().map(|x| x.size).sum();
            let lots = 1 + next(total as u64 + 5) as i64 / if round % 5 == 0 { 1 } else { 1 + next(100) as i64 };
            assert_eq!(water_fill(&h, lots), water_fill_by_division(&h, lots), "round {round}");
        }
    }

    #[test]
    fn weighted_water_fill_by_hand() {
        // 10 lots, weights 1:1:2 over holdings 10, 10, 3: level λ with 10 = λ + λ + min(3, 2λ)
        // -> #3 saturates at 3, λ = 3.5: 3.5, 3.5, 3 -> floors 3, 3, 3 and the leftover lot
        // to the equal remainders' lower account: 4, 3, 3.
        let h = |a, q, w| Holding { account: a, cap: q, weight: w, size: q };
        assert_eq!(weighted_then_size(&[h(1, 10, 1), h(2, 10, 1), h(3, 3, 2)], 10), vec![4, 3, 3]);
        // Profitable holdings absorb 5 of 8; the other 3 go by size to the zero-weight ones (2:1).
        assert_eq!(weighted_then_size(&[h(1, 5, 2), h(2, 6, 0), h(3, 3, 0)], 8), vec![5, 2, 1]);
    }
}

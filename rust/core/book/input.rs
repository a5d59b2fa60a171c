//! Column inputs and their row-by-row validation into fixed point. Shared by the engine
//! and the stateless calls so that both reject the same rows with the same messages.

use crate::core::book::position::{Position, Side, NO_INDEX};
use crate::core::units::error::{AdlError, Result};
use crate::core::units::fixed::{Grid, MAX_GRID, MAX_MARGIN_F64};

/// Position columns as borrowed slices. `market` holds codes into a list of symbols; an
/// empty `market` means every row is in market 0.
#[derive(Clone, Copy)]
pub struct PositionColumns<'a> {
    pub account: &'a [u64],
    pub market: &'a [u32],
    pub side: &'a [i8],
    pub qty: &'a [f64],
    pub entry: &'a [f64],
    pub margin: &'a [f64],
    /// Optional ADL caps β in [0, 1] (policy `capped_pro_rata`); empty = 1 for every row.
    pub adl_cap: &'a [f64],
    /// Optional margin mode per row: 0 isolated, 1 cross (engine only); empty = all isolated.
    pub cross: &'a [u8],
}

impl<'a> PositionColumns<'a> {
    pub fn len(&self) -> usize {
        self.account.len()
    }
    pub fn is_empty(&self) -> bool {
        self.account.is_empty()
    }
    /// The ADL cap of a row in basis points (10,000 when the column is absent).
    #[inline]
    pub fn cap_bp(&self, row: usize) -> u16 {
        if self.adl_cap.is_empty() {
            10_000
        } else {
            (self.adl_cap[row] * 10_000.0).round() as u16
        }
    }

    #[inline]
    pub fn is_cross(&self, row: usize) -> bool {
        !self.cross.is_empty() && self.cross[row] == 1
    }

    /// The position of a validated `row` (`r` from `parse_row`) in market `market`.
    pub fn position(&self, row: usize, r: Row, market: u32) -> Position {
        Position {
            account: self.account[row],
            qty: r.lots,
            entry: r.entry,
            margin: r.margin,
            market,
            member_pos: 0,
            index_pos: NO_INDEX,
            side: r.side,
            cap_bp: self.cap_bp(row),
            cross: self.is_cross(row),
        }
    }

    #[inline]
    pub fn market_of(&self, row: usize) -> u32 {
        if self.market.is_empty() {
            0
        } else {
            self.market[row]
        }
    }
    /// All columns have the same length and every market code is known.
    pub fn check_shape(&self, n_markets: usize) -> Result<()> {
        let n = self.len();
        if n_markets == 0 {
            return Err(AdlError::config("symbol", "at least one market is required"));
        }
        for (name, len) in [
            ("market", if self.market.is_empty() { n } else { self.market.len() }),
            ("side", self.side.len()),
            ("qty", self.qty.len()),
            ("entry_price", self.entry.len()),
            ("margin", self.margin.len()),
        ] {
            if len != n {
                return Err(AdlError::config(name, format!("column has {len} rows, account has {n}")));
            }
        }
        if !self.adl_cap.is_empty() {
            if self.adl_cap.len() != n {
                return Err(AdlError::config("adl_cap", format!("column has {} rows, account has {n}", self.adl_cap.len())));
            }
            if let Some(row) = self.adl_cap.iter().position(|c| !(0.0..=1.0).contains(c)) {
                return Err(AdlError::value("adl_cap", row, format!("{} must be in [0, 1]", self.adl_cap[row])));
            }
        }
        if !self.cross.is_empty() {
            if self.cross.len() != n {
                return Err(AdlError::config("margin_mode", format!("column has {} rows, account has {n}", self.cross.len())));
            }
            if let Some(row) = self.cross.iter().position(|&c| c > 1) {
                return Err(AdlError::value("margin_mode", row, format!("code {} is not isolated (0) or cross (1)", self.cross[row])));
            }
            if let Some(row) = (0..n).find(|&r| self.cross[r] == 1 && self.margin[r] != 0.0) {
                return Err(AdlError::value(
                    "margin",
                    row,
                    format!("{} must be 0 for a cross position: its collateral is the account's wallet (accounts frame)", self.margin[row]),
                ));
            }
        }
        if let Some(row) = self.market.iter().position(|&m| m as usize >= n_markets) {
            return Err(AdlError::value("symbol", row, format!("market code {} out of range", self.market[row])));
        }
        Ok(())
    }
}

/// A validated row in fixed point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub side: Side,
    pub lots: i64,
    pub entry: i64,
    pub margin: i128,
}

fn describe(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else {
        format!("{x}")
    }
}

/// Validates one row: side ±1, qty > 0 (at least one lot after rounding), entry_price > 0,
/// margin >= 0, all finite and inside the fixed-point range.
#[inline(always)]
pub fn parse_row(grid: &Grid, row: usize, side: i8, qty: f64, entry: f64, margin: f64) -> Result<Row> {
    let lots = grid.lots(qty);
    let ticks = grid.ticks(entry);
    let units = grid.margin(margin);
    match (lots, ticks, units, Side::of(side)) {
        (Some(l), Some(t), Some(m), Some(side)) if l > 0 && grid.is_price(t) && grid.resolves(entry, t) && m >= 0 => {
            Ok(Row { side, lots: l, entry: t, margin: m })
        }
        _ => Err(row_error(grid, row, side, qty, entry, margin)),
    }
}

/// The side of a code (+1 long, −1 short), else the error naming the field (and the row, for
/// a row of a batch): the one parser of sides, where a code enters (arguments, log records).
pub fn check_side(side: i8, row: Option<usize>) -> Result<Side> {
    if let Some(side) = Side::of(side) {
        return Ok(side);
    }
    let message = format!("{side} is not a side (expected 1/-1 or long/short)");
    Err(match row {
        Some(row) => AdlError::value("side", row, message),
        None => AdlError::config("side", message),
    })
}

/// A side argument: `side: … is not a side` naming no row.
impl TryFrom<i8> for Side {
    type Error = AdlError;

    fn try_from(code: i8) -> Result<Side> {
        check_side(code, None)
    }
}

/// The error for a row that `parse_row` rejected, checked field by field in column order.
#[cold]
#[inline(never)]
fn row_error(grid: &Grid, row: usize, side: i8, qty: f64, entry: f64, margin: f64) -> AdlError {
    if let Err(e) = check_side(side, Some(row)) {
        return e;
    }
    let range =
        |field: &str, x: f64| AdlError::value(field, row, format!("{} is not finite or exceeds the fixed-point range", describe(x)));
    match grid.lots(qty) {
        None => return range("qty", qty),
        Some(l) if l <= 0 => {
            return AdlError::value("qty", row, format!("{} must be > 0 (at least one lot of 1e-{})", describe(qty), grid.qty_decimals))
        }
        _ => {}
    }
    match grid.ticks(entry) {
        None => return range("entry_price", entry),
        Some(t) if !grid.is_price(t) => {
            return AdlError::value(
                "entry_price",
                row,
                if grid.inverse {
                    format!("{} must be > 0 with 1/price at least one tick of 1e-{}", describe(entry), grid.price_decimals)
                } else {
                    format!("{} must be > 0 (at least one tick of 1e-{})", describe(entry), grid.price_decimals)
                },
            )
        }
        Some(t) if !grid.resolves(entry, t) => return coarse_inverse(grid, "entry_price", Some(row), entry, t),
        _ => {}
    }
    match grid.margin(margin) {
        None => range("margin", margin),
        _ => AdlError::value("margin", row, format!("{} must be >= 0", describe(margin))),
    }
}

/// A vectorisable screen of a block of rows on one grid: `true` means every row would pass
/// `parse_row` (the bounds are the same or tighter), `false` means some row may not, and
/// the caller then runs `parse_row` row by row for the exact error. Bit-ands instead of
/// early exits let the compiler vectorise the loop.
pub fn block_valid(grid: &Grid, side: &[i8], qty: &[f64], entry: &[f64], margin: &[f64]) -> bool {
    let (lim, mlim) = (MAX_GRID as f64, MAX_MARGIN_F64);
    let n = side.len().min(qty.len()).min(entry.len()).min(margin.len());
    let mut ok = true;
    for i in 0..n {
        let (s, q, e, m) = (side[i], qty[i] * grid.qty_scale, entry[i] * grid.price_scale, margin[i] * grid.cash_scale);
        // NaN fails every comparison. q > 0.5 is exactly "rounds to at least one lot".
        ok &= ((s == 1) | (s == -1)) & (q > 0.5) & (q <= lim) & (e > 0.5) & (e <= lim) & (m >= 0.0) & (m <= mlim);
    }
    ok
}

/// The error for a price an inverse grid's `price_decimals` cannot resolve within 1 bp.
#[cold]
fn coarse_inverse(grid: &Grid, field: &str, row: Option<usize>, price: f64, ticks: i64) -> AdlError {
    let msg = format!(
        "{} becomes {} on the 1/price grid of 1e-{} of an inverse market; price_decimals must be at least {} to hold it within 1 bp",
        describe(price),
        grid.price_f64(ticks as f64),
        grid.price_decimals,
        Grid::inverse_decimals_for(price)
    );
    match row {
        Some(row) => AdlError::value(field, row, msg),
        None => AdlError::config(field, msg),
    }
}

/// Validates a mark price into ticks.
pub fn parse_mark(grid: &Grid, symbol: &str, mark: f64) -> Result<i64> {
    match grid.ticks(mark) {
        Some(t) if grid.is_price(t) && !grid.resolves(mark, t) => Err(coarse_inverse(grid, "mark", None, mark, t)),
        Some(t) if grid.is_price(t) => Ok(t),
        _ => Err(AdlError::config(
            "mark",
            format!("mark for {symbol:?} is {}; it must be a finite price > 0 inside the fixed-point range", describe(mark)),
        )),
    }
}

/// Validates an optional fill/ADL price into ticks.
pub fn parse_price(grid: &Grid, field: &str, row: usize, price: f64) -> Result<i64> {
    match grid.ticks(price) {
        Some(t) if grid.is_price(t) && !grid.resolves(price, t) => Err(coarse_inverse(grid, field, Some(row), price, t)),
        Some(t) if grid.is_price(t) => Ok(t),
        _ => Err(AdlError::value(field, row, format!("{} must be a finite price > 0 inside the fixed-point range", describe(price)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_screen_never_passes_a_row_parse_row_rejects() {
        let g = Grid::new(4, 2, 8).unwrap();
        let values = [
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
            -1.0,
            -1e-9,
            0.0,
            1e-9,
            0.00004,
            0.00005,
            0.000050001,
            0.00006,
            0.004,
            0.005,
            0.0051,
            1.0,
            123.456789,
            1e11,
            1e11 + 0.00004,
            1e11 + 0.0001,
            1e13,
            1e13 + 0.004,
            1e13 + 0.006,
            1e20,
        ];
        for side in [-2i8, -1, 0, 1] {
            for &q in &values {
                for &e in &values {
                    for &m in &values {
                        if block_valid(&g, &[side], &[q], &[e], &[m]) {
                            assert!(parse_row(&g, 0, side, q, e, m).is_ok(), "{side} {q} {e} {m}");
                        }
                    }
                }
            }
        }
        assert!(block_valid(&g, &[1, -1], &[1.0, 0.0001], &[96.5, 0.01], &[0.0, 10.0]));
    }

    #[test]
    fn rejects_each_bad_field_by_name() {
        let g = Grid::new(4, 4, 8).unwrap();
        assert!(parse_row(&g, 0, 1, 1.0, 100.0, 0.0).is_ok());
        let err = |r: Result<Row>| r.unwrap_err().to_string();
        assert!(err(parse_row(&g, 3, 0, 1.0, 1.0, 1.0)).starts_with("side[row 3]"));
        assert!(err(parse_row(&g, 4, 1, f64::NAN, 1.0, 1.0)).starts_with("qty[row 4]: NaN"));
        assert!(err(parse_row(&g, 5, 1, -1.0, 1.0, 1.0)).starts_with("qty[row 5]"));
        assert!(err(parse_row(&g, 6, 1, 0.00001, 1.0, 1.0)).contains("at least one lot"));
        assert!(err(parse_row(&g, 7, 1, 1.0, 0.0, 1.0)).starts_with("entry_price[row 7]"));
        assert!(err(parse_row(&g, 8, 1, 1.0, 1.0, -0.5)).starts_with("margin[row 8]"));
        assert!(err(parse_row(&g, 9, 1, 1.0, f64::INFINITY, 1.0)).starts_with("entry_price[row 9]"));
    }
}

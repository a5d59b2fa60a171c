//! Helpers shared by the Rust test targets (each includes this file with `#[path]`).

use _adl::core::{OwnedColumns, Side};

/// A position row: (account, market code, side, qty, entry price, margin, cross).
pub type Row = (u64, u32, Side, f64, f64, f64, bool);

/// Position columns from rows (no `adl_cap` column).
pub fn columns(rows: &[Row]) -> OwnedColumns {
    OwnedColumns {
        account: rows.iter().map(|r| r.0).collect(),
        market: rows.iter().map(|r| r.1).collect(),
        side: rows.iter().map(|r| r.2.sign()).collect(),
        qty: rows.iter().map(|r| r.3).collect(),
        entry: rows.iter().map(|r| r.4).collect(),
        margin: rows.iter().map(|r| r.5).collect(),
        adl_cap: Vec::new(),
        cross: rows.iter().map(|r| r.6 as u8).collect(),
    }
}

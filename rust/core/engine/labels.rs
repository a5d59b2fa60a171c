//! The caller's names for the engine's integer keys: string account ids and the clock's zone.
//!
//! The engine keys accounts by `u64`. A book whose ids are strings (UUIDs, names) has them
//! mapped to codes 0, 1, 2, … in the order they first appear (positions, then the accounts
//! table), and the table maps the codes back. Labels are never removed, so a code means one
//! label for the life of the engine; they are written into snapshots and into the log
//! records of the operations that add them. An engine's ids are all integers or all labels,
//! fixed by the first ids it holds: mixing would make `7` and `"7"` ambiguous.
//!
//! `clock` is the time zone of the `ts` values when the caller gives datetimes (`""` for
//! naive ones); `None` for an integer clock. The engine stores `ts` as integer ms either way.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::core::book::input::PositionColumns;
use crate::core::engine::Engine;
use crate::core::units::error::{AdlError, Result};

/// Account labels by code. Shared on clone (engines are cloned per simulation and per
/// preview trial); copied only when an engine with a shared table adds labels.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    names: Arc<Vec<String>>,
    index: Arc<FxHashMap<String, u64>>,
}

impl PartialEq for Labels {
    fn eq(&self, other: &Labels) -> bool {
        self.names == other.names
    }
}

impl Labels {
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Labels by code.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The code of a label.
    pub fn code(&self, label: &str) -> Option<u64> {
        self.index.get(label).copied()
    }

    /// Appends `new` (codes `len()..`), all or nothing: a label already known or given
    /// twice is refused.
    pub fn extend(&mut self, new: &[String]) -> Result<()> {
        let mut seen = FxHashMap::default();
        for (i, s) in new.iter().enumerate() {
            if self.index.contains_key(s) || seen.insert(s.as_str(), i).is_some() {
                return Err(AdlError::value("account", i, format!("label {s:?} is already an account")));
            }
        }
        let (names, index) = (Arc::make_mut(&mut self.names), Arc::make_mut(&mut self.index));
        for s in new {
            index.insert(s.clone(), names.len() as u64);
            names.push(s.clone());
        }
        Ok(())
    }

    pub(crate) fn truncate(&mut self, n: usize) {
        if n < self.names.len() {
            let (names, index) = (Arc::make_mut(&mut self.names), Arc::make_mut(&mut self.index));
            for s in names.drain(n..) {
                index.remove(&s);
            }
        }
    }

    /// A table from labels read back from a snapshot (refuses duplicates).
    pub fn from_names(names: Vec<String>) -> Result<Labels> {
        let mut out = Labels::default();
        out.extend(&names)?;
        Ok(out)
    }
}

impl Engine {
    /// The labels table (empty for integer ids).
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The clock's zone when `ts` came as datetimes (`""` = naive); `None` for integers.
    pub fn clock(&self) -> Option<&str> {
        self.clock.as_deref()
    }

    /// Sets the clock's zone the first time datetimes come in (later zones are the same
    /// instants shown in the first zone).
    pub(crate) fn stamp_clock(&mut self, zone: Option<&str>) {
        if let (Some(z), None) = (zone, &self.clock) {
            self.clock = Some(z.to_string());
        }
    }

    /// Whether every account the engine holds (positions, cash, fills) has a label, when
    /// it has labels (a restored snapshot is checked with this).
    pub(crate) fn labels_cover_accounts(&self) -> bool {
        let n = self.labels.len() as u64;
        let fills = self.events.iter().flat_map(|f| [Some(f.bankrupt_account), f.account]).flatten();
        let live = self.store.iter().map(|(_, p)| p.account);
        self.labels.is_empty() || live.chain(self.cash_entries().map(|(a, _)| a)).chain(fills).all(|a| a < n)
    }

    /// Runs a book operation (`load`, `upsert`) under the ids rule. `labels`: `None` for
    /// integer ids; `Some(new)` for labelled ids, where `new` are the labels this operation
    /// introduces (codes from `len()` on) and every code must be a known label. On error the
    /// new labels are removed again.
    pub(crate) fn with_labels<T>(
        &mut self,
        labels: Option<&[String]>,
        cols: &PositionColumns<'_>,
        accounts: Option<(&[u64], &[f64])>,
        f: impl FnOnce(&mut Engine) -> Result<T>,
    ) -> Result<T> {
        let Some(new) = labels else {
            if !self.labels.is_empty() {
                return Err(AdlError::config("account", "this engine's account ids are strings; integer ids would make them ambiguous"));
            }
            return f(self);
        };
        let holds_ids = !self.store.is_empty() || !self.cash.is_empty() || !self.events.is_empty();
        if self.labels.is_empty() && holds_ids {
            return Err(AdlError::config("account", "this engine's account ids are integers; string ids would make them ambiguous"));
        }
        let before = self.labels.len();
        self.labels.extend(new)?;
        let n = self.labels.len() as u64;
        let codes = cols.account.iter().chain(accounts.map_or(&[][..], |a| a.0));
        let result = match codes.enumerate().find(|(_, &c)| c >= n) {
            Some((row, c)) => Err(AdlError::value("account", row, format!("code {c} has no label"))),
            None => f(self),
        };
        if result.is_err() {
            self.labels.truncate(before);
        }
        result
    }
}

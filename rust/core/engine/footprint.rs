//! The engine's heap bytes by structure, to see where memory per position goes
//! (`examples/venue_profile.rs memory` prints it beside the allocator's count). Event log and
//! fund history are left out: they grow with events, not with the book.

use crate::core::engine::Engine;
use crate::core::units::footprint::{table, vec};

impl Engine {
    /// Heap bytes by structure, summed over markets; string labels are not counted.
    pub fn footprint(&self) -> Vec<(&'static str, usize)> {
        let mut out: Vec<(&'static str, usize)> = self.store.footprint().to_vec();
        let mut per_market = [("member lists", 0), ("ranking indexes", 0), ("pro-rata indexes", 0)];
        for m in &self.markets {
            for (sum, (_, b)) in per_market.iter_mut().zip(m.footprint()) {
                sum.1 += b;
            }
        }
        out.extend(per_market);
        out.push(("cash map", table::<(u64, i128)>(self.cash.capacity())));
        out.push(("custom scores", vec(&self.custom)));
        out.extend(self.cross.footprint());
        out
    }
}

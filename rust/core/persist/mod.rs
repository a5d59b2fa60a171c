//! The persistence layer: binary codec, snapshots, the operation log and durable file writes.
//! Depends on every layer below it.

pub mod codec;
pub mod files;
pub mod oplog;
pub mod ops;
pub mod snapshot;

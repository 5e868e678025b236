//! An OVSDB (RFC 7047) client over ovsdb-server's unix socket: typed operations, datum helpers,
//! and waiting for ovs-vswitchd to apply a change. Never runs ovs-vsctl or waits without a bound.

pub mod client;
pub mod datum;
pub mod error;
pub mod op;
mod stream;

pub use client::{OvsdbClient, OPEN_VSWITCH_DB};
pub use datum::{named_uuid, row, Row, Uuid};
pub use error::OvsdbError;
pub use op::{check_count, Condition, Function, Mutation, Mutator, Op, OpResult, WaitUntil};

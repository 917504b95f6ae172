//! The events engine's shared parts: the event-pattern language that SQS and Kinesis event
//! source mapping filters and EventBridge rules all use.

pub mod pattern;

pub use pattern::{Pattern, PatternError};

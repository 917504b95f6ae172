//! The data plane: messages, queues, their in-memory state and its durable copy.

pub mod message;
pub mod queue;
pub mod state;
pub mod store;

//! The shared clock (see `nimbus_api::clock`).

pub use nimbus_api::clock::*;

//! Durable state: the metadata database (behind the [`Store`] trait) and the content-addressed
//! code package store.

pub mod code;

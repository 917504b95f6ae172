//! The operations, one file per kind: tables, items, reads (Query/Scan), batches, transactions.

mod batch;
pub mod items;
pub mod legacy;
pub mod reads;
pub mod settings;
pub mod tables;
mod transact;

use nimbus_store::Tx;

use crate::error::Result;
use crate::store::load_table;
use crate::table::Table;

/// The table `name`, or AWS's ResourceNotFoundException for item operations.
pub fn table_for_items(tx: &mut Tx<'_>, name: &str) -> Result<Table> {
    load_table(tx, name)?.ok_or_else(crate::error::not_found)
}

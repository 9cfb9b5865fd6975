//! The classic store's adapters to the job pipeline ([`crate::job`]): a new
//! persistent or legacy store written from the pipeline ([`ClassicWriter`]),
//! a store's records as a stream ([`RecordSource`]), and spooled records
//! kept in place as a stream ([`SpooledRecords`], for a restore).

mod kept;
mod sink;
mod source;

pub(crate) use kept::{record_of, SpooledRecords};
pub(crate) use sink::ClassicWriter;
pub(crate) use source::RecordSource;

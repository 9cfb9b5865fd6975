//! The classic store's adapters to the job pipeline ([`crate::job`]): a new
//! persistent or legacy store written from the pipeline ([`ClassicWriter`]),
//! and a store's records as a stream ([`RecordSource`]).

mod sink;
mod source;

pub(crate) use sink::ClassicWriter;
pub(crate) use source::RecordSource;

//! The classic store's adapters to the job pipeline ([`crate::job`]): a new
//! persistent or legacy store written from the pipeline ([`ClassicWriter`]).

mod sink;

pub(crate) use sink::ClassicWriter;

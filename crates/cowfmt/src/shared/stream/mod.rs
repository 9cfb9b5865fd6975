//! The shared store's adapters to the job pipeline ([`crate::job`]): its
//! records as an exception stream ([`SharedInput`]), a new store written from
//! the pipeline ([`SharedWriter`]), and the exact size such a store takes
//! ([`size`], [`Counter`], [`survey`]), and the place-keeping stream of a
//! restore or repair ([`SpooledGroups`], [`TreeSink`]).

mod count;
mod kept;
mod sink;
mod size;
mod source;
mod survey;

pub(crate) use count::Counter;
pub(crate) use kept::{SpooledGroups, TreeSink};
pub(crate) use sink::SharedWriter;
pub(crate) use size::SharedNeed;
pub use size::{max_records_per_chunk, JournalSize};
pub use source::{SharedInput, TreeStats};
pub(crate) use survey::{survey, Survey};

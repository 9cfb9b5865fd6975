//! Jobs between store kinds: the only module that may import two kinds. Each
//! kind brings its adapters to the job pipeline (`persistent::stream`,
//! `shared::stream`); the jobs here plug one kind's source into another's
//! sink.

pub mod migrate;

//! Rendering of the tools' reports and listings for people (text and tables)
//! and, where a tool writes one, the error of writing a document.

pub mod dump;
pub mod mkcow;

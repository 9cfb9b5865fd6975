//! The command lines of the five tools, kept in the library so that man pages
//! and shell completions can be generated from them (`cargo xtask dist`).

pub mod common;
pub mod cowcheck;
pub mod cowdump;
pub mod cowmigrate;
pub mod cowrepair;
pub mod mkcow;

/// Every tool's name and clap command, in the order the man pages list them.
pub fn commands() -> Vec<(&'static str, clap::Command)> {
    vec![
        ("mkcow", mkcow::command()),
        ("cowdump", cowdump::command()),
        ("cowcheck", cowcheck::command()),
        ("cowrepair", cowrepair::command()),
        ("cowmigrate", cowmigrate::command()),
    ]
}

//! The module rules of docs/architecture.md, read from the sources of cowfmt
//! and cowtools: a store kind never imports another kind, only `cross/` and
//! the facade `store/` import two kinds, `job/` imports no kind, cowfmt prints
//! nothing, the tools reach the kinds only through the facade (their `use`
//! trees and paths parsed with `syn`, so grouped, nested and renamed imports
//! count) and their binaries stay thin. (Crate-level arrows are in
//! cowengine's `layers` test.)
//!
//! Each rule in [`RULES`] says whether it is enforced; a rule the tree does not
//! keep yet is listed with `enforced: false` and reported by
//! `cargo test -p cowfmt --test it module_arrows -- --nocapture`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use syn::visit::{self, Visit};
use syn::UseTree;

/// The store kinds: top-level modules of cowfmt that never import each other.
const KINDS: [&str; 3] = ["persistent", "shared", "clone"];

/// The modules of cowfmt that may import two kinds: the cross-kind jobs and
/// the kind facade that dispatches on the kind.
const TWO_KIND_MODULES: [&str; 2] = ["cross", "store"];

/// The modules of cowfmt a tool may not name: the kinds and the cross-kind
/// jobs, reached only through the facade `cowfmt::store`.
const BEHIND_THE_FACADE: [&str; 4] = ["persistent", "shared", "clone", "cross"];

/// cowtools' dump rendering, which still reaches the kinds (its own rule,
/// not enforced yet).
const DUMP_RENDERING: &str = "render/dump";

/// The most lines a tool's binary sources may have together.
const THIN_BINARY_LINES: usize = 250;

/// One rule of docs/architecture.md.
struct Rule {
    /// The rule as the document states it.
    text: &'static str,
    /// Whether the test fails when the rule is broken.
    enforced: bool,
    /// Every place that breaks it, one sentence each.
    check: fn(&Sources) -> Vec<String>,
}

/// The rules, in the order of docs/architecture.md ("Module arrows").
const RULES: [Rule; 7] = [
    Rule {
        text: "M1 a store kind module never imports another kind",
        enforced: true,
        check: kinds_import_no_other_kind,
    },
    Rule {
        text: "M2 only cross/ and store/ import two kinds",
        enforced: true,
        check: only_cross_and_store_import_two_kinds,
    },
    Rule {
        text: "M3 job/ imports no kind (nor cross/ or store/)",
        enforced: true,
        check: job_imports_no_kind,
    },
    Rule {
        text: "M4 cowfmt never prints",
        enforced: true,
        check: cowfmt_never_prints,
    },
    Rule {
        text: "M5 cowtools (its binaries and every module but render/dump/) reaches the kinds only through the facade cowfmt::store",
        enforced: true,
        check: tools_use_the_facade,
    },
    Rule {
        text: "M5 cowtools' render/dump/ reaches the kinds only through the facade cowfmt::store",
        enforced: false,
        check: dump_rendering_uses_the_facade,
    },
    Rule {
        text: "M6 each tool's binary sources have at most 250 lines together",
        enforced: true,
        check: binaries_are_thin,
    },
];

/// One Rust source file: its path relative to its crate's `src/`, its text
/// as written and without comments, and its number of lines.
struct Source {
    path: PathBuf,
    text: String,
    code: String,
    lines: usize,
}

impl Source {
    fn new(path: PathBuf, text: &str) -> Self {
        Source {
            path,
            text: text.to_string(),
            code: without_comments(text),
            lines: text.lines().count(),
        }
    }

    /// The module path the file defines (`shared/dump/mod.rs` -> shared, dump).
    fn module_path(&self) -> Vec<String> {
        let mut parts: Vec<String> = self
            .path
            .with_extension("")
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            parts.pop();
        }
        parts
    }

    /// The top-level module the file belongs to (`None` for the crate root).
    fn top(&self) -> Option<String> {
        self.module_path().into_iter().next()
    }

    /// The top-level modules of the crate this file names, through `crate::`
    /// or through `super::` chains that climb to the crate root.
    fn top_level_references(&self) -> BTreeSet<String> {
        let module = self.module_path();
        let mut found = BTreeSet::new();
        let code = &self.code;
        for (at, _) in code.match_indices("crate::") {
            found.extend(names_after(&code[at + "crate::".len()..]));
        }
        for (at, _) in code.match_indices("super::") {
            if code[..at].ends_with("super::") {
                continue;
            }
            let mut rest = &code[at..];
            let mut climbs = 0;
            while let Some(tail) = rest.strip_prefix("super::") {
                climbs += 1;
                rest = tail;
            }
            // A file's own module is its path; `super` of a file module is
            // its parent, so climbing the whole path reaches the root.
            if climbs == module.len() {
                found.extend(names_after(rest));
            }
        }
        found
    }
}

/// The sources of cowfmt and cowtools.
struct Sources {
    cowfmt: Vec<Source>,
    cowtools: Vec<Source>,
}

impl Sources {
    fn read() -> Self {
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Sources {
            cowfmt: read_tree(&crates.join("cowfmt/src")),
            cowtools: read_tree(&crates.join("cowtools/src")),
        }
    }
}

fn read_tree(root: &Path) -> Vec<Source> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).unwrap();
                found.push(Source::new(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    &text,
                ));
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// The text with `//` comments (doc comments included) removed; a `//`
/// inside a string literal stays.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| {
            let (mut in_string, mut escaped) = (false, false);
            let bytes = line.as_bytes();
            for (i, &b) in bytes.iter().enumerate() {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' if in_string => escaped = true,
                    b'"' => in_string = !in_string,
                    b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
                    _ => {}
                }
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first names of the path that follows: `a::b` -> a; `{a::b, c}` -> a, c.
fn names_after(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)];
    };
    let mut names = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                names.push(ident(&group[start..i]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                names.push(ident(&group[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

fn kinds_named(source: &Source) -> Vec<String> {
    source
        .top_level_references()
        .into_iter()
        .filter(|name| KINDS.contains(&name.as_str()))
        .collect()
}

fn kinds_import_no_other_kind(sources: &Sources) -> Vec<String> {
    let mut broken = Vec::new();
    for source in &sources.cowfmt {
        let Some(own) = source.top().filter(|top| KINDS.contains(&top.as_str())) else {
            continue;
        };
        for other in kinds_named(source).into_iter().filter(|k| *k != own) {
            broken.push(format!(
                "cowfmt/src/{} (kind {own}) imports kind {other}",
                source.path.display()
            ));
        }
    }
    broken
}

fn only_cross_and_store_import_two_kinds(sources: &Sources) -> Vec<String> {
    sources
        .cowfmt
        .iter()
        .filter(|source| {
            source
                .top()
                .is_some_and(|top| !TWO_KIND_MODULES.contains(&top.as_str()))
        })
        .filter_map(|source| {
            let kinds = kinds_named(source);
            (kinds.len() > 1).then(|| {
                format!(
                    "cowfmt/src/{} imports {} kinds ({}); only {} may",
                    source.path.display(),
                    kinds.len(),
                    kinds.join(", "),
                    TWO_KIND_MODULES.join("/ and ") + "/"
                )
            })
        })
        .collect()
}

fn job_imports_no_kind(sources: &Sources) -> Vec<String> {
    sources
        .cowfmt
        .iter()
        .filter(|source| source.top().as_deref() == Some("job"))
        .flat_map(|source| {
            source
                .top_level_references()
                .into_iter()
                .filter(|name| {
                    KINDS.contains(&name.as_str()) || TWO_KIND_MODULES.contains(&name.as_str())
                })
                .map(move |name| format!("cowfmt/src/{} imports {name}", source.path.display()))
        })
        .collect()
}

fn cowfmt_never_prints(sources: &Sources) -> Vec<String> {
    let macros = ["println!", "eprintln!", "print!", "eprint!", "dbg!"];
    sources
        .cowfmt
        .iter()
        .flat_map(|source| {
            macros
                .iter()
                .filter(|m| {
                    source.code.match_indices(*m).any(|(at, _)| {
                        !source.code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                    })
                })
                .map(move |m| format!("cowfmt/src/{} uses {m}", source.path.display()))
        })
        .collect()
}

fn tools_use_the_facade(sources: &Sources) -> Vec<String> {
    facade_breaches(sources, |path| !path.starts_with(DUMP_RENDERING))
}

fn dump_rendering_uses_the_facade(sources: &Sources) -> Vec<String> {
    facade_breaches(sources, |path| path.starts_with(DUMP_RENDERING))
}

/// Every place a cowtools file among those `chosen` names a module behind
/// the facade, one sentence per file and path.
fn facade_breaches(sources: &Sources, chosen: impl Fn(&Path) -> bool) -> Vec<String> {
    let mut broken = Vec::new();
    for source in sources.cowtools.iter().filter(|s| chosen(&s.path)) {
        let file = format!("cowtools/src/{}", source.path.display());
        match cowfmt_paths(&source.text) {
            Ok(paths) => broken.extend(
                paths
                    .into_iter()
                    .filter(|path| reaches_behind_the_facade(path))
                    .map(|path| format!("{file} uses {}", path.join("::"))),
            ),
            Err(error) => broken.push(format!("{file} cannot be parsed: {error}")),
        }
    }
    broken
}

/// Whether a path from the crate root of cowfmt names a kind, the cross-kind
/// jobs, or everything at once (a glob of the crate root).
fn reaches_behind_the_facade(path: &[String]) -> bool {
    match path.get(1).map(String::as_str) {
        Some("*") => true,
        Some(module) => BEHIND_THE_FACADE.contains(&module),
        None => false,
    }
}

/// The paths of cowfmt a Rust file names, each from the crate root
/// (`cowfmt`, `persistent`, `check`), without repeats: every `use` tree
/// flattened (groups, nested groups, `self`, renames and globs), every path
/// in its items, types and expressions, and every `cowfmt::a::b` in the
/// tokens of its macro calls; a name the file gives the crate itself (`use
/// cowfmt as fmt`) counts as `cowfmt`.
fn cowfmt_paths(text: &str) -> syn::Result<BTreeSet<Vec<String>>> {
    let file = syn::parse_file(text)?;
    let mut found = PathCollector::default();
    found.visit_file(&file);
    let mut crate_names = vec!["cowfmt".to_string()];
    crate_names.extend(found.crate_aliases);
    Ok(found
        .paths
        .into_iter()
        .filter_map(|mut path| {
            let first = path.first()?;
            crate_names.contains(first).then(|| {
                path[0] = "cowfmt".to_string();
                path
            })
        })
        .collect())
}

/// The paths a syntax tree names, gathered by [`cowfmt_paths`].
#[derive(Default)]
struct PathCollector {
    paths: Vec<Vec<String>>,
    crate_aliases: Vec<String>,
}

impl PathCollector {
    /// Adds the paths of a `use` tree below `prefix`.
    fn use_tree(&mut self, tree: &UseTree, prefix: &mut Vec<String>) {
        match tree {
            UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(&path.tree, prefix);
                prefix.pop();
            }
            UseTree::Name(name) => self.paths.push(joined(prefix, &name.ident)),
            UseTree::Rename(rename) => {
                let path = joined(prefix, &rename.ident);
                if path == ["cowfmt"] {
                    self.crate_aliases.push(rename.rename.to_string());
                }
                self.paths.push(path);
            }
            UseTree::Glob(_) => {
                let mut path = prefix.clone();
                path.push("*".to_string());
                self.paths.push(path);
            }
            UseTree::Group(group) => {
                for item in &group.items {
                    self.use_tree(item, prefix);
                }
            }
        }
    }
}

/// `prefix::name`, where `name` may be `self` (the prefix itself).
fn joined(prefix: &[String], name: &syn::Ident) -> Vec<String> {
    let mut path = prefix.to_vec();
    if name != "self" {
        path.push(name.to_string());
    }
    path
}

impl<'ast> Visit<'ast> for PathCollector {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&item.tree, &mut Vec::new());
    }

    fn visit_item_extern_crate(&mut self, item: &'ast syn::ItemExternCrate) {
        if let (true, Some((_, alias))) = (item.ident == "cowfmt", &item.rename) {
            self.crate_aliases.push(alias.to_string());
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let names = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.paths.push(names);
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.paths.extend(token_paths(mac.tokens.clone()));
        visit::visit_macro(self, mac);
    }
}

/// The `a::b::c` runs of identifiers in a token stream (and in its groups).
fn token_paths(tokens: proc_macro2::TokenStream) -> Vec<Vec<String>> {
    use proc_macro2::TokenTree;
    let mut paths = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut colons = 0;
    let finish = |current: &mut Vec<String>, paths: &mut Vec<Vec<String>>| {
        if current.len() > 1 {
            paths.push(std::mem::take(current));
        }
        current.clear();
    };
    for token in tokens {
        match token {
            TokenTree::Ident(ident) if current.is_empty() || colons == 2 => {
                current.push(ident.to_string());
                colons = 0;
            }
            TokenTree::Punct(p) if p.as_char() == ':' && !current.is_empty() && colons < 2 => {
                colons += 1;
            }
            TokenTree::Group(group) => {
                finish(&mut current, &mut paths);
                colons = 0;
                paths.extend(token_paths(group.stream()));
            }
            other => {
                finish(&mut current, &mut paths);
                colons = 0;
                if let TokenTree::Ident(ident) = other {
                    current.push(ident.to_string());
                }
            }
        }
    }
    finish(&mut current, &mut paths);
    paths
}

fn binaries_are_thin(sources: &Sources) -> Vec<String> {
    let mut lines: std::collections::BTreeMap<String, usize> = Default::default();
    for source in sources
        .cowtools
        .iter()
        .filter(|s| s.path.starts_with("bin"))
    {
        let tool = source
            .path
            .iter()
            .nth(1)
            .map(|p| Path::new(p).with_extension("").display().to_string())
            .unwrap_or_default();
        *lines.entry(tool).or_default() += source.lines;
    }
    lines
        .into_iter()
        .filter(|(_, n)| *n > THIN_BINARY_LINES)
        .map(|(tool, n)| format!("{tool}: {n} lines in cowtools/src/bin"))
        .collect()
}

#[test]
fn the_enforced_module_rules_hold() {
    let sources = Sources::read();
    assert!(
        sources
            .cowfmt
            .iter()
            .any(|s| s.top().as_deref() == Some("persistent")),
        "the sources were read"
    );
    let mut broken = Vec::new();
    for rule in &RULES {
        let found = (rule.check)(&sources);
        let state = if rule.enforced {
            "enforced"
        } else {
            "not enforced yet"
        };
        println!("{} ({state}): {} places break it", rule.text, found.len());
        for place in &found {
            println!("  {place}");
        }
        if rule.enforced {
            broken.extend(
                found
                    .into_iter()
                    .map(|place| format!("{}: {place}", rule.text)),
            );
        }
    }
    assert!(
        broken.is_empty(),
        "docs/architecture.md's module rules are broken:\n{}",
        broken.join("\n")
    );
}

fn source(path: &str, text: &str) -> Source {
    Source::new(PathBuf::from(path), text)
}

fn cowfmt_tree(files: &[(&str, &str)]) -> Sources {
    Sources {
        cowfmt: files.iter().map(|(p, t)| source(p, t)).collect(),
        cowtools: Vec::new(),
    }
}

#[test]
fn references_are_found_through_crate_super_and_groups() {
    let file = source(
        "shared/dump/walker.rs",
        "use crate::{finding::Finding, persistent::Header};\n\
         use super::super::super::units;\n\
         use super::model; // crate::clone is a comment\n",
    );
    let names: Vec<String> = file.top_level_references().into_iter().collect();
    assert_eq!(names, ["finding", "persistent", "units"]);
    assert_eq!(file.module_path(), ["shared", "dump", "walker"]);
    assert_eq!(source("shared/mod.rs", "").module_path(), ["shared"]);
}

#[test]
fn a_kind_importing_another_kind_is_reported() {
    let tree = cowfmt_tree(&[
        (
            "shared/migrate/mod.rs",
            "use crate::persistent::rebuild::JobError;",
        ),
        ("persistent/check.rs", "use crate::finding::Finding;"),
        ("persistent/dump.rs", "use super::super::shared::Leaf;"),
    ]);
    assert_eq!(
        kinds_import_no_other_kind(&tree),
        [
            "cowfmt/src/shared/migrate/mod.rs (kind shared) imports kind persistent",
            "cowfmt/src/persistent/dump.rs (kind persistent) imports kind shared",
        ]
    );
}

#[test]
fn two_kinds_outside_cross_and_store_and_kinds_in_job_are_reported() {
    let tree = cowfmt_tree(&[
        ("dump_read/mod.rs", "use crate::{persistent::X, shared::Y};"),
        ("cross/import.rs", "use crate::{persistent::X, shared::Y};"),
        (
            "store/check.rs",
            "use crate::persistent::X; use crate::shared::Y;",
        ),
        (
            "job/window.rs",
            "use crate::shared::Leaf; use crate::device::Device;",
        ),
    ]);
    assert_eq!(
        only_cross_and_store_import_two_kinds(&tree),
        ["cowfmt/src/dump_read/mod.rs imports 2 kinds (persistent, shared); only cross/ and store/ may"]
    );
    assert_eq!(
        job_imports_no_kind(&tree),
        ["cowfmt/src/job/window.rs imports shared"]
    );
}

#[test]
fn printing_and_kind_paths_in_binaries_are_reported() {
    let tree = Sources {
        cowfmt: vec![
            source("progress.rs", "fn f() { eprintln!(\"x\"); }"),
            source("units.rs", "fn f() { write!(out, \"x\"); } // println!"),
        ],
        cowtools: vec![
            source(
                "bin/cowcheck.rs",
                "use cowfmt::store::check; use cowfmt::shared::mask;",
            ),
            source("render/check.rs", "use cowfmt::shared::CheckReport;"),
        ],
    };
    assert_eq!(
        cowfmt_never_prints(&tree),
        ["cowfmt/src/progress.rs uses eprintln!"]
    );
    assert_eq!(
        tools_use_the_facade(&tree),
        [
            "cowtools/src/bin/cowcheck.rs uses cowfmt::shared::mask",
            "cowtools/src/render/check.rs uses cowfmt::shared::CheckReport",
        ]
    );
}

#[test]
fn grouped_nested_renamed_and_spelled_out_kind_paths_are_reported() {
    let tools = |path: &str, text: &str| Sources {
        cowfmt: Vec::new(),
        cowtools: vec![source(path, text)],
    };
    let grouped = tools(
        "snapshot_data.rs",
        "use cowfmt::{persistent, shared, StoreKind};\n\
         use cowfmt::{store::{self, check}, cross::{migrate::{self as m}}};\n",
    );
    assert_eq!(
        tools_use_the_facade(&grouped),
        [
            "cowtools/src/snapshot_data.rs uses cowfmt::cross::migrate",
            "cowtools/src/snapshot_data.rs uses cowfmt::persistent",
            "cowtools/src/snapshot_data.rs uses cowfmt::shared",
        ]
    );
    let spelled_out = tools(
        "open.rs",
        "use cowfmt as fmt;\n\
         pub use cowfmt::*;\n\
         fn f(d: Device) -> fmt::persistent::PersistentStore {\n\
             let o = cowfmt::shared::repair::RepairOptions::default();\n\
             assert!(matches!(x, ::cowfmt::clone::Kind::A));\n\
             cowfmt::store::open_classic(d).unwrap()\n\
         }\n",
    );
    assert_eq!(
        tools_use_the_facade(&spelled_out),
        [
            "cowtools/src/open.rs uses cowfmt::*",
            "cowtools/src/open.rs uses cowfmt::clone::Kind::A",
            "cowtools/src/open.rs uses cowfmt::persistent::PersistentStore",
            "cowtools/src/open.rs uses cowfmt::shared::repair::RepairOptions::default",
        ]
    );
    let facade_only = tools(
        "render/check.rs",
        "use cowfmt::store::reports::shared::{self as shared_check, mask};\n\
         // use cowfmt::persistent::Header;\n\
         const S: &str = \"cowfmt::shared::x\";\n",
    );
    assert!(tools_use_the_facade(&facade_only).is_empty());
    let dump = tools("render/dump/shared.rs", "use cowfmt::shared::dump::View;");
    assert!(tools_use_the_facade(&dump).is_empty());
    assert_eq!(
        dump_rendering_uses_the_facade(&dump),
        ["cowtools/src/render/dump/shared.rs uses cowfmt::shared::dump::View"]
    );
}

//! The fixed list of cases: every tool, every output format and option
//! family, on golden images, generated stores, damaged copies and bad inputs.
//! An argument that names a file of the input pool makes the case copy that
//! file into its directory.

use std::path::Path;

/// One command line of one tool.
#[derive(Debug, Clone)]
pub struct Case {
    tool: String,
    args: Vec<String>,
    stdin: Option<String>,
}

impl Case {
    /// A case from its command line: the tool, its arguments separated by
    /// spaces, and optionally `< FILE` for its stdin.
    fn parse(line: &str) -> Self {
        let (command, stdin) = match line.split_once(" < ") {
            Some((command, stdin)) => (command, Some(stdin.trim().to_string())),
            None => (line, None),
        };
        let mut words = command.split_whitespace().map(str::to_string);
        Case {
            tool: words.next().expect("a case names its tool"),
            args: words.collect(),
            stdin,
        }
    }

    /// The tool run.
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// Its arguments.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The pool file fed to its stdin, if any.
    pub fn stdin(&self) -> Option<&str> {
        self.stdin.as_deref()
    }

    /// The command line, which names the case.
    pub fn name(&self) -> String {
        let mut name = std::iter::once(self.tool.clone())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(stdin) = &self.stdin {
            name.push_str(" < ");
            name.push_str(stdin);
        }
        name
    }

    /// The pool entries the arguments name (also after `--flag=`).
    pub fn inputs(&self, pool: &Path) -> Vec<String> {
        let mut names: Vec<String> = self
            .args
            .iter()
            .map(|arg| arg.rsplit('=').next().unwrap_or(arg).to_string())
            .filter(|name| !name.is_empty() && !name.starts_with('-') && !name.contains('/'))
            .filter(|name| pool.join(name).exists())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Classic stores in good order: golden images, generated, fresh from mkcow.
const CLASSIC: [&str; 9] = [
    "golden-a.cow",
    "golden-b2.cow",
    "golden-c.cow",
    "golden-c2.cow",
    "gen-p.cow",
    "gen-l.cow",
    "gen-r.cow",
    "mk-p.cow",
    "mk-l.cow",
];

/// Shared stores in good order.
const SHARED: [&str; 3] = ["gen-s.cow", "gen-s2.cow", "mk-s.cow"];

/// Damaged copies.
const DAMAGED: [&str; 14] = [
    "dmg-hdr.cow",
    "dmg-magic.cow",
    "dmg-invalid.cow",
    "dmg-version.cow",
    "dmg-rec.cow",
    "dmg-dup.cow",
    "dmg-area.cow",
    "dmg-term.cow",
    "dmg-b2-area.cow",
    "dmg-trunc.cow",
    "dmg-s-hdr.cow",
    "dmg-s-leaf.cow",
    "dmg-s2-leaf.cow",
    "clone-dest.img",
];

/// Inputs that are not stores: missing, a directory, empty, truncated, junk,
/// zeros, another kind (dm-clone metadata), a text file.
const BAD: [&str; 8] = [
    "missing.img",
    "adir",
    "empty.img",
    "trunc.img",
    "junk.img",
    "zero.img",
    "clone-meta.img",
    "existing.txt",
];

/// Every case, in a fixed order.
pub fn all() -> Vec<Case> {
    let mut cases = Cases::default();
    common(&mut cases);
    cowcheck(&mut cases);
    cowcheck_clone(&mut cases);
    cowdump(&mut cases);
    cowrepair(&mut cases);
    cowmigrate(&mut cases);
    mkcow(&mut cases);
    cases.0
}

/// The cases collected so far.
#[derive(Default)]
struct Cases(Vec<Case>);

impl Cases {
    /// Adds the case of one command line (see [`Case::parse`]).
    fn add(&mut self, line: impl AsRef<str>) {
        self.0.push(Case::parse(line.as_ref()));
    }

    /// Adds one case per command line.
    fn add_all<S: AsRef<str>>(&mut self, lines: impl IntoIterator<Item = S>) {
        for line in lines {
            self.add(line);
        }
    }
}

fn every_input() -> impl Iterator<Item = &'static str> {
    CLASSIC.into_iter().chain(SHARED).chain(DAMAGED).chain(BAD)
}

/// Help, version and usage errors of every tool.
fn common(cases: &mut Cases) {
    for tool in super::build::TOOLS {
        for args in ["--help", "-h", "-V", "--version", "", "--bogus", "a b c"] {
            cases.add(format!("{tool} {args}"));
        }
    }
}

fn cowcheck(cases: &mut Cases) {
    for input in every_input() {
        cases.add_all([
            format!("cowcheck {input}"),
            format!("cowcheck --format json {input}"),
        ]);
    }
    for input in [
        "golden-a.cow",
        "golden-c.cow",
        "gen-s.cow",
        "dmg-rec.cow",
        "dmg-s-leaf.cow",
        "junk.img",
    ] {
        cases.add_all([
            format!("cowcheck -q {input}"),
            format!("cowcheck --super-block-only {input}"),
            format!("cowcheck --super-block-only --format json {input}"),
            format!("cowcheck --ignore-non-fatal {input}"),
            format!("cowcheck -q --ignore-non-fatal-errors {input}"),
        ]);
        for kind in ["persistent", "legacy", "shared"] {
            cases.add(format!("cowcheck --kind {kind} {input}"));
        }
    }
    for (store, origin) in [
        ("golden-a.cow", "golden-a.origin"),
        ("golden-c.cow", "golden-c.origin"),
        ("gen-p.cow", "gen-p.origin"),
        ("gen-s.cow", "gen-s.origin"),
        ("gen-s.cow", "golden-a.origin"),
        ("dmg-rec.cow", "gen-p.origin"),
    ] {
        cases.add_all([
            format!("cowcheck --origin {origin} {store}"),
            format!("cowcheck --format json --origin {origin} {store}"),
        ]);
    }
    for store in ["gen-p.cow", "gen-l.cow", "gen-s.cow", "golden-b2.cow"] {
        cases.add_all([
            format!("cowcheck --origin-size 64k {store}"),
            format!("cowcheck --origin-size 1G --format json {store}"),
        ]);
    }
    cases.add("cowcheck --origin missing.img gen-p.cow");
    cases.add("cowcheck --origin-size 12q gen-p.cow");
    for store in ["dmg-hdr.cow", "dmg-magic.cow", "gen-p.cow", "gen-l.cow"] {
        cases.add_all([
            format!("cowcheck --chunk-size 4k {store}"),
            format!("cowcheck --chunk-size 8k --kind persistent {store}"),
        ]);
    }
    cases.add("cowcheck --chunk-size 3k gen-p.cow");
}

/// cowcheck on dm-clone metadata: the golden image, damaged copies of it,
/// its destination as the source size, and other inputs held to `--kind clone`.
fn cowcheck_clone(cases: &mut Cases) {
    for input in ["dmg-clone-sb.img", "dmg-clone-array.img"] {
        cases.add_all([
            format!("cowcheck {input}"),
            format!("cowcheck --format json {input}"),
        ]);
    }
    for input in ["clone-meta.img", "dmg-clone-sb.img", "dmg-clone-array.img"] {
        cases.add_all([
            format!("cowcheck --kind clone {input}"),
            format!("cowcheck --kind clone --format json {input}"),
            format!("cowcheck -q {input}"),
            format!("cowcheck --super-block-only {input}"),
            format!("cowcheck --ignore-non-fatal {input}"),
        ]);
    }
    cases.add_all([
        "cowcheck --origin clone-dest.img clone-meta.img",
        "cowcheck --format json --origin clone-dest.img clone-meta.img",
        "cowcheck --origin-size 1M clone-meta.img",
        "cowcheck --kind clone junk.img",
        "cowcheck --kind clone zero.img",
        "cowcheck --kind clone gen-p.cow",
        "cowcheck --kind clone --format json gen-s.cow",
    ]);
}

fn cowdump(cases: &mut Cases) {
    for input in every_input() {
        for format in ["yaml", "json", "table"] {
            cases.add(format!("cowdump --format {format} {input}"));
        }
    }
    for input in CLASSIC
        .into_iter()
        .chain(["dmg-rec.cow", "dmg-invalid.cow"])
    {
        cases.add_all([
            format!("cowdump --runs {input}"),
            format!("cowdump --runs --format table {input}"),
            format!("cowdump --kind legacy {input}"),
        ]);
    }
    for input in ["golden-a.cow", "gen-s.cow", "dmg-hdr.cow", "junk.img"] {
        cases.add_all([
            format!("cowdump --hex 0 {input}"),
            format!("cowdump --hex 1 {input}"),
            format!("cowdump --hex 99999 {input}"),
            format!("cowdump -q {input}"),
            format!("cowdump --kind shared {input}"),
            format!("cowdump --kind persistent --format json {input}"),
        ]);
    }
    for input in SHARED.into_iter().chain(["dmg-s-leaf.cow", "golden-a.cow"]) {
        for format in ["yaml", "json", "table"] {
            for view in [
                "--snapshot 0",
                "--snapshot 2",
                "--snapshot 63",
                "--tree",
                "--bitmap",
                "--journal",
            ] {
                cases.add(format!("cowdump --format {format} {view} {input}"));
            }
        }
    }
    cases.add("cowdump --tree --bitmap gen-s.cow");
    cases.add("cowdump --hex 1 --format json gen-p.cow");
    for input in ["gen-p.cow", "gen-s.cow", "dmg-rec.cow"] {
        cases.add_all([
            format!("cowdump -o out.yaml {input}"),
            format!("cowdump --format json --runs -o out.json {input}"),
            format!("cowdump --format table --output out.txt {input}"),
            format!("cowdump -o existing.txt {input}"),
            format!("cowdump -o existing.txt --force {input}"),
            format!("cowdump -o {input} {input}"),
            format!("cowdump -o adir {input}"),
            format!("cowdump -o nodir/out.yaml {input}"),
        ]);
    }
    cases.add("cowdump --force gen-p.cow");
}

fn cowrepair(cases: &mut Cases) {
    for input in every_input() {
        cases.add_all([
            format!("cowrepair -i {input} --dry-run"),
            format!("cowrepair -i {input} -o out.img"),
        ]);
    }
    for input in ["golden-a.cow", "golden-c.cow", "gen-s.cow"]
        .into_iter()
        .chain(DAMAGED)
    {
        for format in ["text", "table", "json"] {
            cases.add_all([
                format!("cowrepair -i {input} -o out.img --format {format}"),
                format!("cowrepair -i {input} -n --format {format}"),
            ]);
        }
        cases.add_all([
            format!("cowrepair -q -i {input} -o out.img"),
            format!("cowrepair -q -i {input} -o out.img --format json"),
            format!("cowrepair -i {input} --in-place --backup backup.img"),
            format!("cowrepair -i {input} -o out.img --invalidate-on-loss"),
        ]);
    }
    for input in ["golden-c.cow", "dmg-invalid.cow", "gen-p.cow"] {
        for option in [
            "--mark-valid",
            "--kernel-areas-only",
            "--kind legacy",
            "--size 8M",
            "--size 4k",
        ] {
            cases.add(format!("cowrepair -i {input} -o out.img {option}"));
        }
    }
    for (input, origin) in [
        ("golden-a.cow", "golden-a.origin"),
        ("gen-p.cow", "gen-p.origin"),
        ("dmg-rec.cow", "gen-p.origin"),
        ("gen-s.cow", "gen-s.origin"),
        ("dmg-s-leaf.cow", "gen-s.origin"),
    ] {
        cases.add_all([
            format!("cowrepair -i {input} -o out.img --origin {origin}"),
            format!("cowrepair -i {input} -n --origin-size 256k"),
            format!("cowrepair -i {input} -n --origin-size 256k --format json"),
        ]);
    }
    for input in ["dmg-hdr.cow", "dmg-magic.cow", "dmg-area.cow", "gen-p.cow"] {
        cases.add_all([
            format!("cowrepair -i {input} -o out.img --chunk-size 4k"),
            format!("cowrepair -i {input} -o out.img --chunk-size 8k --format json"),
            format!("cowrepair -i {input} -n --kind persistent"),
        ]);
    }
    for input in [
        "dmg-s-hdr.cow",
        "dmg-s-leaf.cow",
        "dmg-s2-leaf.cow",
        "gen-s.cow",
    ] {
        cases.add_all([
            format!("cowrepair -i {input} -o out.img --kind shared --snapshots 0-3"),
            format!("cowrepair -i {input} -n --kind shared --snapmask 0x5 --format json"),
            format!("cowrepair -i {input} -o out.img --full-scan --format table"),
            format!("cowrepair -i {input} -n --kind shared --journal-chunks 8"),
        ]);
    }
    for bad in [
        "--snapshots=3-1",
        "--snapshots=1,1",
        "--snapshots=64",
        "--snapmask=0",
        "--snapmask=zz",
    ] {
        cases.add(format!("cowrepair -i gen-s.cow -n {bad}"));
    }
    for input in ["junk.img", "clone-meta.img", "zero.img"] {
        cases.add_all([
            format!("cowrepair -i {input} -o out.img --kind persistent --force"),
            format!("cowrepair -i {input} -o out.img --kind shared --force"),
            format!("cowrepair -i {input} -o out.img --kind persistent --chunk-size 4k --force"),
        ]);
    }
    for input in ["gen-p.cow", "dmg-rec.cow"] {
        cases.add_all([
            format!("cowrepair -i {input} -o existing.txt"),
            format!("cowrepair -i {input} -o existing.txt --force"),
            format!("cowrepair -i {input} -o {input}"),
            format!("cowrepair -i {input} -o adir"),
            format!("cowrepair -i {input} --in-place"),
            format!("cowrepair -i {input} --in-place --backup existing.txt"),
            format!("cowrepair -i {input} --in-place --backup {input}"),
            format!("cowrepair -i {input} -o out.img --in-place"),
            format!("cowrepair -i {input}"),
        ]);
    }
}

fn cowmigrate(cases: &mut Cases) {
    for input in every_input() {
        cases.add_all([
            format!("cowmigrate -i {input} -o out.img --chunk-size 2k"),
            format!("cowmigrate -i {input} -o out.img --to shared"),
        ]);
    }
    for (input, origin) in [
        ("golden-a.cow", "golden-a.origin"),
        ("golden-b2.cow", "golden-b2.origin"),
        ("golden-c2.cow", "golden-c2.origin"),
        ("gen-p.cow", "gen-p.origin"),
        ("gen-l.cow", "gen-l.origin"),
    ] {
        for format in ["text", "json"] {
            cases.add_all([
                format!("cowmigrate -i {input} -o out.img --chunk-size 16k --origin {origin} --format {format}"),
                format!("cowmigrate -i {input} -o out.img --chunk-size 1k --format {format}"),
                format!("cowmigrate -i {input} -o out.img --to legacy --origin {origin} --format {format}"),
                format!("cowmigrate -i {input} -o out.img --to persistent --format {format}"),
                format!("cowmigrate -i {input} -o out.img --to shared --journal-size 64k --format {format}"),
            ]);
        }
        cases.add_all([
            format!("cowmigrate -i {input} -o out.img --chunk-size 16k"),
            format!("cowmigrate -i {input} -o snap.raw --to raw --origin {origin}"),
            format!("cowmigrate -i {input} -o - --to raw --origin {origin}"),
            format!("cowmigrate -i {input} --merge --origin {origin}"),
            format!("cowmigrate -i {input} --merge --origin {origin} --format json"),
            format!("cowmigrate -q -i {input} -o out.img --chunk-size 2k --size 16M"),
            format!("cowmigrate -i {input} -o out.img --chunk-size 2k --size 8k"),
        ]);
    }
    for (input, origin) in [
        ("gen-s.cow", "gen-s.origin"),
        ("gen-s2.cow", "gen-s2.origin"),
        ("mk-s.cow", "gen-s.origin"),
    ] {
        for format in ["text", "json"] {
            cases.add_all([
                format!("cowmigrate -i {input} -o out.img --to persistent --snapshot 1 --origin {origin} --format {format}"),
                format!("cowmigrate -i {input} -o out.img --to legacy --snapshot 2 --origin {origin} --format {format}"),
                format!("cowmigrate -i {input} -o out.img --to shared --format {format}"),
                format!("cowmigrate -i {input} -o out.img --chunk-size 16k --origin {origin} --format {format}"),
                format!("cowmigrate -i {input} --merge --snapshot 1 --origin {origin} --format {format}"),
            ]);
        }
        cases.add_all([
            format!("cowmigrate -i {input} -o snap.raw --to raw --snapshot 0 --origin {origin}"),
            format!("cowmigrate -i {input} -o - --to raw --snapshot 3 --origin {origin}"),
            format!("cowmigrate -i {input} -o out.img --to persistent --origin {origin}"),
            format!("cowmigrate -i {input} -o out.img --to persistent --snapshot 40"),
            format!("cowmigrate -i {input} --merge --origin {origin}"),
        ]);
    }
    for (inputs, extra) in [
        ("golden-a.cow golden-b2.cow", ""),
        ("golden-a.cow golden-b2.cow golden-c2.cow", " --ids 5,6,9"),
        ("gen-p.cow gen-r.cow", ""),
        ("gen-p.cow gen-l.cow", " --ids 1,2"),
        ("gen-p.cow gen-p.cow", " --ids 3,3"),
        ("gen-p.cow dmg-rec.cow", ""),
        ("gen-p.cow gen-s.cow", ""),
        ("gen-p.cow junk.img", ""),
    ] {
        for format in ["text", "json"] {
            cases.add(format!(
                "cowmigrate -i {inputs} -o out.img --to shared --format {format}{extra}"
            ));
        }
    }
    cases.add_all([
        "cowmigrate -i gen-p.cow -o out.img --to shared --ids 64",
        "cowmigrate -i gen-p.cow -o out.img --to shared --ids 1,2",
        "cowmigrate -i gen-p.cow -o existing.txt --to shared",
        "cowmigrate -i gen-p.cow -o existing.txt --to shared --force",
        "cowmigrate -i gen-p.cow -o gen-p.cow --chunk-size 2k --force",
        "cowmigrate -i gen-p.cow -o out.img",
        "cowmigrate -i gen-p.cow --chunk-size 2k",
        "cowmigrate -i gen-p.cow -o out.img --chunk-size 3k",
        "cowmigrate -i gen-p.cow -o out.img --to raw",
        "cowmigrate -i gen-p.cow -o out.img --kind shared --to persistent",
        "cowmigrate -i gen-p.cow --merge",
        "cowmigrate -i gen-s.cow --merge --snapshot 9 --origin gen-s.origin",
        "cowmigrate -i gen-p.cow --merge --origin golden-a.origin",
    ]);
}

fn mkcow(cases: &mut Cases) {
    cases.add_all([
        "mkcow --size 1M new.img",
        "mkcow --size 64M --chunk-size 64k new.img",
        "mkcow --size 1M --chunk-size 8s --kind legacy new.img",
        "mkcow --size 16M --kind shared --journal-size 1M --snapshots 4 new.img",
        "mkcow --size 16M --kind shared new.img",
        "mkcow --size 4M --kind shared --journal-size 0 new.img",
        "mkcow --size 4M --kind shared --snapshots 65 new.img",
        "mkcow --size 4M --kind shared --journal-size 8M new.img",
        "mkcow --size 1M --origin gen-p.origin new.img",
        "mkcow --size 1M --origin missing.img new.img",
        "mkcow -q --size 1M new.img",
        "mkcow -q --size 8M --kind shared --origin gen-s.origin new.img",
        "mkcow --size 4k new.img",
        "mkcow --size 1M --chunk-size 3k new.img",
        "mkcow --size 1M --chunk-size 256 new.img",
        "mkcow --size 0 new.img",
        "mkcow new.img",
        "mkcow zero.img",
        "mkcow --chunk-size 16k zero.img",
        "mkcow --kind shared zero.img",
        "mkcow --size 2M zero.img",
        "mkcow junk.img",
        "mkcow --force junk.img",
        "mkcow existing.txt",
        "mkcow gen-p.cow",
        "mkcow --force gen-p.cow",
        "mkcow --force --kind shared gen-p.cow",
        "mkcow gen-s.cow",
        "mkcow clone-meta.img",
        "mkcow --force clone-meta.img",
        "mkcow adir",
        "mkcow empty.img",
        "mkcow --size 1M empty.img",
        "mkcow --size 1M nodir/new.img",
    ]);
    for (dump, target) in [
        ("gen-p.yaml", "gen-p.cow"),
        ("gen-p.json", "gen-p.cow"),
        ("gen-p.yaml", "zero.img"),
        ("gen-p.yaml", "mk-p.cow"),
        ("gen-p.yaml", "new.img"),
        ("gen-l.yaml", "gen-l.cow"),
        ("golden-b2.yaml", "golden-b2.cow"),
        ("golden-b2.yaml", "gen-p.cow"),
        ("gen-s.yaml", "gen-s.cow"),
        ("gen-s.json", "gen-s.cow"),
        ("gen-s.yaml", "zero.img"),
        ("mk-s.yaml", "mk-s.cow"),
        ("bad-dump.yaml", "gen-p.cow"),
        ("half-dump.yaml", "gen-p.cow"),
        ("junk.img", "gen-p.cow"),
        ("empty.img", "gen-p.cow"),
        ("missing.yaml", "gen-p.cow"),
        ("existing.txt", "gen-p.cow"),
    ] {
        cases.add_all([
            format!("mkcow --force --from-dump {dump} {target}"),
            format!("mkcow -i {dump} {target}"),
        ]);
    }
    cases.add_all([
        "mkcow -q --force -i gen-p.json gen-p.cow",
        "mkcow --force --input gen-s.json --size 64M new.img",
        "mkcow --force -i gen-p.yaml --chunk-size 8k gen-p.cow",
        "mkcow --force -i gen-p.yaml --kind shared gen-p.cow",
        "mkcow --force -i gen-p.yaml --kind legacy gen-p.cow",
        "mkcow --force -i - gen-p.cow < gen-p.yaml",
        "mkcow --force -i - gen-s.cow < gen-s.json",
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_gives_the_tool_the_arguments_and_stdin() {
        let case = Case::parse("mkcow --force -i - gen-s.cow < gen-s.json");
        assert_eq!(case.tool(), "mkcow");
        assert_eq!(case.args(), ["--force", "-i", "-", "gen-s.cow"]);
        assert_eq!(case.stdin(), Some("gen-s.json"));
        assert_eq!(case.name(), "mkcow --force -i - gen-s.cow < gen-s.json");
        let bare = Case::parse("cowcheck ");
        assert_eq!(
            (bare.tool(), bare.args().len(), bare.stdin()),
            ("cowcheck", 0, None)
        );
    }

    #[test]
    fn inputs_are_the_arguments_that_name_pool_files() {
        let pool = tempfile::tempdir().unwrap();
        for name in ["gen-p.cow", "gen-p.origin"] {
            std::fs::write(pool.path().join(name), b"x").unwrap();
        }
        let case =
            Case::parse("cowcheck --origin=gen-p.origin -o nodir/gen-p.cow gen-p.cow missing.img");
        assert_eq!(case.inputs(pool.path()), ["gen-p.cow", "gen-p.origin"]);
    }

    #[test]
    fn every_case_is_new_and_runs_one_of_the_five_tools() {
        let cases = all();
        let names: std::collections::BTreeSet<String> = cases.iter().map(Case::name).collect();
        assert_eq!(names.len(), cases.len(), "a case is listed twice");
        for case in &cases {
            assert!(
                super::super::build::TOOLS.contains(&case.tool()),
                "{}",
                case.name()
            );
        }
    }
}

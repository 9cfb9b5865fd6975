//! The fixed list of cases: every tool, every output format and option
//! family, on golden images, generated stores, damaged copies and bad inputs.
//! An argument that names a file of the input pool makes the case copy that
//! file into its directory.

use std::path::Path;

/// One command line of one tool.
#[derive(Debug, Clone)]
pub struct Case {
    tool: &'static str,
    args: Vec<String>,
    stdin: Option<&'static str>,
}

impl Case {
    fn new(tool: &'static str, args: &[&str]) -> Self {
        Case {
            tool,
            args: args.iter().map(|a| a.to_string()).collect(),
            stdin: None,
        }
    }

    /// The tool run.
    pub fn tool(&self) -> &'static str {
        self.tool
    }

    /// Its arguments.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The pool file fed to its stdin, if any.
    pub fn stdin(&self) -> Option<&'static str> {
        self.stdin
    }

    /// The command line, which names the case.
    pub fn name(&self) -> String {
        let mut name = std::iter::once(self.tool.to_string())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(stdin) = self.stdin {
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
    let mut cases = Vec::new();
    common(&mut cases);
    cowcheck(&mut cases);
    cowdump(&mut cases);
    cowrepair(&mut cases);
    cowmigrate(&mut cases);
    mkcow(&mut cases);
    cases
}

fn every_input() -> impl Iterator<Item = &'static str> {
    CLASSIC.into_iter().chain(SHARED).chain(DAMAGED).chain(BAD)
}

fn add(cases: &mut Vec<Case>, tool: &'static str, args: &[&str]) {
    cases.push(Case::new(tool, args));
}

/// Help, version and usage errors of every tool.
fn common(cases: &mut Vec<Case>) {
    for tool in super::build::TOOLS {
        for args in [
            &["--help"][..],
            &["-h"],
            &["-V"],
            &["--version"],
            &[],
            &["--bogus"],
            &["a", "b", "c"],
        ] {
            add(cases, tool, args);
        }
    }
}

fn cowcheck(cases: &mut Vec<Case>) {
    for input in every_input() {
        add(cases, "cowcheck", &[input]);
        add(cases, "cowcheck", &["--format", "json", input]);
    }
    for input in [
        "golden-a.cow",
        "golden-c.cow",
        "gen-s.cow",
        "dmg-rec.cow",
        "dmg-s-leaf.cow",
        "junk.img",
    ] {
        add(cases, "cowcheck", &["-q", input]);
        add(cases, "cowcheck", &["--super-block-only", input]);
        add(
            cases,
            "cowcheck",
            &["--super-block-only", "--format", "json", input],
        );
        add(cases, "cowcheck", &["--ignore-non-fatal", input]);
        add(
            cases,
            "cowcheck",
            &["-q", "--ignore-non-fatal-errors", input],
        );
        for kind in ["persistent", "legacy", "shared"] {
            add(cases, "cowcheck", &["--kind", kind, input]);
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
        add(cases, "cowcheck", &["--origin", origin, store]);
        add(
            cases,
            "cowcheck",
            &["--format", "json", "--origin", origin, store],
        );
    }
    for store in ["gen-p.cow", "gen-l.cow", "gen-s.cow", "golden-b2.cow"] {
        add(cases, "cowcheck", &["--origin-size", "64k", store]);
        add(
            cases,
            "cowcheck",
            &["--origin-size", "1G", "--format", "json", store],
        );
    }
    add(cases, "cowcheck", &["--origin", "missing.img", "gen-p.cow"]);
    add(cases, "cowcheck", &["--origin-size", "12q", "gen-p.cow"]);
    for store in ["dmg-hdr.cow", "dmg-magic.cow", "gen-p.cow", "gen-l.cow"] {
        add(cases, "cowcheck", &["--chunk-size", "4k", store]);
        add(
            cases,
            "cowcheck",
            &["--chunk-size", "8k", "--kind", "persistent", store],
        );
    }
    add(cases, "cowcheck", &["--chunk-size", "3k", "gen-p.cow"]);
}

fn cowdump(cases: &mut Vec<Case>) {
    for input in every_input() {
        for format in ["yaml", "json", "table"] {
            add(cases, "cowdump", &["--format", format, input]);
        }
    }
    for input in CLASSIC
        .into_iter()
        .chain(["dmg-rec.cow", "dmg-invalid.cow"])
    {
        add(cases, "cowdump", &["--runs", input]);
        add(cases, "cowdump", &["--runs", "--format", "table", input]);
        add(cases, "cowdump", &["--kind", "legacy", input]);
    }
    for input in ["golden-a.cow", "gen-s.cow", "dmg-hdr.cow", "junk.img"] {
        add(cases, "cowdump", &["--hex", "0", input]);
        add(cases, "cowdump", &["--hex", "1", input]);
        add(cases, "cowdump", &["--hex", "99999", input]);
        add(cases, "cowdump", &["-q", input]);
        add(cases, "cowdump", &["--kind", "shared", input]);
        add(
            cases,
            "cowdump",
            &["--kind", "persistent", "--format", "json", input],
        );
    }
    for input in SHARED.into_iter().chain(["dmg-s-leaf.cow", "golden-a.cow"]) {
        for format in ["yaml", "json", "table"] {
            for view in [
                &["--snapshot", "0"][..],
                &["--snapshot", "2"],
                &["--snapshot", "63"],
                &["--tree"],
                &["--bitmap"],
                &["--journal"],
            ] {
                let mut args = vec!["--format", format];
                args.extend_from_slice(view);
                args.push(input);
                add(cases, "cowdump", &args);
            }
        }
    }
    add(cases, "cowdump", &["--tree", "--bitmap", "gen-s.cow"]);
    add(
        cases,
        "cowdump",
        &["--hex", "1", "--format", "json", "gen-p.cow"],
    );
    for input in ["gen-p.cow", "gen-s.cow", "dmg-rec.cow"] {
        add(cases, "cowdump", &["-o", "out.yaml", input]);
        add(
            cases,
            "cowdump",
            &["--format", "json", "--runs", "-o", "out.json", input],
        );
        add(
            cases,
            "cowdump",
            &["--format", "table", "--output", "out.txt", input],
        );
        add(cases, "cowdump", &["-o", "existing.txt", input]);
        add(cases, "cowdump", &["-o", "existing.txt", "--force", input]);
        add(cases, "cowdump", &["-o", input, input]);
        add(cases, "cowdump", &["-o", "adir", input]);
        add(cases, "cowdump", &["-o", "nodir/out.yaml", input]);
    }
    add(cases, "cowdump", &["--force", "gen-p.cow"]);
}

fn cowrepair(cases: &mut Vec<Case>) {
    for input in every_input() {
        add(cases, "cowrepair", &["-i", input, "--dry-run"]);
        add(cases, "cowrepair", &["-i", input, "-o", "out.img"]);
    }
    for input in ["golden-a.cow", "golden-c.cow", "gen-s.cow"]
        .into_iter()
        .chain(DAMAGED)
    {
        for format in ["text", "table", "json"] {
            add(
                cases,
                "cowrepair",
                &["-i", input, "-o", "out.img", "--format", format],
            );
            add(cases, "cowrepair", &["-i", input, "-n", "--format", format]);
        }
        add(cases, "cowrepair", &["-q", "-i", input, "-o", "out.img"]);
        add(
            cases,
            "cowrepair",
            &["-q", "-i", input, "-o", "out.img", "--format", "json"],
        );
        add(
            cases,
            "cowrepair",
            &["-i", input, "--in-place", "--backup", "backup.img"],
        );
        add(
            cases,
            "cowrepair",
            &["-i", input, "-o", "out.img", "--invalidate-on-loss"],
        );
    }
    for input in ["golden-c.cow", "dmg-invalid.cow", "gen-p.cow"] {
        add(
            cases,
            "cowrepair",
            &["-i", input, "-o", "out.img", "--mark-valid"],
        );
        add(
            cases,
            "cowrepair",
            &["-i", input, "-o", "out.img", "--kernel-areas-only"],
        );
        add(
            cases,
            "cowrepair",
            &["-i", input, "-o", "out.img", "--kind", "legacy"],
        );
        add(
            cases,
            "cowrepair",
            &["-i", input, "-o", "out.img", "--size", "8M"],
        );
        add(
            cases,
            "cowrepair",
            &["-i", input, "-o", "out.img", "--size", "4k"],
        );
    }
    for (input, origin) in [
        ("golden-a.cow", "golden-a.origin"),
        ("gen-p.cow", "gen-p.origin"),
        ("dmg-rec.cow", "gen-p.origin"),
        ("gen-s.cow", "gen-s.origin"),
        ("dmg-s-leaf.cow", "gen-s.origin"),
    ] {
        add(
            cases,
            "cowrepair",
            &["-i", input, "-o", "out.img", "--origin", origin],
        );
        add(
            cases,
            "cowrepair",
            &["-i", input, "-n", "--origin-size", "256k"],
        );
        add(
            cases,
            "cowrepair",
            &[
                "-i",
                input,
                "-n",
                "--origin-size",
                "256k",
                "--format",
                "json",
            ],
        );
    }
    for input in ["dmg-hdr.cow", "dmg-magic.cow", "dmg-area.cow", "gen-p.cow"] {
        add(
            cases,
            "cowrepair",
            &["-i", input, "-o", "out.img", "--chunk-size", "4k"],
        );
        add(
            cases,
            "cowrepair",
            &[
                "-i",
                input,
                "-o",
                "out.img",
                "--chunk-size",
                "8k",
                "--format",
                "json",
            ],
        );
        add(
            cases,
            "cowrepair",
            &["-i", input, "-n", "--kind", "persistent"],
        );
    }
    for input in [
        "dmg-s-hdr.cow",
        "dmg-s-leaf.cow",
        "dmg-s2-leaf.cow",
        "gen-s.cow",
    ] {
        add(
            cases,
            "cowrepair",
            &[
                "-i",
                input,
                "-o",
                "out.img",
                "--kind",
                "shared",
                "--snapshots",
                "0-3",
            ],
        );
        add(
            cases,
            "cowrepair",
            &[
                "-i",
                input,
                "-n",
                "--kind",
                "shared",
                "--snapmask",
                "0x5",
                "--format",
                "json",
            ],
        );
        add(
            cases,
            "cowrepair",
            &[
                "-i",
                input,
                "-o",
                "out.img",
                "--full-scan",
                "--format",
                "table",
            ],
        );
        add(
            cases,
            "cowrepair",
            &[
                "-i",
                input,
                "-n",
                "--kind",
                "shared",
                "--journal-chunks",
                "8",
            ],
        );
    }
    for bad in [
        "--snapshots=3-1",
        "--snapshots=1,1",
        "--snapshots=64",
        "--snapmask=0",
        "--snapmask=zz",
    ] {
        add(cases, "cowrepair", &["-i", "gen-s.cow", "-n", bad]);
    }
    for input in ["junk.img", "clone-meta.img", "zero.img"] {
        add(
            cases,
            "cowrepair",
            &[
                "-i",
                input,
                "-o",
                "out.img",
                "--kind",
                "persistent",
                "--force",
            ],
        );
        add(
            cases,
            "cowrepair",
            &["-i", input, "-o", "out.img", "--kind", "shared", "--force"],
        );
        add(
            cases,
            "cowrepair",
            &[
                "-i",
                input,
                "-o",
                "out.img",
                "--kind",
                "persistent",
                "--chunk-size",
                "4k",
                "--force",
            ],
        );
    }
    for input in ["gen-p.cow", "dmg-rec.cow"] {
        add(cases, "cowrepair", &["-i", input, "-o", "existing.txt"]);
        add(
            cases,
            "cowrepair",
            &["-i", input, "-o", "existing.txt", "--force"],
        );
        add(cases, "cowrepair", &["-i", input, "-o", input]);
        add(cases, "cowrepair", &["-i", input, "-o", "adir"]);
        add(cases, "cowrepair", &["-i", input, "--in-place"]);
        add(
            cases,
            "cowrepair",
            &["-i", input, "--in-place", "--backup", "existing.txt"],
        );
        add(
            cases,
            "cowrepair",
            &["-i", input, "--in-place", "--backup", input],
        );
        add(
            cases,
            "cowrepair",
            &["-i", input, "-o", "out.img", "--in-place"],
        );
        add(cases, "cowrepair", &["-i", input]);
    }
}

fn cowmigrate(cases: &mut Vec<Case>) {
    for input in every_input() {
        add(
            cases,
            "cowmigrate",
            &["-i", input, "-o", "out.img", "--chunk-size", "2k"],
        );
        add(
            cases,
            "cowmigrate",
            &["-i", input, "-o", "out.img", "--to", "shared"],
        );
    }
    for (input, origin) in [
        ("golden-a.cow", "golden-a.origin"),
        ("golden-b2.cow", "golden-b2.origin"),
        ("golden-c2.cow", "golden-c2.origin"),
        ("gen-p.cow", "gen-p.origin"),
        ("gen-l.cow", "gen-l.origin"),
    ] {
        for format in ["text", "json"] {
            add(
                cases,
                "cowmigrate",
                &[
                    "-i",
                    input,
                    "-o",
                    "out.img",
                    "--chunk-size",
                    "16k",
                    "--origin",
                    origin,
                    "--format",
                    format,
                ],
            );
            add(
                cases,
                "cowmigrate",
                &[
                    "-i",
                    input,
                    "-o",
                    "out.img",
                    "--chunk-size",
                    "1k",
                    "--format",
                    format,
                ],
            );
            add(
                cases,
                "cowmigrate",
                &[
                    "-i", input, "-o", "out.img", "--to", "legacy", "--origin", origin, "--format",
                    format,
                ],
            );
            add(
                cases,
                "cowmigrate",
                &[
                    "-i",
                    input,
                    "-o",
                    "out.img",
                    "--to",
                    "persistent",
                    "--format",
                    format,
                ],
            );
            add(
                cases,
                "cowmigrate",
                &[
                    "-i",
                    input,
                    "-o",
                    "out.img",
                    "--to",
                    "shared",
                    "--journal-size",
                    "64k",
                    "--format",
                    format,
                ],
            );
        }
        add(
            cases,
            "cowmigrate",
            &["-i", input, "-o", "out.img", "--chunk-size", "16k"],
        );
        add(
            cases,
            "cowmigrate",
            &[
                "-i", input, "-o", "snap.raw", "--to", "raw", "--origin", origin,
            ],
        );
        add(
            cases,
            "cowmigrate",
            &["-i", input, "-o", "-", "--to", "raw", "--origin", origin],
        );
        add(
            cases,
            "cowmigrate",
            &["-i", input, "--merge", "--origin", origin],
        );
        add(
            cases,
            "cowmigrate",
            &[
                "-i", input, "--merge", "--origin", origin, "--format", "json",
            ],
        );
        add(
            cases,
            "cowmigrate",
            &[
                "-q",
                "-i",
                input,
                "-o",
                "out.img",
                "--chunk-size",
                "2k",
                "--size",
                "16M",
            ],
        );
        add(
            cases,
            "cowmigrate",
            &[
                "-i",
                input,
                "-o",
                "out.img",
                "--chunk-size",
                "2k",
                "--size",
                "8k",
            ],
        );
    }
    for (input, origin) in [
        ("gen-s.cow", "gen-s.origin"),
        ("gen-s2.cow", "gen-s2.origin"),
        ("mk-s.cow", "gen-s.origin"),
    ] {
        for format in ["text", "json"] {
            add(
                cases,
                "cowmigrate",
                &[
                    "-i",
                    input,
                    "-o",
                    "out.img",
                    "--to",
                    "persistent",
                    "--snapshot",
                    "1",
                    "--origin",
                    origin,
                    "--format",
                    format,
                ],
            );
            add(
                cases,
                "cowmigrate",
                &[
                    "-i",
                    input,
                    "-o",
                    "out.img",
                    "--to",
                    "legacy",
                    "--snapshot",
                    "2",
                    "--origin",
                    origin,
                    "--format",
                    format,
                ],
            );
            add(
                cases,
                "cowmigrate",
                &[
                    "-i", input, "-o", "out.img", "--to", "shared", "--format", format,
                ],
            );
            add(
                cases,
                "cowmigrate",
                &[
                    "-i",
                    input,
                    "-o",
                    "out.img",
                    "--chunk-size",
                    "16k",
                    "--origin",
                    origin,
                    "--format",
                    format,
                ],
            );
            add(
                cases,
                "cowmigrate",
                &[
                    "-i",
                    input,
                    "--merge",
                    "--snapshot",
                    "1",
                    "--origin",
                    origin,
                    "--format",
                    format,
                ],
            );
        }
        add(
            cases,
            "cowmigrate",
            &[
                "-i",
                input,
                "-o",
                "snap.raw",
                "--to",
                "raw",
                "--snapshot",
                "0",
                "--origin",
                origin,
            ],
        );
        add(
            cases,
            "cowmigrate",
            &[
                "-i",
                input,
                "-o",
                "-",
                "--to",
                "raw",
                "--snapshot",
                "3",
                "--origin",
                origin,
            ],
        );
        add(
            cases,
            "cowmigrate",
            &[
                "-i",
                input,
                "-o",
                "out.img",
                "--to",
                "persistent",
                "--origin",
                origin,
            ],
        );
        add(
            cases,
            "cowmigrate",
            &[
                "-i",
                input,
                "-o",
                "out.img",
                "--to",
                "persistent",
                "--snapshot",
                "40",
            ],
        );
        add(
            cases,
            "cowmigrate",
            &["-i", input, "--merge", "--origin", origin],
        );
    }
    for (inputs, extra) in [
        (&["golden-a.cow", "golden-b2.cow"][..], &[][..]),
        (
            &["golden-a.cow", "golden-b2.cow", "golden-c2.cow"],
            &["--ids", "5,6,9"],
        ),
        (&["gen-p.cow", "gen-r.cow"], &[]),
        (&["gen-p.cow", "gen-l.cow"], &["--ids", "1,2"]),
        (&["gen-p.cow", "gen-p.cow"], &["--ids", "3,3"]),
        (&["gen-p.cow", "dmg-rec.cow"], &[]),
        (&["gen-p.cow", "gen-s.cow"], &[]),
        (&["gen-p.cow", "junk.img"], &[]),
    ] {
        for format in ["text", "json"] {
            let mut args = vec!["-i"];
            args.extend_from_slice(inputs);
            args.extend_from_slice(&["-o", "out.img", "--to", "shared", "--format", format]);
            args.extend_from_slice(extra);
            add(cases, "cowmigrate", &args);
        }
    }
    add(
        cases,
        "cowmigrate",
        &[
            "-i",
            "gen-p.cow",
            "-o",
            "out.img",
            "--to",
            "shared",
            "--ids",
            "64",
        ],
    );
    add(
        cases,
        "cowmigrate",
        &[
            "-i",
            "gen-p.cow",
            "-o",
            "out.img",
            "--to",
            "shared",
            "--ids",
            "1,2",
        ],
    );
    add(
        cases,
        "cowmigrate",
        &["-i", "gen-p.cow", "-o", "existing.txt", "--to", "shared"],
    );
    add(
        cases,
        "cowmigrate",
        &[
            "-i",
            "gen-p.cow",
            "-o",
            "existing.txt",
            "--to",
            "shared",
            "--force",
        ],
    );
    add(
        cases,
        "cowmigrate",
        &[
            "-i",
            "gen-p.cow",
            "-o",
            "gen-p.cow",
            "--chunk-size",
            "2k",
            "--force",
        ],
    );
    add(cases, "cowmigrate", &["-i", "gen-p.cow", "-o", "out.img"]);
    add(
        cases,
        "cowmigrate",
        &["-i", "gen-p.cow", "--chunk-size", "2k"],
    );
    add(
        cases,
        "cowmigrate",
        &["-i", "gen-p.cow", "-o", "out.img", "--chunk-size", "3k"],
    );
    add(
        cases,
        "cowmigrate",
        &["-i", "gen-p.cow", "-o", "out.img", "--to", "raw"],
    );
    add(
        cases,
        "cowmigrate",
        &[
            "-i",
            "gen-p.cow",
            "-o",
            "out.img",
            "--kind",
            "shared",
            "--to",
            "persistent",
        ],
    );
    add(cases, "cowmigrate", &["-i", "gen-p.cow", "--merge"]);
    add(
        cases,
        "cowmigrate",
        &["-i", "gen-s.cow", "--merge", "--origin", "gen-s.origin"],
    );
    add(
        cases,
        "cowmigrate",
        &[
            "-i",
            "gen-s.cow",
            "--merge",
            "--snapshot",
            "9",
            "--origin",
            "gen-s.origin",
        ],
    );
    add(
        cases,
        "cowmigrate",
        &["-i", "gen-p.cow", "--merge", "--origin", "golden-a.origin"],
    );
}

fn mkcow(cases: &mut Vec<Case>) {
    for args in [
        &["--size", "1M", "new.img"][..],
        &["--size", "64M", "--chunk-size", "64k", "new.img"],
        &[
            "--size",
            "1M",
            "--chunk-size",
            "8s",
            "--kind",
            "legacy",
            "new.img",
        ],
        &[
            "--size",
            "16M",
            "--kind",
            "shared",
            "--journal-size",
            "1M",
            "--snapshots",
            "4",
            "new.img",
        ],
        &["--size", "16M", "--kind", "shared", "new.img"],
        &[
            "--size",
            "4M",
            "--kind",
            "shared",
            "--journal-size",
            "0",
            "new.img",
        ],
        &[
            "--size",
            "4M",
            "--kind",
            "shared",
            "--snapshots",
            "65",
            "new.img",
        ],
        &[
            "--size",
            "4M",
            "--kind",
            "shared",
            "--journal-size",
            "8M",
            "new.img",
        ],
        &["--size", "1M", "--origin", "gen-p.origin", "new.img"],
        &["--size", "1M", "--origin", "missing.img", "new.img"],
        &["-q", "--size", "1M", "new.img"],
        &[
            "-q",
            "--size",
            "8M",
            "--kind",
            "shared",
            "--origin",
            "gen-s.origin",
            "new.img",
        ],
        &["--size", "4k", "new.img"],
        &["--size", "1M", "--chunk-size", "3k", "new.img"],
        &["--size", "1M", "--chunk-size", "256", "new.img"],
        &["--size", "0", "new.img"],
        &["new.img"],
        &["zero.img"],
        &["--chunk-size", "16k", "zero.img"],
        &["--kind", "shared", "zero.img"],
        &["--size", "2M", "zero.img"],
        &["junk.img"],
        &["--force", "junk.img"],
        &["existing.txt"],
        &["gen-p.cow"],
        &["--force", "gen-p.cow"],
        &["--force", "--kind", "shared", "gen-p.cow"],
        &["gen-s.cow"],
        &["clone-meta.img"],
        &["--force", "clone-meta.img"],
        &["adir"],
        &["empty.img"],
        &["--size", "1M", "empty.img"],
        &["--size", "1M", "nodir/new.img"],
    ] {
        add(cases, "mkcow", args);
    }
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
        add(cases, "mkcow", &["--force", "--from-dump", dump, target]);
        add(cases, "mkcow", &["-i", dump, target]);
    }
    add(
        cases,
        "mkcow",
        &["-q", "--force", "-i", "gen-p.json", "gen-p.cow"],
    );
    add(
        cases,
        "mkcow",
        &[
            "--force",
            "--input",
            "gen-s.json",
            "--size",
            "64M",
            "new.img",
        ],
    );
    add(
        cases,
        "mkcow",
        &[
            "--force",
            "-i",
            "gen-p.yaml",
            "--chunk-size",
            "8k",
            "gen-p.cow",
        ],
    );
    add(
        cases,
        "mkcow",
        &[
            "--force",
            "-i",
            "gen-p.yaml",
            "--kind",
            "shared",
            "gen-p.cow",
        ],
    );
    add(
        cases,
        "mkcow",
        &[
            "--force",
            "-i",
            "gen-p.yaml",
            "--kind",
            "legacy",
            "gen-p.cow",
        ],
    );
    let mut piped = Case::new("mkcow", &["--force", "-i", "-", "gen-p.cow"]);
    piped.stdin = Some("gen-p.yaml");
    cases.push(piped);
    let mut piped = Case::new("mkcow", &["--force", "-i", "-", "gen-s.cow"]);
    piped.stdin = Some("gen-s.json");
    cases.push(piped);
}

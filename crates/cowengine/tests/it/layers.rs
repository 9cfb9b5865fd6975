//! The layer rules of docs/architecture.md, read from `cargo metadata`: the
//! formats library `cowfmt` never depends on the engine (not even for its
//! tests), the offline tools in `cowtools` never link it (their tests may
//! build fixtures with it), and nothing below the runtime (`cowfmt`,
//! `cowengine`, `cowtools`) depends on the runtime `cowrt` in any way.
//! Dependencies are followed through every workspace crate, so a path through
//! a new crate counts too.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::{json, Value};

const ENGINE: &str = "cowengine";
const RUNTIME: &str = "cowrt";

/// Which dependency kinds a layer rule follows.
#[derive(Clone, Copy)]
enum Kinds {
    /// Normal and build dependencies: what the crate's binaries link.
    Linked,
    /// Every kind, dev-dependencies included.
    All,
}

/// Each rule: a crate, the crate it must not reach, and how strictly.
const RULES: [(&str, &str, Kinds); 5] = [
    ("cowfmt", ENGINE, Kinds::All),
    ("cowtools", ENGINE, Kinds::Linked),
    ("cowfmt", RUNTIME, Kinds::All),
    ("cowengine", RUNTIME, Kinds::All),
    ("cowtools", RUNTIME, Kinds::All),
];

/// `cargo metadata` of this workspace, without the registry's packages.
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Each workspace package's dependencies: (name, kind) with kind `None` for a
/// normal dependency, `Some("dev")` or `Some("build")`.
fn dependencies(metadata: &Value) -> BTreeMap<String, Vec<(String, Option<String>)>> {
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let deps = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["name"].as_str().unwrap().to_string(),
                        d["kind"].as_str().map(str::to_string),
                    )
                })
                .collect();
            (package["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

/// The path from `from` to `target`, if one exists: the crate's own
/// dependencies of `kinds`, then the linked dependencies of each workspace crate
/// reached (a dependency's dev-dependencies are never built for its users).
fn path_to(
    deps: &BTreeMap<String, Vec<(String, Option<String>)>>,
    from: &str,
    target: &str,
    kinds: Kinds,
) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut queue = vec![(from.to_string(), vec![from.to_string()], kinds)];
    while let Some((name, path, kinds)) = queue.pop() {
        for (dep, kind) in deps.get(&name).into_iter().flatten() {
            let followed = match kinds {
                Kinds::All => true,
                Kinds::Linked => kind.as_deref() != Some("dev"),
            };
            if !followed {
                continue;
            }
            let mut next = path.clone();
            next.push(dep.clone());
            if dep == target {
                return Some(next);
            }
            if deps.contains_key(dep) && seen.insert(dep.clone()) {
                queue.push((dep.clone(), next, Kinds::Linked));
            }
        }
    }
    None
}

/// Every broken rule, one sentence each.
fn violations(metadata: &Value) -> Vec<String> {
    let deps = dependencies(metadata);
    RULES
        .iter()
        .filter_map(|&(crate_name, target, kinds)| {
            path_to(&deps, crate_name, target, kinds).map(|path| {
                let (what, rule) = if target == ENGINE {
                    (
                        "the engine",
                        "the formats library and the offline tools never depend on",
                    )
                } else {
                    ("the runtime", "nothing below the runtime depends on")
                };
                format!(
                    "{crate_name} depends on {what} ({}); docs/architecture.md: {rule} {target}",
                    path.join(" -> ")
                )
            })
        })
        .collect()
}

fn package(name: &str, deps: &[(&str, Option<&str>)]) -> Value {
    json!({
        "name": name,
        "dependencies": deps
            .iter()
            .map(|(d, kind)| json!({"name": d, "kind": kind}))
            .collect::<Vec<_>>(),
    })
}

#[test]
fn no_layer_depends_on_one_above_it() {
    let metadata = metadata();
    let names: Vec<&str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ["cowfmt", "cowtools", ENGINE, RUNTIME] {
        assert!(names.contains(&name), "{name} is not in {names:?}");
    }
    assert_eq!(violations(&metadata), Vec::<String>::new());
}

#[test]
fn the_engine_stands_on_the_formats_library() {
    let deps = dependencies(&metadata());
    assert!(deps[ENGINE].contains(&("cowfmt".to_string(), None)));
}

#[test]
fn the_runtime_stands_on_the_engine_and_the_formats_library() {
    let deps = dependencies(&metadata());
    for below in [ENGINE, "cowfmt"] {
        assert!(
            deps[RUNTIME].contains(&(below.to_string(), None)),
            "{below}"
        );
    }
}

#[test]
fn any_dependency_on_the_runtime_from_below_is_reported() {
    let found = violations(&json!({"packages": [
        package("cowfmt", &[]),
        package("cowtools", &[("cowfmt", None), (RUNTIME, Some("dev"))]),
        package(ENGINE, &[("cowfmt", None), ("cowglue", None)]),
        package("cowglue", &[(RUNTIME, Some("build"))]),
        package(RUNTIME, &[(ENGINE, None), ("cowfmt", None)]),
    ]}));
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        found[0],
        "cowengine depends on the runtime (cowengine -> cowglue -> cowrt); docs/architecture.md: \
         nothing below the runtime depends on cowrt"
    );
    assert!(found[1].starts_with("cowtools depends on the runtime (cowtools -> cowrt)"));
}

#[test]
fn a_direct_or_indirect_dependency_is_reported_with_its_path() {
    let direct = json!({"packages": [
        package("cowfmt", &[("cowengine", None)]),
        package("cowtools", &[("cowfmt", None)]),
        package(ENGINE, &[("cowfmt", None)]),
    ]});
    let found = violations(&direct);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("cowfmt depends on the engine (cowfmt -> cowengine)"));
    assert!(found[1].contains("(cowtools -> cowfmt -> cowengine)"));

    let through_a_new_crate = json!({"packages": [
        package("cowfmt", &[]),
        package("cowtools", &[("cowglue", None)]),
        package("cowglue", &[("cowengine", Some("build"))]),
        package(ENGINE, &[("cowfmt", None)]),
    ]});
    let found = violations(&through_a_new_crate);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("(cowtools -> cowglue -> cowengine)"));
}

#[test]
fn dev_dependencies_count_for_the_formats_library_only() {
    let dev_only = json!({"packages": [
        package("cowfmt", &[("cowengine", Some("dev"))]),
        package("cowtools", &[("cowfmt", None), ("cowengine", Some("dev"))]),
        package("cowglue", &[("cowengine", Some("dev"))]),
        package(ENGINE, &[("cowfmt", None)]),
    ]});
    let found = violations(&dev_only);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("cowfmt depends on the engine"));

    let through_a_dev_dependency_of_a_dependency = json!({"packages": [
        package("cowfmt", &[]),
        package("cowtools", &[("cowglue", None)]),
        package("cowglue", &[("cowengine", Some("dev"))]),
        package(ENGINE, &[("cowfmt", None)]),
    ]});
    assert!(violations(&through_a_dev_dependency_of_a_dependency).is_empty());
}

use super::*;

/// Table lines as the 6.12 kernel printed them (testdata/golden/*/actions.log).
const KERNEL_LINES: [&str; 5] = [
    "0 32768 snapshot-origin 254:0",
    "0 32768 snapshot 254:0 254:16 P 8",
    "0 2048 snapshot /dev/vdi /dev/vdj PO 8",
    "0 32768 clone /dev/vdo /dev/vdp /dev/vdq 64 1 no_hydration",
    "0 32768 clone 254:224 254:240 254:256 64 1 no_hydration",
];

#[test]
fn kernel_lines_parse_and_print_back_unchanged() {
    for line in KERNEL_LINES {
        let table: Table = line.parse().unwrap();
        assert_eq!(table.to_string(), line);
    }
    let snapshot: Table = KERNEL_LINES[1].parse().unwrap();
    assert_eq!(
        snapshot,
        Table::Snapshot {
            sectors: 32768,
            snapshot: SnapshotArgs {
                origin: "254:0".into(),
                cow: "254:16".into(),
                persistence: Persistence::Persistent,
                chunk_sectors: 8,
            },
        }
    );
    assert_eq!(snapshot.devices(), ["254:0", "254:16"]);
}

#[test]
fn every_target_prints_its_line() {
    let merge = Table::SnapshotMerge {
        sectors: 2048,
        snapshot: SnapshotArgs {
            origin: "/dev/vda".into(),
            cow: "/dev/vdb".into(),
            persistence: Persistence::Persistent,
            chunk_sectors: 16,
        },
    };
    assert_eq!(
        merge.to_string(),
        "0 2048 snapshot-merge /dev/vda /dev/vdb P 16"
    );
    let transient = Table::Snapshot {
        sectors: 8,
        snapshot: SnapshotArgs {
            origin: "/dev/loop0".into(),
            cow: "/dev/loop1".into(),
            persistence: Persistence::Transient,
            chunk_sectors: 8,
        },
    };
    assert_eq!(
        transient.to_string(),
        "0 8 snapshot /dev/loop0 /dev/loop1 N 8"
    );
    let linear = Table::Linear {
        sectors: 100,
        device: "/dev/vda".into(),
        offset: 0,
    };
    assert_eq!(linear.to_string(), "0 100 linear /dev/vda 0");
    let clone = Table::Clone {
        sectors: 32768,
        metadata: "m".into(),
        dest: "d".into(),
        source: "s".into(),
        region_sectors: 64,
        features: vec![],
        core_args: vec!["hydration_threshold".into(), "4".into()],
    };
    assert_eq!(
        clone.to_string(),
        "0 32768 clone m d s 64 2 hydration_threshold 4"
    );
    let parsed: Table = "0 32768 clone m d s 64 1 no_hydration 2 hydration_threshold 4"
        .parse()
        .unwrap();
    assert_eq!(
        parsed.to_string(),
        "0 32768 clone m d s 64 1 no_hydration 2 hydration_threshold 4"
    );
}

#[test]
fn bad_lines_name_the_problem() {
    let error = |line: &str| line.parse::<Table>().unwrap_err().to_string();
    assert_eq!(
        error("0 2048 snapshot /dev/a /dev/b X 8"),
        "table line '0 2048 snapshot /dev/a /dev/b X 8': persistence 'X' is not P, PO or N"
    );
    assert_eq!(
        error("0 2048 snapshot /dev/a /dev/b P"),
        "table line '0 2048 snapshot /dev/a /dev/b P': the chunk size is missing"
    );
    assert_eq!(
        error("0 2048 thin-pool a b 128 0"),
        "table line '0 2048 thin-pool a b 128 0': target 'thin-pool' is not one cowrt loads"
    );
    assert!(error("8 2048 linear /dev/a 0").ends_with("the target does not start at sector 0"));
    assert!(error("0 x linear /dev/a 0").ends_with("the length 'x' is not a number"));
    assert!(error("0 8 linear /dev/a 0 9").ends_with("unexpected '9' at the end"));
    assert!(error("0 8 clone m d s 64 2 no_hydration").ends_with("feature is missing"));
}

#[test]
fn json_names_the_target_and_its_arguments() {
    let table: Table = "0 2048 snapshot /dev/vdi /dev/vdj PO 8".parse().unwrap();
    assert_eq!(
        serde_json::to_value(&table).unwrap(),
        serde_json::json!({"target": "snapshot", "sectors": 2048, "origin": "/dev/vdi",
            "cow": "/dev/vdj", "persistence": "persistent_overflow", "chunk_sectors": 8})
    );
}

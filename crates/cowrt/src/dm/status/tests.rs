use super::*;

/// Status lines as the 6.12 kernel printed them (testdata/golden/*/actions.log
/// and runtime.md 1).
#[test]
fn snapshot_lines_the_kernel_printed() {
    let cases = [
        ("0 32768 snapshot 16/16384 16", Some((16, 16384, 16))),
        ("0 4096 snapshot 2072/4096 24", Some((2072, 4096, 24))),
        (
            "0 131072 snapshot 49360/131072 208",
            Some((49360, 131072, 208)),
        ),
        ("0 2048 snapshot Invalid", None),
    ];
    for (line, usage) in cases {
        let parsed: StatusLine = line.parse().unwrap();
        let TargetStatus::Snapshot { state } = parsed.status else {
            panic!("{line}: {parsed:?}");
        };
        match usage {
            Some((allocated_sectors, total_sectors, metadata_sectors)) => assert_eq!(
                state,
                SnapshotState::Active {
                    allocated_sectors,
                    total_sectors,
                    metadata_sectors
                }
            ),
            None => assert_eq!(state, SnapshotState::Invalid),
        }
    }
    let overflow: StatusLine = "0 2048 snapshot Overflow".parse().unwrap();
    assert_eq!(
        overflow.status,
        TargetStatus::Snapshot {
            state: SnapshotState::Overflow
        }
    );
    let origin: StatusLine = "0 32768 snapshot-origin ".parse().unwrap();
    assert_eq!(
        (origin.sectors, origin.status),
        (32768, TargetStatus::SnapshotOrigin)
    );
}

#[test]
fn merge_lines_and_when_a_merge_is_done() {
    let merging: StatusLine = "0 2048 snapshot-merge 504/512 16".parse().unwrap();
    let TargetStatus::SnapshotMerge { state } = merging.status else {
        panic!("{merging:?}");
    };
    assert!(!state.merge_done());
    let done: StatusLine = "0 2048 snapshot-merge 16/512 16".parse().unwrap();
    let TargetStatus::SnapshotMerge { state } = done.status else {
        panic!("{done:?}");
    };
    assert!(state.merge_done());
    let failed: StatusLine = "0 2048 snapshot-merge Merge failed".parse().unwrap();
    assert_eq!(
        failed.status,
        TargetStatus::SnapshotMerge {
            state: SnapshotState::MergeFailed
        }
    );
}

#[test]
fn clone_lines_the_kernel_printed() {
    let line = "0 32768 clone 8 6/1024 64 12/512 0 1 no_hydration 4 hydration_threshold 1 \
                hydration_batch_size 1 rw";
    let parsed: StatusLine = line.parse().unwrap();
    let TargetStatus::Clone {
        state: CloneState::Active(usage),
    } = parsed.status
    else {
        panic!("{parsed:?}");
    };
    assert_eq!(
        (
            usage.metadata_block_sectors,
            usage.metadata_used,
            usage.metadata_total
        ),
        (8, 6, 1024)
    );
    assert_eq!(
        (
            usage.region_sectors,
            usage.hydrated_regions,
            usage.total_regions
        ),
        (64, 12, 512)
    );
    assert_eq!(usage.hydrating_regions, 0);
    assert_eq!(usage.features, ["no_hydration"]);
    assert_eq!(
        usage.core_args,
        ["hydration_threshold", "1", "hydration_batch_size", "1"]
    );
    assert_eq!(usage.mode, "rw");
    assert!(!usage.hydration_enabled());
    assert_eq!(usage.core_arg("hydration_threshold"), Some(1));
    assert_eq!(usage.core_arg("hydration_batch_size"), Some(1));
    assert_eq!(usage.core_arg("other"), None);
    assert!(!usage.is_complete());
    let fail: StatusLine = "0 32768 clone Fail".parse().unwrap();
    assert_eq!(
        fail.status,
        TargetStatus::Clone {
            state: CloneState::Fail
        }
    );
}

#[test]
fn bad_lines_name_the_problem_and_json_names_the_fields() {
    let error = |line: &str| line.parse::<StatusLine>().unwrap_err().to_string();
    assert!(error("0 2048 snapshot 12 16").ends_with("usage '12' is not <allocated>/<total>"));
    assert!(error("0 2048 snapshot").contains("expected '<allocated>/<total> <metadata>'"));
    assert!(
        error("0 2048 snapshot x/512 16").ends_with("the allocated sectors 'x' is not a number")
    );
    assert!(error("0 2048 clone 8 6/1024 64 12/512 0 1").ends_with("feature is missing"));
    assert!(error("0 2048 era 1 2").ends_with("target 'era' is not one cowrt loads"));

    let json = serde_json::to_value(
        "0 4096 snapshot 2072/4096 24"
            .parse::<StatusLine>()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        json,
        serde_json::json!({"sectors": 4096, "status": {"target": "snapshot", "state": {
            "state": "active", "allocated_sectors": 2072, "total_sectors": 4096,
            "metadata_sectors": 24}}})
    );
}

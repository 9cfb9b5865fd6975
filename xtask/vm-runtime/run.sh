#!/usr/bin/env bash
# The live runtime in a real kernel (Linux 6.12 under qemu, TCG):
#
#   scenario  one boot: the same filesystem workload on classic snapshots
#             through `cowrt dm activate` (the kernel's dm-snapshot, the
#             reference) and on one shared store served by `cowrt serve`
#             through ublk: mkfs.ext4, three snapshots between writes (one
#             taken with the filesystem mounted, frozen), a snapshot of a
#             snapshot, writes to a snapshot, delete of the middle snapshot,
#             e2fsck -fn and sha256 of every snapshot against what the guest
#             recorded when it was taken, kill -9 of the daemon mid-write and
#             `cowrt serve --recover`, then every check again.
#   host      cowcheck the shared store (and the kernel's classic stores);
#             export every snapshot with `cowmigrate --to persistent`, check
#             it and hash its view (`--to raw`) against the guest's record.
#   report    print every `VM: PASS|FAIL` line; exit 1 unless all passed.
#   bench     one boot: the n-way benchmark (xtask/vm-runtime/guest/bench.sh),
#             n = 1, 2, 4, 8, 16 snapshots, shared store vs classic
#             dm-snapshots; the guest's raw figures go to logs-rt/bench/.
#
# Usage: ./run.sh [all|prepare|scenario|host|report|bench]   (default: all)
#
# Normally run through `cargo xtask vm-runtime` / `cargo xtask bench-nway`,
# which build cowrt (release, ublk) and the tools first. Needs root for
# apt-get download on the first run (packages shared with vm-test's cache).
#
# Environment:
#   VM_DIR      downloads, builds, images, logs (default: target/vm)
#   TOOLS_SRC   folder with the release mkcow, cowcheck, cowmigrate, cowdump
#   COWRT_BIN   the cowrt binary to test (release, built with --features ublk)
#   DM_CLONE_KO dm-clone.ko to load in the guest (default: the one
#               xtask/vm/build-dm-clone.sh leaves in VM_DIR/dm-clone/KVER/, if any)
#   VM_WAIT_CMD, VM_TIMEOUT as for xtask/vm/run.sh
#
# Layout under VM_DIR: cache/debs (shared with vm-test), build/ (extracted
# packages; initramfs-runtime.cpio.gz), bin-rt/ (binaries under test),
# work-rt/ (disk images, sparse), logs-rt/ (serial logs, results, host.log).
#
# Exit status: 0 when every check passed, 1 when one failed, 2 on a setup
# problem.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../vm/common.sh
. "$HERE/../vm/common.sh"
vm_layout
BIN=$TOP/bin-rt
WORK=$TOP/work-rt
LOGS=$TOP/logs-rt
TOOLS_SRC=${TOOLS_SRC:-$WORKSPACE/target/release}
COWRT_BIN=${COWRT_BIN:-$WORKSPACE/target/release/cowrt}
DM_CLONE_KO=${DM_CLONE_KO:-}
VM_TIMEOUT=${VM_TIMEOUT:-900}
TOOLS=(mkcow cowcheck cowmigrate cowdump)

SAY_TAG=vm-runtime
GUEST_DIR=$WORKSPACE/xtask/vm/guest
VM_BASE=$BUILD/initramfs-runtime.cpio.gz
VM_SMP=2
VM_MEM=1536
VM_CPU=max
VM_OUT_MIB=16

# Scenario disks (sparse images): origins 64 MiB, shared store 128 MiB,
# classic COWs 72 MiB each.
ORIGIN_MIB=64
STORE_MIB=128
COW_MIB=72

# ---------------------------------------------------------------- setup -----

setup_bins() {
    copy_tools "$BIN" "$TOOLS_SRC" "${TOOLS[@]}"
    [[ -x $COWRT_BIN ]] || die "no cowrt at $COWRT_BIN (cargo xtask runtime)"
    cp -p "$COWRT_BIN" "$BIN/cowrt"
    say "binaries under test copied ($COWRT_BIN, $TOOLS_SRC)"
}

# The initramfs: modules for virtio disks, ext4, loop, device-mapper
# snapshots and ublk; dmsetup, e2fsprogs and util-linux's losetup (from the
# host: Debian 12, the guest's userland), cowrt and mkcow.
build_initramfs() {
    qemu_env
    local ir=$BUILD/initramfs-runtime-root p
    ir_base "$ir"
    ir_modules "$ir" drivers/block/virtio_blk crypto/crc32c_generic lib/crc16 fs/mbcache \
        fs/jbd2/jbd2 fs/ext4/ext4 drivers/block/loop drivers/md/dm-mod drivers/md/dm-bufio \
        drivers/md/dm-snapshot drivers/block/ublk_drv
    DM_CLONE_KO=${DM_CLONE_KO:-$TOP/dm-clone/$KVER/dm-clone.ko}
    if [[ -f $DM_CLONE_KO ]]; then
        ir_modules "$ir" lib/libcrc32c drivers/md/persistent-data/dm-persistent-data
        ir_module_file "$ir" "$DM_CLONE_KO"
        install -m 644 "$WORKSPACE/xtask/vm/guest-clone.sh" "$ir/guest-clone.sh"
        say "dm-clone: $DM_CLONE_KO"
    else
        say "dm-clone: no module ($DM_CLONE_KO): the clone checks are left out"
    fi
    ir_binary "$ir" "$ROOT/sbin/dmsetup" sbin/dmsetup
    for p in /usr/sbin/mke2fs /usr/sbin/e2fsck /usr/sbin/losetup; do
        [[ -x $p ]] || die "$p is missing on the host (apt-get install e2fsprogs util-linux)"
    done
    ir_binary "$ir" /usr/sbin/mke2fs usr/sbin/mke2fs
    ir_binary "$ir" /usr/sbin/e2fsck usr/sbin/e2fsck
    ir_binary "$ir" /usr/sbin/losetup bin/losetup
    cp /etc/mke2fs.conf "$ir/etc/mke2fs.conf"
    ir_binary "$ir" "$BIN/cowrt" bin/cowrt
    ir_binary "$ir" "$BIN/mkcow" bin/mkcow
    install -m 644 "$HERE/guest/rt.sh" "$ir/rt.sh"
    ir_pack "$ir" "$VM_BASE"
    say "initramfs: $(du -h "$VM_BASE" | cut -f1) (kernel $KVER)"
}

prepare() {
    setup_bins
    fetch
    extract
    build_initramfs
}

# ------------------------------------------------------------ scenario ------

scenario() {
    qemu_env
    rm -rf "$WORK"
    mkdir -p "$WORK" "$LOGS"
    local d
    for d in origin corigin; do truncate -s "${ORIGIN_MIB}M" "$WORK/$d.img"; done
    truncate -s "${STORE_MIB}M" "$WORK/store.img"
    "$BIN/mkcow" --kind shared --chunk-size 4k -q "$WORK/store.img"
    for d in c1 c2 c3 csub; do truncate -s "${COW_MIB}M" "$WORK/$d.img"; done
    # dm-clone's disks (xtask/vm/guest-clone.sh; unused without the module).
    truncate -s 4M "$WORK/cmeta.img"
    truncate -s 16M "$WORK/cdest.img" "$WORK/csource.img"
    # scenario.sh's dm_more: merge, transient, legacy, overflow.
    for d in morigin mcow tcow lcow ocow; do truncate -s 32M "$WORK/$d.img"; done
    "$BIN/mkcow" --kind legacy --chunk-size 4k -q "$WORK/lcow.img"
    run_vm scenario "$HERE/guest/scenario.sh" \
        origin="$WORK/origin.img" store="$WORK/store.img" corigin="$WORK/corigin.img" \
        c1="$WORK/c1.img" c2="$WORK/c2.img" c3="$WORK/c3.img" csub="$WORK/csub.img" \
        cmeta="$WORK/cmeta.img" cdest="$WORK/cdest.img" csource="$WORK/csource.img" \
        morigin="$WORK/morigin.img" mcow="$WORK/mcow.img" tcow="$WORK/tcow.img" \
        lcow="$WORK/lcow.img" ocow="$WORK/ocow.img"
}

# ---------------------------------------------------------------- host ------

HOSTLOG=$LOGS/host.log
HOSTRES=$LOGS/host-results.txt

hpass() { echo "VM: PASS host: $*" >> "$HOSTRES"; }
hfail() { echo "VM: FAIL host: $*" >> "$HOSTRES"; }

# hcheck WHAT CMD...: run a tool, log it, PASS when it exits 0.
hcheck() {
    local what=$1 rc=0
    shift
    { echo "=== $what"; echo "\$ $*"; } >> "$HOSTLOG"
    "$@" >> "$HOSTLOG" 2>&1 || rc=$?
    echo "--- exit $rc" >> "$HOSTLOG"
    if ((rc == 0)); then hpass "$what"; else hfail "$what (exit $rc, see $HOSTLOG)"; fi
}

# raw_hash KIND STORE ORIGIN [ID]: sha256 of a snapshot's view.
raw_hash() {
    local kind=$1 store=$2 origin=$3 id=${4:-}
    "$BIN/cowmigrate" -i "$store" --to raw ${id:+--snapshot "$id"} --origin "$origin" -o - \
        2>>"$HOSTLOG" | sha256sum | cut -d' ' -f1
}

host() {
    local res=$LOGS/scenario/results.txt W=$WORK key id want got exp
    : > "$HOSTLOG"
    : > "$HOSTRES"
    [[ -f $res ]] || die "no guest results ($res): run the scenario first"
    want=$(awk '$1 == "host-origin" {print $2}' "$res")
    got=$(sha256sum "$W/origin.img" | cut -d' ' -f1)
    if [[ -n $want && $want == "$got" ]]; then hpass "origin.img = the guest's final origin"
    else hfail "origin.img $got != the guest's final origin ${want:-(not recorded)}"; fi
    hcheck "cowcheck shared store" "$BIN/cowcheck" --origin "$W/origin.img" "$W/store.img"
    "$BIN/cowdump" --format table "$W/store.img" > "$LOGS/cowdump-store.txt" 2>&1 || true
    # host-expect KEY ID HASH: snapshot ID of the shared store must read as HASH.
    while read -r _ key id want; do
        exp=$W/export-$key.img
        hcheck "export $key (id $id) --to persistent" "$BIN/cowmigrate" -i "$W/store.img" \
            -o "$exp" --to persistent --snapshot "$id" --origin "$W/origin.img" -f -q
        hcheck "cowcheck export $key" "$BIN/cowcheck" --kind persistent --origin "$W/origin.img" "$exp"
        got=$(raw_hash persistent "$exp" "$W/origin.img")
        if [[ $got == "$want" ]]; then hpass "export $key sha256 = the guest's record"
        else hfail "export $key sha256 $got != the guest's record $want"; fi
        rm -f "$exp"
    done < <(awk '$1 == "host-expect"' "$res")
    # host-classic KEY COW HASH: the kernel's own store, checked by our tools.
    while read -r _ key cow want; do
        hcheck "cowcheck kernel store $cow" "$BIN/cowcheck" --origin "$W/corigin.img" "$W/$cow.img"
        got=$(raw_hash persistent "$W/$cow.img" "$W/corigin.img")
        if [[ $got == "$want" ]]; then hpass "kernel store $cow sha256 = the guest's record"
        else hfail "kernel store $cow sha256 $got != the guest's record $want"; fi
    done < <(awk '$1 == "host-classic"' "$res")
}

# ------------------------------------------------------------- report -------

report() {
    local res=$LOGS/scenario/results.txt sum=$LOGS/summary.txt pass fail
    # Without the out disk (a guest that hung and was stopped) the verdicts
    # come from the serial console.
    [[ -f $res ]] || res=$LOGS/scenario-serial.log
    {
        grep -ah '^VM: ' "$res" "$HOSTRES" 2>/dev/null || true
        grep -h '^figure ' "$res" 2>/dev/null || true
        cat "$LOGS/scenario/wall.txt" 2>/dev/null || true
    } > "$sum"
    cat "$sum"
    pass=$(grep -c '^VM: PASS' "$sum" || true)
    fail=$(grep -c '^VM: FAIL' "$sum" || true)
    if ! grep -q '^VM: PASS scenario complete' "$sum"; then
        echo "VM: FAIL the guest scenario did not run to its end (see $LOGS/scenario-serial.log)" | tee -a "$sum"
        fail=$((fail + 1))
    fi
    say "RESULT: $pass passed, $fail failed (summary: $sum)"
    ((fail == 0))
}

# -------------------------------------------------------------- bench -------

bench() {
    qemu_env
    mkdir -p "$WORK" "$LOGS"
    rm -f "$WORK"/bench-*.img
    truncate -s "${ORIGIN_MIB}M" "$WORK/bench-origin.img"
    truncate -s "${STORE_MIB}M" "$WORK/bench-store.img"
    # 16 classic COWs of 66 MiB each, cut from one disk with dm linear.
    truncate -s 1100M "$WORK/bench-cows.img"
    local rc=0
    VM_APPEND="BENCH_ROUNDS=${BENCH_ROUNDS:-3} BENCH_NS=${BENCH_NS:-1,2,4,8,16}" \
        run_vm bench "$HERE/guest/bench.sh" origin="$WORK/bench-origin.img" \
        store="$WORK/bench-store.img" cows="$WORK/bench-cows.img" || rc=$?
    rm -f "$WORK"/bench-*.img
    return "$rc"
}

# ---------------------------------------------------------------- main ------

main() {
    local what=${1:-all}
    mkdir -p "$LOGS"
    case $what in
        prepare) prepare ;;
        scenario) scenario || say "guest scenario reported a failure" ;;
        host) host ;;
        report) report ;;
        bench) prepare; bench ;;
        all)
            prepare
            scenario || say "guest scenario reported a failure"
            if [[ -f $LOGS/scenario/results.txt ]]; then host; fi
            report
            ;;
        *) die "unknown step '$what' (all|prepare|scenario|host|report|bench)" ;;
    esac
}

main "$@"

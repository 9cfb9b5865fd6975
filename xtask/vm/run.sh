#!/usr/bin/env bash
# End-to-end check, with a real Linux kernel under qemu, that classic
# dm-snapshot COW stores survive a round trip through the shared store:
#
#   boot 1   the kernel (dm-snapshot) writes three persistent COW stores of one
#            origin: snap1, snap2, snap3 taken at different moments, origin
#            writes between them, snapshot-side writes through snap2; it
#            records the sha256 of every snapshot.
#   host     cowcheck the three stores; cowmigrate them into ONE shared store;
#            cowcheck it; export every snapshot back with --to persistent and
#            --to legacy; cowcheck each export.
#   boot 2   the kernel activates every exported store (and copies of its own
#            stores as a control) over the final origin and records the
#            sha256 of each snapshot.
#   compare  every export must show exactly what the kernel's snapshot showed.
#
# Usage: ./run.sh [all|fetch|prepare|boot1|host|boot2|compare]   (default: all)
#   fetch    download the Debian packages into cache/debs (only missing ones)
#   prepare  fetch + extract + build the initramfs (no VM)
#   boot1, host, boot2, compare: the single steps; they expect the earlier ones.
#
# Normally run through `cargo xtask vm-test`, which builds the release tools
# first. Needs root (apt-get download) and Debian's package mirror.
#
# Environment:
#   VM_DIR       where downloads, the VM build, disk images and logs go
#                (default: target/vm of the workspace)
#   TOOLS_SRC    where to copy the tools under test from, once per run
#                (default: target/release of the workspace)
#   VM_WAIT_CMD  shell command polled (every 15 s) until it succeeds before a VM
#                boots, e.g. '! pgrep -f "xtask bench"'
#   VM_TIMEOUT   seconds one boot may take (default 1200)
#
# Layout (the guest scripts beside this file; everything else under VM_DIR):
#   bin/         the tools under test (copied at the start of a run)
#   cache/debs/  downloaded .deb files (kept between runs)
#   build/       extracted packages, initramfs images (regenerated)
#   guest/       init, lib.sh, boot1.sh, boot2.sh (the guest side)
#   work/        disk images of the current run (recreated by boot1)
#   logs/        serial logs, guest results, tool outputs, summary.txt
#
# Exit status: 0 when every export matches, 1 when a check failed, 2 on a
# setup problem.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"
vm_layout
BIN=$TOP/bin
GUEST=$HERE/guest
WORK=$TOP/work
LOGS=$TOP/logs
TOOLS_SRC=${TOOLS_SRC:-$WORKSPACE/target/release}
VM_TIMEOUT=${VM_TIMEOUT:-1200}

# Scenario sizes: origin 32 MiB, each classic COW 16 MiB, chunk 8 sectors.
ORIGIN_MIB=32
COW_MIB=16
TOOLS=(mkcow cowdump cowcheck cowrepair cowmigrate)

GUEST_DIR=$GUEST

# ---------------------------------------------------------------- setup -----

setup_tools() {
    copy_tools "$BIN" "$TOOLS_SRC" "${TOOLS[@]}"
    say "tools under test copied from $TOOLS_SRC"
}

# Base initramfs: busybox, the modules (decompressed), dmsetup and the
# libraries it needs, /init and /lib.sh. Each boot appends its /scenario.sh.
build_initramfs() {
    qemu_env
    local ir=$BUILD/initramfs-root
    ir_base "$ir"
    ir_modules "$ir" drivers/block/virtio_blk drivers/md/dm-mod drivers/md/dm-bufio \
        drivers/md/dm-snapshot
    ir_binary "$ir" "$ROOT/sbin/dmsetup" sbin/dmsetup
    ir_pack "$ir" "$BUILD/initramfs-base.cpio.gz"
    say "initramfs: $(du -h "$BUILD/initramfs-base.cpio.gz" | cut -f1) (kernel $KVER)"
}

prepare() {
    setup_tools
    fetch
    extract
    build_initramfs
}

# ------------------------------------------------------------------ VM ------

boot1() {
    qemu_env
    rm -rf "$WORK"
    mkdir -p "$WORK" "$LOGS"
    pattern_file "$WORK/origin.img" ORIGIN $((ORIGIN_MIB * 256))
    sha256sum "$WORK/origin.img" > "$LOGS/origin-initial.sha256"
    local n
    for n in 1 2 3; do truncate -s "${COW_MIB}M" "$WORK/cow$n.img"; done
    run_vm boot1 "$GUEST/boot1.sh" \
        origin="$WORK/origin.img" cow1="$WORK/cow1.img" cow2="$WORK/cow2.img" cow3="$WORK/cow3.img"
}

# ---------------------------------------------------------------- host ------

HOSTLOG=$LOGS/host.log
FAILS=0

# step WHAT CMD...: run a tool, log command, output and exit status.
step() {
    local what=$1 rc=0
    shift
    {
        echo "=== $what"
        echo "\$ $*"
    } >> "$HOSTLOG"
    "$@" >> "$HOSTLOG" 2>&1 || rc=$?
    echo "--- exit $rc" >> "$HOSTLOG"
    if ((rc != 0)); then
        say "FAILED ($rc): $what: $*"
        FAILS=$((FAILS + 1))
    fi
    return 0
}

host() {
    local W=$WORK n k out
    : > "$HOSTLOG"
    sha256sum "$W"/origin.img "$W"/cow{1,2,3}.img > "$LOGS/after-boot1.sha256"
    for n in 1 2 3; do
        step "cowcheck kernel store cow$n" "$BIN/cowcheck" --origin "$W/origin.img" "$W/cow$n.img"
        "$BIN/cowdump" --format table "$W/cow$n.img" > "$LOGS/cowdump-cow$n.txt" 2>&1 || true
    done
    step "import cow1..3 into one shared store (ids 1,2,3)" \
        "$BIN/cowmigrate" -i "$W/cow1.img" "$W/cow2.img" "$W/cow3.img" --ids 1,2,3 \
        -o "$W/shared.img" --to shared --origin "$W/origin.img" -f
    # The same import again as JSON, for the figures; it must give the same bytes.
    "$BIN/cowmigrate" -i "$W/cow1.img" "$W/cow2.img" "$W/cow3.img" --ids 1,2,3 \
        -o "$W/shared-again.img" --to shared --origin "$W/origin.img" -f \
        --format json -q > "$LOGS/import.json" 2>>"$HOSTLOG" || true
    if cmp -s "$W/shared.img" "$W/shared-again.img"; then
        echo "=== repeated import: byte-identical" >> "$HOSTLOG"
    else
        echo "=== repeated import: DIFFERENT bytes" >> "$HOSTLOG"
    fi
    rm -f "$W/shared-again.img"
    step "cowcheck shared store" "$BIN/cowcheck" --origin "$W/origin.img" "$W/shared.img"
    "$BIN/cowdump" --format table "$W/shared.img" > "$LOGS/cowdump-shared.txt" 2>&1 || true
    for n in 1 2 3; do
        for k in persistent legacy; do
            out=$W/exp$n${k:0:1}.img
            step "export snapshot $n --to $k" "$BIN/cowmigrate" -i "$W/shared.img" -o "$out" \
                --to "$k" --snapshot "$n" --origin "$W/origin.img" -f
            step "cowcheck export $n $k" "$BIN/cowcheck" --kind "$k" --origin "$W/origin.img" "$out"
        done
        cp "$W/cow$n.img" "$W/ctl$n.img"   # control for boot 2: the kernel's own store
    done
    sha256sum "$W"/exp*.img "$W"/ctl*.img "$W"/origin.img > "$LOGS/before-boot2.sha256"
    say "host steps done: $FAILS failed (log: $HOSTLOG)"
    ((FAILS == 0))
}

boot2() {
    qemu_env
    local W=$WORK n k
    local disks=(origin="$W/origin.img:ro")
    for n in 1 2 3; do disks+=(ctl$n="$W/ctl$n.img"); done
    for n in 1 2 3; do for k in p l; do
        [[ -f $W/exp$n$k.img ]] && disks+=(exp$n$k="$W/exp$n$k.img")
    done; done
    run_vm boot2 "$GUEST/boot2.sh" "${disks[@]}"
    sha256sum "$W"/exp*.img "$W"/ctl*.img "$W"/origin.img > "$LOGS/after-boot2.sha256"
}

# ------------------------------------------------------------- compare ------

compare() {
    local r1=$LOGS/boot1/results.txt r2=$LOGS/boot2/results.txt sum=$LOGS/summary.txt
    local bad=0 line name n want got verdict
    [[ -f $r1 && -f $r2 ]] || die "missing guest results ($r1, $r2)"
    {
        echo "== kernel snapshots (boot 1)"
        grep -E '^sha256 (snap[123]|org) final ' "$r1"
        grep -E '^status snap[123] final ' "$r1"
        echo "== host checks"
        awk '/^=== / {w = substr($0, 5)} /^=== repeated/ {print "      " w} /^--- exit/ {printf "exit %s  %s\n", $3, w}' "$HOSTLOG"
        echo "== cowmigrate import report"
        sed -n '/^=== import/,/^--- exit/p' "$HOSTLOG"
        echo "== boot 2: every store vs. the kernel's snapshot"
        while read -r _ name _ got; do
            n=${name//[!0-9]/}
            want=$(awk -v s="snap$n" '$1 == "sha256" && $2 == s && $3 == "final" {print $4}' "$r1")
            if [[ -n $want && $got == "$want" ]]; then verdict=PASS; else verdict=FAIL; bad=1; fi
            line=$(awk -v s="$name" '$1 == "status" && $2 == s {$1 = $2 = $3 = ""; print}' "$r2")
            printf '%-4s %-9s snap%s sha256 %s  status:%s\n' "$verdict" "${name#v_}" "$n" "$got" "$line"
        done < <(grep -E '^sha256 v_[a-z0-9]+ final ' "$r2")
        echo "== origin (guest views vs. host files)"
        grep -E '^sha256 (org|vd[a-z]+) ' "$r1" "$r2" | sed "s|$LOGS/||"
        # snap1 was taken before any write: it must show the initial origin;
        # the origin the guests saw must be the host's file before/after.
        local h0 h1 g0 g1 s1
        h0=$(cut -d' ' -f1 "$LOGS/origin-initial.sha256")
        h1=$(grep origin.img "$LOGS/after-boot1.sha256" | cut -d' ' -f1)
        g0=$(awk '$1 == "sha256" && $2 == "org" && $3 == "initial" {print $4}' "$r1")
        g1=$(awk '$1 == "sha256" && $2 == "org" && $3 == "final" {print $4}' "$r1")
        s1=$(awk '$1 == "sha256" && $2 == "snap1" && $3 == "final" {print $4}' "$r1")
        for line in "host initial = guest initial:$h0:$g0" \
                    "host initial = snap1 final:$h0:$s1" \
                    "host after boot 1 = guest final:$h1:$g1" \
                    "boot 2 origin unchanged:$h1:$(awk '$1 == "sha256" && $3 == "disk-end" {print $4}' "$r2")"; do
            IFS=: read -r what want got <<< "$line"
            if [[ -n $want && $want == "$got" ]]; then verdict=PASS; else verdict=FAIL; bad=1; fi
            echo "$verdict $what"
        done
        echo "== wall times"
        cat "$LOGS"/boot1/wall.txt "$LOGS"/boot2/wall.txt
        echo "== images changed by boot 2 (should be none)"
        diff <(sort "$LOGS/before-boot2.sha256") <(sort "$LOGS/after-boot2.sha256") || true
    } > "$sum"
    grep -q "^--- exit [1-9]" "$HOSTLOG" && bad=1
    cat "$sum"
    if ((bad)); then say "RESULT: FAIL"; return 1; fi
    say "RESULT: PASS"
}

# ---------------------------------------------------------------- main ------

main() {
    local what=${1:-all}
    mkdir -p "$LOGS"
    case $what in
        fetch) setup_tools; fetch ;;
        prepare) prepare ;;
        boot1) boot1 ;;
        host) host ;;
        boot2) boot2 ;;
        compare) compare ;;
        all)
            prepare
            boot1 || die "boot 1 failed"
            host || say "host steps had failures; booting the exports that exist"
            boot2 || say "boot 2 scenario failed"
            compare
            ;;
        *) die "unknown step '$what' (all|fetch|prepare|boot1|host|boot2|compare)" ;;
    esac
}

main "$@"

# The runtime scenario (busybox ash, sourced by /init with set -eu).
#
# Disks: origin (64 MiB, zero) + store (128 MiB shared store, mkcow on the
# host) for the shared half; corigin (64 MiB, zero) + c1, c2, c3, csub
# (classic COWs, zero) for the classic reference; out.
#
# The same workload runs on both, classic first (the kernel's dm-snapshot
# through `cowrt dm activate`, the reference), then shared (`cowrt serve`):
#   mkfs.ext4, files           -> snapshot 1 (filesystem unmounted)
#   random overwrites          -> snapshot 2 (unmounted)
#   files, filesystem mounted  -> snapshot 3 (frozen while taken)
#   snapshot of snapshot 1 (sub), then files written into snapshot 1
#   more origin writes, delete of snapshot 2 (the middle one)
#   every snapshot: sha256 = the hash recorded when it was taken (or last
#   written), e2fsck -fn clean; file manifests shared = classic.
# Shared only: kill -9 of the daemon during a 16 MiB write, `cowrt serve
# --recover`, the write completes with the right data, every check again;
# status, stop; facts for the host's cowcheck and exports.

. /rt.sh
mkdir -p "$RUN"
# The daemon's logs come back with the results, however the scenario ends.
trap 'cp "$RUN"/*.log /out/ 2>/dev/null || true' EXIT
make_rand

# ------------------------------------------------------- classic (dm) -------

log "## classic reference: cowrt dm activate (dm-snapshot)"
t0=$(now)
CORG=/dev/mapper/c1-origin
activate() { # NAME ORIGIN COW
    check "classic: cowrt dm activate $1" cowrt dm activate --kind persistent --chunk-size 4k \
        --origin "$2" --cow "$3" "$1"
}
check "classic: mkfs.ext4 on the origin" "$MKE2FS" -t ext4 -q -F "$D_corigin"
mnt "$D_corigin"; wl_files /mnt/fs a 120 11; umnt
settle; expect c1 "$(sha "$D_corigin")"
activate c1 "$D_corigin" "$D_c1"

mnt "$CORG"; wl_random /mnt/fs 150 22; umnt
settle; expect c2 "$(sha "$CORG")"
activate c2 "$D_corigin" "$D_c2"

mnt "$CORG"; wl_files /mnt/fs c 120 33
fsfreeze --freeze /mnt/fs
activate c3 "$D_corigin" "$D_c3"
fsfreeze --unfreeze /mnt/fs
expect c3 "$(sha /dev/mapper/c3)"
umnt

# Snapshot of snapshot 1: c1 becomes the origin of csub; writes to c1 then go
# through csub-origin.
activate csub /dev/mapper/c1 "$D_csub"
expect csub "$EXP_c1"
mnt /dev/mapper/csub-origin; wl_files /mnt/fs d 80 44; umnt
settle; expect c1 "$(sha /dev/mapper/csub-origin)"

mnt "$CORG"; wl_random /mnt/fs 100 55; wl_files /mnt/fs e 60 66; umnt
check "classic: cowrt dm deactivate c2 (the middle snapshot)" cowrt dm deactivate c2
settle
verify classic c1 /dev/mapper/csub-origin
verify classic csub /dev/mapper/csub
verify classic c3 /dev/mapper/c3
check "classic: origin e2fsck -fn clean" "$E2FSCK" -fn "$CORG"
MAN_c1=$(manifest /dev/mapper/csub-origin)
MAN_sub=$(manifest /dev/mapper/csub)
MAN_c3=$(manifest /dev/mapper/c3)
MAN_org=$(manifest "$CORG")
cowrt dm status c1 | sed 's/^/classic status: /'
for s in c1 c3 csub; do res "classic-status $s $(dmsetup status "$s")"; done
check "classic: cowrt dm deactivate csub" cowrt dm deactivate csub
check "classic: cowrt dm deactivate c3" cowrt dm deactivate c3
check "classic: cowrt dm deactivate c1" cowrt dm deactivate c1
res "host-classic c1 c1 $EXP_c1"
res "host-classic c3 c3 $EXP_c3"
res "figure classic-phase-s $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')"

# ------------------------------------------------ classic: more dm paths ---

# On morigin (32 MiB, 16 MiB of random data) with a fresh COW each, one
# after the other: `cowrt dm merge` of a persistent snapshot (mcow),
# --kind transient (tcow), --kind legacy (lcow, mkcow --kind legacy on the
# host), --kind persistent --overflow (ocow).

# dm_writes NAME: 8 MiB through NAME-origin at 4 MiB, a slice of /tmp/rand
# that differs in every round; the origin must change.
DM_ROUND=0
dm_writes() {
    dd if=/tmp/rand of="/dev/mapper/$1-origin" bs=1M skip="$DM_ROUND" seek=4 count=8 \
        conv=fsync status=none
    DM_ROUND=$((DM_ROUND + 1))
    settle
    if [ "$(sha "/dev/mapper/$1-origin")" != "$DM_BASE" ]; then
        pass "classic $1: the origin writes changed the origin"
    else
        fail "classic $1: the origin writes left the origin unchanged"
    fi
}

# dm_snap_reads NAME: the snapshot reads as the origin at activation.
dm_snap_reads() {
    got=$(sha "/dev/mapper/$1")
    if [ "$got" = "$DM_BASE" ]; then pass "classic $1: snapshot sha256 = origin at activation"
    else fail "classic $1: snapshot sha256 $got != origin at activation $DM_BASE"; fi
}

# dm_table NAME WORD: the snapshot's table has persistence WORD (P, N, PO).
dm_table() {
    t=$(dmsetup table "$1" 2>&1)
    res "dm-table $1 $t"
    if echo "$t" | awk -v w="$2" '$3 == "snapshot" && $6 == w {f = 1} END {exit !f}'; then
        pass "classic $1: kernel table has persistence $2: $t"
    else
        fail "classic $1: kernel table is not a $2 snapshot: $t"
    fi
}

# dm_simple NAME COW KIND WORD ARGS...: activate, write, check, deactivate.
dm_simple() {
    n=$1; cow=$2; kind=$3; word=$4
    shift 4
    check "classic $n: cowrt dm activate --kind $kind $*" cowrt dm activate --kind "$kind" \
        --chunk-size 4k "$@" --origin "$D_morigin" --cow "$cow" "$n"
    [ "$OK" = yes ] || return 0
    dm_table "$n" "$word"
    dm_writes "$n"
    dm_snap_reads "$n"
    check "classic $n: cowrt dm deactivate $n" cowrt dm deactivate "$n"
    settle
    DM_BASE=$(sha "$D_morigin")
}

dm_more() {
    log "## classic: cowrt dm merge, --kind transient, --kind legacy, --overflow"
    dd if=/tmp/rand of="$D_morigin" bs=1M count=16 conv=fsync status=none
    settle
    DM_BASE=$(sha "$D_morigin")

    check "classic m1: cowrt dm activate --kind persistent" cowrt dm activate --kind persistent \
        --chunk-size 4k --origin "$D_morigin" --cow "$D_mcow" m1
    if [ "$OK" = yes ]; then
        dm_writes m1
        dm_snap_reads m1
        # The kernel's snapshot-merge status lines while cowrt waits.
        cowrt dm merge m1 > /tmp/merge.out 2>&1 &
        mp=$!
        while kill -0 "$mp" 2>/dev/null; do
            dmsetup status m1-origin 2>/dev/null || true
            sleep 0.05
        done | sort -u > /tmp/merge.status
        if wait "$mp"; then pass "classic m1: cowrt dm merge m1: $(tr '\n' ' ' < /tmp/merge.out)"
        else fail "classic m1: cowrt dm merge m1: $(tr '\n' ' ' < /tmp/merge.out)"; fi
        while read -r l; do res "merge-status $l"; log "merge status: $l"; done < /tmp/merge.status
        settle
        got=$(sha /dev/mapper/m1-origin)
        if [ "$got" = "$DM_BASE" ]; then pass "classic m1: after merge, origin sha256 = snapshot's"
        else fail "classic m1: after merge, origin sha256 $got != snapshot's $DM_BASE"; fi
        got=$(sha "$D_morigin")
        if [ "$got" = "$DM_BASE" ]; then pass "classic m1: after merge, the origin disk = snapshot's"
        else fail "classic m1: after merge, the origin disk $got != snapshot's $DM_BASE"; fi
        t=$(dmsetup table m1-origin 2>&1)
        res "dm-table m1-origin-after-merge $t"
        if [ "$(echo "$t" | awk '{print $3}')" = linear ]; then pass "classic m1: after merge, m1-origin is linear: $t"
        else fail "classic m1: after merge, m1-origin is not linear: $t"; fi
        if dmsetup info m1 > /dev/null 2>&1; then fail "classic m1: m1 still exists after merge"
        else pass "classic m1: m1 gone after merge"; fi
        check "classic m1: cowrt dm status m1 after merge" cowrt dm status m1
        res "merge-after-status $(tr '\n' ' ' < /tmp/check.out)"
        check "classic m1: cowrt dm deactivate m1 after merge" cowrt dm deactivate m1
        if dmsetup info m1-origin > /dev/null 2>&1; then fail "classic m1: m1-origin left after deactivate"
        else pass "classic m1: m1-origin gone after deactivate"; fi
        settle
        DM_BASE=$(sha "$D_morigin")
    fi

    dm_simple t1 "$D_tcow" transient N
    dm_simple l1 "$D_lcow" legacy P
    dm_simple o1 "$D_ocow" persistent PO --overflow
}
dm_more

# ------------------------------------------------------- clone (dm) ---------

# xtask/vm/guest-clone.sh (branch clone), in the initramfs when dm-clone.ko
# was built: its own disks and names, `VM: PASS|FAIL clone ...` lines.
if [ -f /guest-clone.sh ]; then
    log "## dm-clone through cowrt dm (xtask/vm/guest-clone.sh)"
    . /guest-clone.sh
    cl_main || true
fi

# ----------------------------------------------------- shared (ublk) --------

# snap ARGS...: `cowrt message rt ARGS`; sets SID and SDEV from "created ID DEV".
snap() {
    SID=; SDEV=
    if timeout "$LIMIT" cowrt message rt "$@" > /tmp/msg.out 2>&1; then
        SID=$(awk '$1 == "created" {print $2}' /tmp/msg.out)
        SDEV=$(awk '$1 == "created" {print $3}' /tmp/msg.out)
    fi
    if [ -n "$SID" ] && [ -b "$SDEV" ]; then
        OK=yes
        pass "shared: cowrt message rt $* -> $(cat /tmp/msg.out)"
    else
        OK=no
        fail "shared: cowrt message rt $*: $(cat /tmp/msg.out)"
    fi
}

# same_files KEY MANIFEST DEV: the files of DEV = those of the classic run.
same_files() {
    m=$(manifest "$3")
    if [ "$m" = "$2" ]; then pass "shared: $1 files = classic reference"
    else fail "shared: $1 files $m != classic reference $2"; fi
}

# serve_up LOG ARGS...: start the daemon, wait for its SERVING line; sets ORG.
serve_up() {
    out=$1
    shift
    if timeout "$LIMIT" cowrt serve --store "$D_store" --origin "$D_origin" "$@" rt > "$out" 2>&1 \
        && grep -q '^SERVING rt' "$out"; then
        ORG=$(awk '$1 == "READY" && $2 == "rt" {print $3}' "$out")
        pass "shared: cowrt serve${*:+ $*} rt -> origin $ORG"
        return 0
    fi
    cat "$out"
    fail "shared: cowrt serve${*:+ $*} rt: $(tail -n 2 "$out" | tr '\n' ' ')"
    return 1
}

shared() {
    log "## shared store: cowrt serve (ublk)"
    t0=$(now)
    serve_up /tmp/serve.out || return 0
    check "shared: mkfs.ext4 on the origin through cowrt serve" "$MKE2FS" -t ext4 -q -F "$ORG"
    [ "$OK" = yes ] || { fail "shared: no filesystem on the origin: the shared phase stops here"; return 0; }
    mnt "$ORG"; wl_files /mnt/fs a 120 11; umnt
    settle; expect s1 "$(sha "$ORG")"
    snap create; S1=$SID; S1DEV=$SDEV
    [ "$OK" = yes ] || return 0

    mnt "$ORG"; wl_random /mnt/fs 150 22; umnt
    settle; expect s2 "$(sha "$ORG")"
    snap create; S2=$SID; S2DEV=$SDEV
    [ "$OK" = yes ] || return 0

    mnt "$ORG"; wl_files /mnt/fs c 120 33
    snap create --freeze /mnt/fs; S3=$SID; S3DEV=$SDEV
    if [ -n "$S3DEV" ]; then expect s3 "$(sha "$S3DEV")"; fi
    umnt
    [ "$OK" = yes ] || return 0

    snap create_subsnap "$S1"; SUB=$SID; SUBDEV=$SDEV
    [ "$OK" = yes ] || return 0
    expect sub "$EXP_s1"
    mnt "$S1DEV"; wl_files /mnt/fs d 80 44; umnt
    settle; expect s1 "$(sha "$S1DEV")"

    mnt "$ORG"; wl_random /mnt/fs 100 55; wl_files /mnt/fs e 60 66; umnt
    check "shared: cowrt message rt delete $S2 (the middle snapshot)" cowrt message rt delete "$S2"
    # seed 002's status line: 5 ERROR NEW_ID TOTAL ALLOCATED METADATA N IDS...
    line=$(timeout "$LIMIT" cowrt status rt || true)
    if [ "${line%% *}" != 5 ]; then
        fail "shared: no seed 002 status line after delete: '$line'"
    elif echo "$line" | awk '{for (i = 8; i <= NF; i++) print $i}' | grep -qx "$S2"; then
        fail "shared: snapshot $S2 still listed after delete: $line"
    else
        pass "shared: snapshot $S2 gone from the status line: $line"
    fi
    settle
    verify shared s1 "$S1DEV"
    verify shared sub "$SUBDEV"
    verify shared s3 "$S3DEV"
    check "shared: origin e2fsck -fn clean" "$E2FSCK" -fn "$ORG"
    same_files s1 "$MAN_c1" "$S1DEV"
    same_files sub "$MAN_sub" "$SUBDEV"
    same_files s3 "$MAN_c3" "$S3DEV"
    same_files origin "$MAN_org" "$ORG"
    res "figure shared-phase-s $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')"

    log "## kill -9 of the daemon during a write, then --recover"
    mnt "$ORG"
    dd if=/tmp/rand of=/mnt/fs/crash bs=1M count=16 conv=fsync status=none &
    dd_pid=$!
    sleep 0.5
    running=no
    kill -0 "$dd_pid" 2>/dev/null && running=yes
    t1=$(now)
    kill -9 "$(cat "$RUN/rt.pid")"
    res "figure kill-during-write $running"
    log "daemon killed (dd still running: $running)"
    if [ "$running" = yes ]; then pass "shared: kill -9 landed while the write was in flight"
    else fail "shared: the write had finished before kill -9: recovery of in-flight I/O is untested"; fi
    sleep 0.5
    serve_up /tmp/recover.out --recover || { fail "shared: no recovery: the scenario stops here"; return 0; }
    if wait "$dd_pid"; then pass "shared: the write interrupted by kill -9 completed"
    else fail "shared: the write interrupted by kill -9 failed"; fi
    res "figure kill-to-write-done-s $(awk -v a="$t1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')"
    want=$(head -c 16777216 /tmp/rand | sha256sum | cut -d' ' -f1)
    if [ "$(sha /mnt/fs/crash)" = "$want" ]; then pass "shared: the interrupted write holds its data"
    else fail "shared: the interrupted write does not hold its data"; fi
    umnt
    settle
    check "shared: after recovery: origin e2fsck -fn clean" "$E2FSCK" -fn "$ORG"
    verify "shared: after recovery" s1 "$S1DEV"
    verify "shared: after recovery" sub "$SUBDEV"
    verify "shared: after recovery" s3 "$S3DEV"

    check "shared: cowrt status rt" cowrt status rt
    res "shared-status $(cat /tmp/check.out)"
    timeout "$LIMIT" cowrt status rt --format json > /out/status.json 2>&1 \
        || fail "shared: cowrt status rt --format json"
    res "host-expect s1 $S1 ${EXP_s1:-none}"
    res "host-expect sub $SUB ${EXP_sub:-none}"
    res "host-expect s3 $S3 ${EXP_s3:-none}"
    check "shared: cowrt stop rt" cowrt stop rt
    [ "$OK" = yes ] || return 0
    settle
    res "host-origin $(sha "$D_origin")"
}
shared
pass "scenario complete"

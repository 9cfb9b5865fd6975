# Guest piece: dm-clone through `cowrt dm` (busybox ash; run with sh, or
# sourced by a scenario: it only defines cl_* names and CLONE_* variables,
# and never exits the shell that sources it).
#
# Needs: cowrt, dmsetup and sha256sum on PATH; dm-clone in the kernel (the
# module from xtask/vm/build-dm-clone.sh, loaded by the harness or here from
# /lib/modules); three virtio disks, by default those with serials cmeta
# (metadata, >= 4 MiB), cdest (destination) and csource (source, same size as
# cdest; its contents are overwritten with random data), or CLONE_META,
# CLONE_DEST, CLONE_SOURCE.
#
# Steps: random source; `cowrt dm activate --kind clone --no-hydration`
# (the kernel formats the blank metadata); status before any write; writes
# through the clone (a whole region, a partial region, a write across two
# regions); the clone reads as the source with those writes; threshold and
# batch-size messages show in the status line; `cowrt dm hydrate start
# --wait`; status complete; deactivate; the destination alone now holds the
# source with the writes; reactivation over the kernel's metadata is accepted
# and reads the same; a different --region-size over it is refused before the
# kernel sees it; deactivate; hydration messages to a missing device and to
# a linear device are refused with the reason.
#
# Prints `VM: PASS clone WHAT` / `VM: FAIL clone WHAT (why)` (also appended
# to /out/results.txt when /out exists) and facts as `clone-status LABEL
# LINE` lines there. Runs every step even after a failure; cl_main returns
# the number of failures (a scenario under set -e calls `cl_main || true`).

CLONE_META=${CLONE_META:-${D_cmeta:-}}
CLONE_DEST=${CLONE_DEST:-${D_cdest:-}}
CLONE_SOURCE=${CLONE_SOURCE:-${D_csource:-}}
CLONE_NAME=${CLONE_NAME:-cl}
CLONE_REGION=${CLONE_REGION:-64}
CLONE_FAILS=0

cl_out() {
    echo "$*"
    if [ -d /out ]; then echo "$*" >> /out/results.txt; fi
}
cl_pass() { cl_out "VM: PASS clone $*"; }
cl_fail() {
    cl_out "VM: FAIL clone $*"
    CLONE_FAILS=$((CLONE_FAILS + 1))
}
cl_fact() { if [ -d /out ]; then echo "$*" >> /out/results.txt; fi; }
cl_sha() { sha256sum "$1" | cut -d' ' -f1; }

# cl_check WHAT CMD...: PASS when CMD exits 0 (CL_OK=yes, else no); its
# output is in /tmp/cl.out. Returns 0 either way (callers run under set -e).
cl_check() {
    cl_what=$1
    shift
    if "$@" > /tmp/cl.out 2>&1; then
        CL_OK=yes
        cl_pass "$cl_what"
        return 0
    fi
    cl_rc=$?
    CL_OK=no
    cat /tmp/cl.out
    cl_fail "$cl_what (exit $cl_rc: $(tail -n 2 /tmp/cl.out | tr '\n' ' '))"
}

# cl_same WHAT GOT WANT: PASS when equal.
cl_same() {
    if [ "$2" = "$3" ]; then cl_pass "$1"; else cl_fail "$1 (got '$2', want '$3')"; fi
}

# cl_refused WHAT CODE TEXT CMD...: PASS when CMD exits CODE saying TEXT.
cl_refused() {
    cl_what=$1 cl_code=$2 cl_text=$3
    shift 3
    cl_rc=0
    "$@" > /tmp/cl.out 2>&1 || cl_rc=$?
    if [ "$cl_rc" = "$cl_code" ] && grep -qF "$cl_text" /tmp/cl.out; then
        cl_pass "$cl_what is refused (exit $cl_rc): $(cat /tmp/cl.out)"
    else
        cl_fail "$cl_what: exit $cl_rc, $(cat /tmp/cl.out)"
    fi
}

# cl_write DEV OFFSET_BYTES LENGTH_BYTES TAG: write a recognisable pattern,
# O_DIRECT, to DEV and to the model /tmp/cl-expect.img alike.
cl_write() {
    yes "$4 at $2 " | head -c "$3" > /tmp/cl-buf || true
    # One bio for the whole write when its offset allows, else 4 KiB ones.
    cl_bs=4096
    if [ $(($2 % $3)) = 0 ]; then cl_bs=$3; fi
    dd if=/tmp/cl-buf of="$1" bs="$cl_bs" seek=$(($2 / cl_bs)) count=$(($3 / cl_bs)) \
        conv=notrunc oflag=direct status=none
    dd if=/tmp/cl-buf of=/tmp/cl-expect.img bs="$cl_bs" seek=$(($2 / cl_bs)) \
        count=$(($3 / cl_bs)) conv=notrunc status=none
}

# cl_status LABEL: record `dmsetup status NAME` and print cowrt's view.
cl_status() {
    cl_line=$(dmsetup status "$CLONE_NAME" || true)
    echo "clone status [$1]: $cl_line"
    cl_fact "clone-status $1 $cl_line"
    cowrt dm status "$CLONE_NAME" || true
}

# cl_target: the clone line of `dmsetup targets`, empty without dm-clone.
# (Outputs are read whole before matching: under pipefail a `| grep -q`
# that stops reading early fails the writer with SIGPIPE.)
cl_target() {
    dmsetup targets > /tmp/cl-targets 2>/dev/null || true
    sed -n 's/^\(clone\)[[:space:]]*/\1 /p' /tmp/cl-targets
}

# cl_hydrated: "<hydrated>/<total>" from the kernel's status line.
cl_hydrated() { dmsetup status "$CLONE_NAME" | cut -d' ' -f7; }

cl_activate() { # extra args...
    cowrt dm activate --kind clone --metadata "$CLONE_META" --dest "$CLONE_DEST" \
        --source "$CLONE_SOURCE" --region-size "$CLONE_REGION" "$@" "$CLONE_NAME"
}

cl_main() {
    CLONE_FAILS=0
    if [ -z "$CLONE_META" ] || [ -z "$CLONE_DEST" ] || [ -z "$CLONE_SOURCE" ]; then
        cl_fail "setup (no cmeta/cdest/csource disks)"
        return "$CLONE_FAILS"
    fi
    if [ -z "$(cl_target)" ]; then
        for cl_m in libcrc32c dm-persistent-data dm-clone; do
            if [ -f "/lib/modules/$cl_m.ko" ]; then insmod "/lib/modules/$cl_m.ko" || true; fi
        done
    fi
    if [ -z "$(cl_target)" ]; then
        cl_fail "setup (the kernel has no dm-clone target: build it with xtask/vm/build-dm-clone.sh)"
        return "$CLONE_FAILS"
    fi
    cl_pass "dm-clone target loaded: $(cl_target)"
    cl_bytes=$(($(cat "/sys/block/${CLONE_SOURCE##*/}/size") * 512))
    cl_region_bytes=$((CLONE_REGION * 512))
    dd if=/dev/urandom of="$CLONE_SOURCE" bs=1M count=$((cl_bytes >> 20)) status=none
    sync
    dd if="$CLONE_SOURCE" of=/tmp/cl-expect.img bs=1M status=none
    cl_src=$(cl_sha "$CLONE_SOURCE")
    cl_fact "clone-source-sha256 $cl_src"

    cl_check "cowrt dm activate --kind clone --no-hydration (blank metadata)" \
        cl_activate --no-hydration
    cat /tmp/cl.out
    [ "$CL_OK" = yes ] || return "$CLONE_FAILS"
    cl_status created
    cl_same "status right after activation: nothing hydrated" "$(cl_hydrated)" \
        "0/$((cl_bytes / cl_region_bytes))"
    cl_same "the clone reads as the source before any write" \
        "$(cl_sha "/dev/mapper/$CLONE_NAME")" "$cl_src"

    cl_write "/dev/mapper/$CLONE_NAME" $((3 * cl_region_bytes)) "$cl_region_bytes" WHOLE
    cl_write "/dev/mapper/$CLONE_NAME" $((10 * cl_region_bytes + 4096)) 4096 PART
    cl_write "/dev/mapper/$CLONE_NAME" $((21 * cl_region_bytes - 8192)) 16384 ACROSS
    cl_want=$(cl_sha /tmp/cl-expect.img)
    sync
    echo 3 > /proc/sys/vm/drop_caches
    cl_same "the clone reads as the source with the writes (before hydration)" \
        "$(cl_sha "/dev/mapper/$CLONE_NAME")" "$cl_want"
    cl_status written
    cl_same "4 regions hydrated by the writes (whole, partial, two across)" \
        "$(cl_hydrated)" "4/$((cl_bytes / cl_region_bytes))"
    cowrt dm status "$CLONE_NAME" --format json > /tmp/cl.json || true
    if grep -q '"hydration_enabled": false' /tmp/cl.json \
        && grep -q '"hydrated_regions": 4' /tmp/cl.json; then
        cl_pass "cowrt dm status --format json: hydration off, 4 regions hydrated"
    else
        cat /tmp/cl.json
        cl_fail "cowrt dm status --format json does not say hydration off, 4 regions"
    fi

    cl_check "cowrt dm hydrate threshold 64" cowrt dm hydrate "$CLONE_NAME" threshold 64
    cl_check "cowrt dm hydrate batch-size 16" cowrt dm hydrate "$CLONE_NAME" batch-size 16
    case $(dmsetup status "$CLONE_NAME") in
        *"hydration_threshold 64 hydration_batch_size 16"*)
            cl_pass "the status line shows threshold 64 and batch size 16" ;;
        *) cl_fail "the status line lacks threshold 64 / batch size 16" ;;
    esac
    cl_t0=$(cut -d' ' -f1 /proc/uptime)
    cl_check "cowrt dm hydrate start --wait" cowrt dm hydrate "$CLONE_NAME" start --wait
    tail -n 4 /tmp/cl.out
    cl_fact "figure clone-hydrate-s $(awk -v a="$cl_t0" -v b="$(cut -d' ' -f1 /proc/uptime)" \
        'BEGIN {printf "%.1f", b - a}')"
    cl_status hydrated
    cl_same "every region hydrated" "$(cl_hydrated)" \
        "$((cl_bytes / cl_region_bytes))/$((cl_bytes / cl_region_bytes))"
    cowrt dm status "$CLONE_NAME" > /tmp/cl-status.txt 2>&1 || true
    if grep -q 'complete' /tmp/cl-status.txt; then
        cl_pass "cowrt dm status says complete"
    else
        cl_fail "cowrt dm status does not say complete"
    fi
    cl_same "the clone reads the same after hydration" \
        "$(cl_sha "/dev/mapper/$CLONE_NAME")" "$cl_want"
    cl_check "cowrt dm deactivate" cowrt dm deactivate "$CLONE_NAME"
    if dmsetup info "$CLONE_NAME" > /dev/null 2>&1; then
        cl_fail "the clone device is still there after deactivate"
    fi
    cl_got=$(head -c "$cl_bytes" "$CLONE_DEST" | sha256sum | cut -d' ' -f1)
    cl_same "the destination alone = the source with the writes" "$cl_got" "$cl_want"

    cl_check "reactivation over the kernel's metadata" cl_activate
    cl_status reactivated
    cl_same "reactivated: every region still hydrated" "$(cl_hydrated)" \
        "$((cl_bytes / cl_region_bytes))/$((cl_bytes / cl_region_bytes))"
    cl_same "reactivated: reads the same" "$(cl_sha "/dev/mapper/$CLONE_NAME")" "$cl_want"
    cl_check "cowrt dm deactivate (again)" cowrt dm deactivate "$CLONE_NAME"

    if CLONE_REGION=$((CLONE_REGION * 2)) cl_activate > /tmp/cl.out 2>&1; then
        cl_fail "a different --region-size over the kernel's metadata was accepted"
        cowrt dm deactivate "$CLONE_NAME" || true
    else
        cl_rc=$?
        if [ "$cl_rc" = 1 ] && grep -q 'the dm-clone metadata is for a' /tmp/cl.out; then
            cl_pass "a different --region-size is refused before the kernel (exit 1): $(cat /tmp/cl.out)"
        else
            cl_fail "a different --region-size: exit $cl_rc, $(cat /tmp/cl.out)"
        fi
    fi
    cl_refused "a message to a missing device" 2 "no device '$CLONE_NAME' is active" \
        cowrt dm hydrate "$CLONE_NAME" start
    cl_lin=$CLONE_NAME-linear
    if dmsetup create "$cl_lin" --table "0 8 linear $CLONE_DEST 0"; then
        cl_refused "a message to a linear device" 2 "device '$cl_lin' is 0 8 linear" \
            cowrt dm hydrate "$cl_lin" start
        dmsetup remove "$cl_lin" || true
    else
        cl_fail "setup of $cl_lin for the wrong-target check"
    fi
    if [ "$CLONE_FAILS" = 0 ]; then
        cl_pass "complete"
    fi
    return "$CLONE_FAILS"
}

# Run when executed (not when sourced by a scenario that calls cl_main itself).
case ${0##*/} in
    guest-clone.sh) cl_main ;;
esac

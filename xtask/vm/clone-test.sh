#!/usr/bin/env bash
# The real kernel (dm-clone in Linux 6.12 under qemu) accepts the dm-clone
# metadata our tools write, and our tools read exactly what the kernel wrote:
#
#   make     mkcow --kind clone formats the metadata of three geometries
#            (4 KiB regions over three array blocks, 64 KiB regions, 1 MiB
#            regions with a partial last region); cowcheck and cowdump read
#            each fresh image; the sources are filled with a pattern that
#            differs in every 4 KiB block, the destinations are blank.
#   boot1    `cowrt dm activate --kind clone --no-hydration` loads each into
#            the kernel, which records the status, hydrates part of it by
#            writes and discards (geometry c: by the kernel's own hydration
#            to the end, `cowrt dm hydrate start --wait`), records the status
#            and the sha256 of the clone device (the user's data); `cowrt dm
#            deactivate` removes it.
#   host     cowcheck (clean) and cowdump (hydrated runs, region and metadata
#            figures) on the kernel's metadata against the pattern and the
#            status; copies damaged on purpose (superblock checksum, array
#            blocks) are repaired by cowrepair, with --source/--dest or
#            --lost-regions; cowrepair refuses to guess lost regions.
#   boot2    cowrt (its own check or the kernel's) and the kernel alone (the
#            raw table) refuse every damaged copy; cowrt activates every
#            repaired one; status and sha256 of the clone device recorded.
#   compare  every repaired metadata shows the user's data exactly as the
#            kernel showed it in boot 1, with the same hydrated count.
#
# Usage: ./clone-test.sh [all|prepare|make|boot1|host|boot2|compare]
# Normally run by `cargo xtask vm-test` after xtask/vm/run.sh. Environment:
# VM_DIR (default target/vm; cache/ and build/root are shared with run.sh and
# clone-fixtures.sh), TOOLS_SRC (the tools under test), VM_WAIT_CMD,
# VM_TIMEOUT (default 1800), CT_FORMAT (mkcow, the default; or kernel: blank
# metadata that the kernel formats on activation, for a build whose mkcow
# cannot make clone metadata yet: the mkcow checks then print SKIP lines).
#
# Every verdict is a `PASS ...` or `FAIL ...` line in
# VM_DIR/logs-clonetest/summary.txt. Exit status: 0 when every verdict is
# PASS, 1 when one failed, 2 on a setup problem.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"
vm_layout
BIN=$TOP/bin-clonetest
WORK=$TOP/work-clonetest
LOGS=$TOP/logs-clonetest
TOOLS_SRC=${TOOLS_SRC:-$WORKSPACE/target/release}
VM_TIMEOUT=${VM_TIMEOUT:-1800}
TOOLS=(mkcow cowdump cowcheck cowrepair cowrt)

SAY_TAG=clone-test
GUEST_DIR=$HERE/guest
VM_BASE=$BUILD/initramfs-clonetest.cpio.gz
VM_OUT_MIB=16
MADE_BY="mkcow's"
[[ ${CT_FORMAT:-mkcow} == kernel ]] && MADE_BY=blank

# Geometries: name, region sectors, target sectors, metadata MiB. a: 4 KiB
# regions, 67,584 of them = 1,056 bitset words = array blocks of 509, 509
# and 38 words; b: 64 KiB regions, 1,024 regions, one array block; c: 1 MiB
# regions over 40.5 MiB, the last region half a region.
GEOMETRIES=("a 8 540672 4" "b 128 131072 4" "c 2048 82944 4")

# Repairs: name, geometry, damaged block (sb, or array block N as `arrayN`),
# then the cowrepair arguments that decide the lost regions (SRC and DEST
# stand for the geometry's source and destination).
REPAIRS=("asb a sb --source SRC --dest DEST"
         "atail a array2 --source SRC --dest DEST"
         "amid a array1 --lost-regions unhydrated"
         "call c array0 --lost-regions hydrated")

prepare() {
    copy_tools "$BIN" "$TOOLS_SRC" "${TOOLS[@]}"
    say "tools under test copied from $TOOLS_SRC"
    fetch
    extract
    qemu_env
    local ko ir=$BUILD/initramfs-clonetest-root
    ko=$(dm_clone_ko)
    ir_clone "$ir" "$ko"
    ir_binary "$ir" "$BIN/cowrt" bin/cowrt
    ir_pack "$ir" "$VM_BASE"
    say "initramfs: $(du -h "$VM_BASE" | cut -f1) (kernel $KVER, $ko)"
}

# ------------------------------------------------------------- verdicts -----

# Verdicts of a step go to LOGS/verdicts-STEP.txt (rewritten by each run of
# the step); the summary is their concatenation.
VERDICTS=/dev/null
FAILS=0
HOSTLOG=/dev/null

verdict() { # PASS|FAIL TEXT
    echo "$1 $2" | tee -a "$VERDICTS" >&2
    [[ $1 == PASS ]] || FAILS=$((FAILS + 1))
}

check() { # WHAT GOT WANT
    if [[ -n $3 && $2 == "$3" ]]; then
        verdict PASS "$1"
    else
        verdict FAIL "$1: got '$2', want '$3'"
    fi
}

# run_ok WHAT CMD...: PASS when CMD exits 0; command, output and exit status
# go to HOSTLOG, the output also to /tmp-like LOGS/last.out.
run_ok() {
    local what=$1 rc=0
    shift
    run_logged "$what" "$@" || rc=$?
    if ((rc == 0)); then verdict PASS "$what"; else verdict FAIL "$what (exit $rc: $(tail -n 2 "$LOGS/last.out" | tr '\n' ' '))"; fi
}

# run_refused WHAT TEXT CMD...: PASS when CMD exits non-zero and says TEXT.
run_refused() {
    local what=$1 text=$2 rc=0
    shift 2
    run_logged "$what" "$@" || rc=$?
    if ((rc != 0)) && grep -qF -- "$text" "$LOGS/last.out"; then
        verdict PASS "$what (exit $rc: $(head -n 1 "$LOGS/last.out"))"
    else
        verdict FAIL "$what: exit $rc, output lacks '$text': $(head -n 3 "$LOGS/last.out" | tr '\n' ' ')"
    fi
}

run_logged() {
    local what=$1 rc=0
    shift
    { echo "=== $what"; echo "\$ $*"; } >> "$HOSTLOG"
    "$@" > "$LOGS/last.out" 2>&1 || rc=$?
    cat "$LOGS/last.out" >> "$HOSTLOG"
    echo "--- exit $rc" >> "$HOSTLOG"
    return "$rc"
}

begin_step() { # STEP
    VERDICTS=$LOGS/verdicts-$1.txt
    HOSTLOG=$LOGS/$1.log
    : > "$VERDICTS"
    : > "$HOSTLOG"
    FAILS=0
}

# ----------------------------------------------------------------- data -----

# u32 FILE OFFSET / u64 FILE OFFSET: little-endian integers.
u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
u64() { od -An -tu8 -j "$2" -N8 "$1" | tr -d ' '; }

# array_block META INDEX: the block holding array block INDEX of the bitset,
# read from the superblock (bitset root at byte 188) and the array's B-tree
# root, which must be a leaf (every geometry here has at most 252 blocks).
array_block() {
    local meta=$1 i=$2 root flags nr max
    root=$(u64 "$meta" 188)
    flags=$(u32 "$meta" $((root * 4096 + 4)))
    nr=$(u32 "$meta" $((root * 4096 + 16)))
    max=$(u32 "$meta" $((root * 4096 + 20)))
    [[ $flags == 2 && $i -lt $nr ]] || die "$meta: bitset root $root is not a leaf holding index $i"
    u64 "$meta" $((root * 4096 + 32 + max * 8 + i * 8))
}

# damage META WHAT: sb = the superblock's checksum; arrayN = 16 bytes in the
# middle of array block N's words (its checksum no longer matches).
damage() {
    local meta=$1 what=$2 block off
    case $what in
        sb) block=0 off=0 ;;
        array*) block=$(array_block "$meta" "${what#array}") off=2048 ;;
        *) die "unknown damage '$what'" ;;
    esac
    printf '\xa5\x5a\xa5\x5a\xa5\x5a\xa5\x5a\xa5\x5a\xa5\x5a\xa5\x5a\xa5\x5a' \
        | dd of="$meta" bs=1 seek=$((block * 4096 + off)) count=$((off ? 16 : 4)) \
             conv=notrunc status=none
    echo "$block"
}

geometry() { # NAME -> "region target meta"
    local g n r t m
    for g in "${GEOMETRIES[@]}"; do
        read -r n r t m <<< "$g"
        [[ $n == "$1" ]] && { echo "$r $t $m"; return; }
    done
    die "unknown geometry '$1'"
}

# dump_field JSON FILTER: one value of a cowdump JSON document.
dump_field() { jq -r "$2" "$1"; }

# used_of JSON: "allocated/total" metadata blocks of a cowdump JSON document.
used_of() {
    jq -r '"\(.space_map.nr_allocated)/\(.space_map.nr_blocks)"' "$1" 2>/dev/null || true
}

# runs_of JSON: the hydrated runs of a cowdump JSON document, `start count` lines.
runs_of() { jq -r '.hydrated[] | "\(.start) \(.count)"' "$1"; }

# status_field RESULTS DEVICE LABEL N: field N of a recorded status line
# (`0 LEN clone 8 USED/TOTAL REGION HYDRATED/REGIONS ...` is fields 1..7).
status_field() {
    awk -v d="$2" -v l="$3" -v n="$4" '$1 == "status" && $2 == d && $3 == l {print $(n + 3)}' "$1"
}

# status_figures RESULTS DEVICE LABEL: fields 4..7 of a recorded status line
# (block size, used/total metadata blocks, region size, hydrated/regions), as
# cowdump's `status` prints them.
status_figures() {
    awk -v d="$2" -v l="$3" '$1 == "status" && $2 == d && $3 == l {print $7, $8, $9, $10}' "$1"
}

# --------------------------------------------------------------- steps ------

make_metadata() {
    begin_step make
    rm -rf "$WORK" "$LOGS"/dump-*.json
    mkdir -p "$LOGS"
    mkdir -p "$WORK"
    local g name region target meta json
    for g in "${GEOMETRIES[@]}"; do
        read -r name region target meta <<< "$g"
        pattern_file "$WORK/src_$name.img" CLONE-SRC $((target / 8))
        truncate -s $((target * 512)) "$WORK/dest_$name.img"
        if [[ ${CT_FORMAT:-mkcow} == kernel ]]; then
            truncate -s "${meta}M" "$WORK/made_$name.img"
            echo "SKIP $name: mkcow --kind clone (CT_FORMAT=kernel: the kernel formats blank metadata)" \
                | tee -a "$VERDICTS" >&2
            continue
        fi
        run_ok "$name: mkcow --kind clone --region-size ${region}s --target-size ${target}s" \
            "$BIN/mkcow" --kind clone --region-size "${region}s" --target-size "${target}s" \
            --size "${meta}M" "$WORK/meta_$name.img"
        cp "$WORK/meta_$name.img" "$WORK/made_$name.img"
        run_ok "$name: cowcheck on mkcow's metadata" "$BIN/cowcheck" "$WORK/made_$name.img"
        json=$LOGS/dump-made-$name.json
        "$BIN/cowdump" --format json "$WORK/made_$name.img" > "$json" 2>> "$HOSTLOG" || true
        check "$name: cowdump of mkcow's metadata: kind" "$(dump_field "$json" .kind)" clone
        check "$name: cowdump of mkcow's metadata: region size" "$(dump_field "$json" .region_size)" "$region"
        check "$name: cowdump of mkcow's metadata: target size" "$(dump_field "$json" .target_size)" "$target"
        check "$name: cowdump of mkcow's metadata: regions" "$(dump_field "$json" .nr_regions)" \
            $(((target + region - 1) / region))
        check "$name: cowdump of mkcow's metadata: nothing hydrated" "$(dump_field "$json" .hydrated_regions)" 0
    done
    sha256sum "$WORK"/made_*.img > "$LOGS/made.sha256"
    [[ -s $VERDICTS ]] || verdict FAIL "make: no geometry was made"
    ((FAILS == 0))
}

boot1() {
    qemu_env
    mkdir -p "$LOGS"
    local g name region target meta disks=() scen=$WORK/clone-test1.sh
    {
        echo "# generated by xtask/vm/clone-test.sh: the geometries"
        echo "CT_GEOMETRIES='$(printf '%s;' "${GEOMETRIES[@]}")'"
        cat "$GUEST_DIR/clone-test-lib.sh" "$GUEST_DIR/clone-test1.sh"
    } > "$scen"
    for g in "${GEOMETRIES[@]}"; do
        read -r name region target meta <<< "$g"
        [[ -f $WORK/made_$name.img ]] || die "no $WORK/made_$name.img: run the make step first"
        cp "$WORK/made_$name.img" "$WORK/meta_$name.img"
        truncate -s 0 "$WORK/dest_$name.img"
        truncate -s $((target * 512)) "$WORK/dest_$name.img"
        disks+=(meta_$name="$WORK/meta_$name.img" dest_$name="$WORK/dest_$name.img"
                src_$name="$WORK/src_$name.img:ro")
    done
    run_vm boot1 "$scen" "${disks[@]}"
}

host() {
    begin_step host
    local res=$LOGS/boot1/results.txt g name region target meta json want got
    [[ -f $res ]] || die "no boot 1 results ($res)"
    for g in "${GEOMETRIES[@]}"; do
        read -r name region target meta <<< "$g"
        local dev=clone_$name nr=$(((target + region - 1) / region))
        check "$name: cowrt dm activate --kind clone loads $MADE_BY metadata into the kernel" \
            "$(awk -v d="$dev" '$1 == "activate" && $2 == d {print $3}' "$res")" ok
        check "$name: cowrt's table is the target's length (the source's size)" \
            "$(awk -v d="$dev" '$1 == "table" && $2 == d {print $4}' "$res")" "$target"
        check "$name: kernel status right after activation: nothing hydrated" \
            "$(status_field "$res" "$dev" formatted 7)" "0/$nr"
        check "$name: kernel status: region size" "$(status_field "$res" "$dev" formatted 6)" "$region"
        json=$LOGS/dump-made-$name.json
        if [[ -f $json ]]; then
            check "$name: kernel's used/total metadata blocks = cowdump's of $MADE_BY metadata" \
                "$(status_field "$res" "$dev" formatted 5)" "$(used_of "$json")"
        fi

        run_ok "$name: cowcheck on the kernel's metadata after hydration" \
            "$BIN/cowcheck" "$WORK/meta_$name.img"
        json=$LOGS/dump-final-$name.json
        "$BIN/cowdump" --format json "$WORK/meta_$name.img" > "$json" 2>> "$HOSTLOG" || true
        awk -v g="$name" '$1 == "op" && $2 == g {$1 = $2 = ""; print}' "$res" \
            | hydrated_runs "$region" > "$LOGS/runs-want-$name.txt"
        runs_of "$json" > "$LOGS/runs-got-$name.txt" 2>> "$HOSTLOG" || true
        want=$(tr '\n' ' ' < "$LOGS/runs-want-$name.txt")
        check "$name: cowdump's hydrated runs = the kernel's writes ($want)" \
            "$(tr '\n' ' ' < "$LOGS/runs-got-$name.txt")" "$want"
        got=$(jq -r '"\(.hydrated_regions)/\(.nr_regions)"' "$json" 2>/dev/null || true)
        check "$name: cowdump's hydrated/regions = the kernel's status" \
            "$got" "$(status_field "$res" "$dev" final 7)"
        check "$name: cowdump's used/total metadata blocks = the kernel's status" \
            "$(used_of "$json")" "$(status_field "$res" "$dev" final 5)"
        check "$name: cowdump's status figures = the kernel's status line" \
            "$(jq -r .status "$json" 2>/dev/null || true)" "$(status_figures "$res" "$dev" final)"
    done

    local r rname what args dmg rep blk
    for r in "${REPAIRS[@]}"; do
        read -r rname name what args <<< "$r"
        read -r region target meta <<< "$(geometry "$name")"
        dmg=$WORK/dmg_$rname.img rep=$WORK/rep_$rname.img
        cp "$WORK/meta_$name.img" "$dmg"
        blk=$(damage "$dmg" "$what")
        echo "=== $rname: damaged $what (block $blk) of meta_$name" >> "$HOSTLOG"
        run_refused "$rname: cowcheck names the damaged $what (block $blk)" "checksum" \
            "$BIN/cowcheck" "$dmg"
        if [[ $what == array* ]]; then
            run_refused "$rname: cowrepair without a rule for the lost regions refuses" "lost" \
                "$BIN/cowrepair" --kind clone -i "$dmg" -o "$WORK/refused_$rname.img"
            [[ -e $WORK/refused_$rname.img ]] \
                && verdict FAIL "$rname: the refused repair left $WORK/refused_$rname.img" \
                || verdict PASS "$rname: the refused repair wrote nothing"
        fi
        args=${args//SRC/$WORK/src_$name.img}
        args=${args//DEST/$WORK/dest_$name.img}
        rm -f "$rep"
        # A repair that chose lost regions as told exits 3 (docs/cowrepair.md);
        # one that decided every region from the data exits 0.
        local want_rc=0 rc=0
        [[ $args == *--lost-regions* ]] && want_rc=3
        # shellcheck disable=SC2086
        run_logged "$rname: cowrepair" "$BIN/cowrepair" --kind clone -i "$dmg" -o "$rep" $args || rc=$?
        check "$rname: cowrepair --kind clone $(sed "s|$WORK/||g" <<< "$args") (exit status)" "$rc" "$want_rc"
        cp "$LOGS/last.out" "$LOGS/repair-$rname.txt"
        run_ok "$rname: cowcheck on the repaired metadata" "$BIN/cowcheck" "$rep"
        json=$LOGS/dump-rep-$rname.json
        "$BIN/cowdump" --format json "$rep" > "$json" 2>> "$HOSTLOG" || true
        check "$rname: the repaired hydrated runs = the kernel's" \
            "$(runs_of "$json" 2>/dev/null | tr '\n' ' ')" "$(tr '\n' ' ' < "$LOGS/runs-got-$name.txt")"
    done
    sha256sum "$WORK"/meta_*.img "$WORK"/dmg_*.img "$WORK"/rep_*.img > "$LOGS/before-boot2.sha256"
    say "host steps done: $FAILS failed (log: $HOSTLOG)"
    ((FAILS == 0))
}

boot2() {
    qemu_env
    local r rname name what args region target meta disks=() seen=" " scen=$WORK/clone-test2.sh
    {
        echo "# generated by xtask/vm/clone-test.sh: the repaired metadata and their geometries"
        printf "CT_REPAIRS='"
        for r in "${REPAIRS[@]}"; do
            read -r rname name what args <<< "$r"
            read -r region target meta <<< "$(geometry "$name")"
            [[ -f $WORK/rep_$rname.img ]] && printf '%s %s %s %s;' "$rname" "$name" "$region" "$target"
        done
        echo "'"
        cat "$GUEST_DIR/clone-test-lib.sh" "$GUEST_DIR/clone-test2.sh"
    } > "$scen"
    for r in "${REPAIRS[@]}"; do
        read -r rname name what args <<< "$r"
        [[ -f $WORK/rep_$rname.img ]] || continue
        disks+=(rep_$rname="$WORK/rep_$rname.img" dmg_$rname="$WORK/dmg_$rname.img")
        if [[ $seen != *" $name "* ]]; then
            disks+=(dest_$name="$WORK/dest_$name.img" src_$name="$WORK/src_$name.img:ro")
            seen="$seen$name "
        fi
    done
    run_vm boot2 "$scen" "${disks[@]}"
}

compare() {
    begin_step compare
    local r1=$LOGS/boot1/results.txt r2=$LOGS/boot2/results.txt r rname name what args
    [[ -f $r1 && -f $r2 ]] || die "missing guest results ($r1, $r2)"
    for r in "${REPAIRS[@]}"; do
        read -r rname name what args <<< "$r"
        check "$rname: cowrt dm activate refuses the damaged copy ($what)" \
            "$(awk -v d="dmg_$rname" '$1 == "activate" && $2 == d {print $3}' "$r2")" refused
        check "$rname: the kernel refuses the damaged copy ($what) as a raw table" \
            "$(awk -v d="raw_$rname" '$1 == "kernel" && $2 == d {print $3}' "$r2")" refused
        check "$rname: cowrt dm activate loads the repaired metadata into the kernel" \
            "$(awk -v d="rep_$rname" '$1 == "activate" && $2 == d {print $3}' "$r2")" ok
        check "$rname: the kernel's hydrated/regions = boot 1's" \
            "$(status_field "$r2" "rep_$rname" active 7)" "$(status_field "$r1" "clone_$name" final 7)"
        check "$rname: the clone reads back the user's data (sha256 = boot 1's)" \
            "$(awk -v d="rep_$rname" '$1 == "sha256" && $2 == d && $3 == "final" {print $4}' "$r2")" \
            "$(awk -v d="clone_$name" '$1 == "sha256" && $2 == d && $3 == "final" {print $4}' "$r1")"
    done
    ((FAILS == 0))
}

summary() {
    local sum=$LOGS/summary.txt
    {
        echo "== dm-clone: kernel truth (xtask/vm/clone-test.sh)"
        cat "$LOGS"/verdicts-{make,host,compare}.txt 2>/dev/null || true
        echo "== kernel status lines"
        grep -hE '^status ' "$LOGS/boot1/results.txt" "$LOGS/boot2/results.txt" 2>/dev/null || true
        echo "== wall times"
        cat "$LOGS"/boot1/wall.txt "$LOGS"/boot2/wall.txt 2>/dev/null || true
    } > "$sum"
    cat "$sum"
    if grep -q '^FAIL' "$sum" || ! grep -q '^PASS' "$sum"; then say "RESULT: FAIL"; return 1; fi
    if grep -q '^SKIP' "$sum"; then say "RESULT: PASS with SKIP lines (not covered)"; return 0; fi
    for f in make host compare; do
        [[ -s $LOGS/verdicts-$f.txt ]] || { say "RESULT: FAIL (step $f has no verdicts)"; return 1; }
    done
    say "RESULT: PASS"
}

main() {
    local what=${1:-all}
    mkdir -p "$LOGS"
    case $what in
        prepare) prepare ;;
        make) make_metadata ;;
        boot1) boot1 ;;
        host) host ;;
        boot2) boot2 ;;
        compare) compare || true; summary ;;
        all)
            prepare
            make_metadata || say "mkcow steps had failures"
            boot1 || say "boot 1 scenario failed"
            host || say "host steps had failures; booting the repairs that exist"
            boot2 || say "boot 2 scenario failed"
            compare || true
            summary
            ;;
        *) die "unknown step '$what' (all|prepare|make|boot1|host|boot2|compare)" ;;
    esac
}

main "$@"

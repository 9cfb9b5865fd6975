#!/usr/bin/env bash
# Kernel-made dm-clone metadata fixtures (testdata/kernel-clone/): one boot
# of Linux 6.12 under qemu in which dm-clone formats blank metadata for
# several geometries and hydrates part of each with a recorded pattern
# (xtask/vm/guest/clone-fixtures.sh), then the host keeps, per geometry, the
# metadata right after the format and after the final removal, the status
# lines, and a manifest with the hydrated regions derived from the pattern.
#
# Usage: ./clone-fixtures.sh [all|prepare|boot|fixtures]   (default: all)
#   prepare   fetch + extract the Debian packages, build dm-clone.ko (once),
#             build the initramfs
#   boot      the VM run (results under VM_DIR/logs-clone/)
#   fixtures  write testdata/kernel-clone/ from the last boot's results
#
# Normally run through `cargo xtask vm-clone-fixtures`. Environment: VM_DIR
# (default target/vm; cache/ and build/root are shared with vm-test),
# FIXTURES (default testdata/kernel-clone of the workspace), VM_WAIT_CMD,
# VM_TIMEOUT (default 1800).
#
# Exit status: 0 when every geometry's status agrees with the pattern and the
# fixtures are written, 1 when a check failed, 2 on a setup problem.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORKSPACE=$(cd "$HERE/../.." && pwd)
TOP=${VM_DIR:-$WORKSPACE/target/vm}
mkdir -p "$TOP"
TOP=$(cd "$TOP" && pwd)
CACHE=$TOP/cache/debs
BUILD=$TOP/build
ROOT=$BUILD/root
WORK=$TOP/work-clone
LOGS=$TOP/logs-clone
FIXTURES=${FIXTURES:-$WORKSPACE/testdata/kernel-clone}
VM_TIMEOUT=${VM_TIMEOUT:-1800}

KERNEL_META=linux-image-6.12-amd64
PKGS=(busybox-static dmsetup libdevmapper1.02.1
      qemu-system-x86 qemu-system-common qemu-system-data seabios
      libcapstone4 libfdt1 libibverbs1 libpmem1 librdmacm1 libslirp0 libvdeplug2
      libnl-3-200 libnl-route-3-200 libdaxctl1 libndctl6 libexecs0)

SAY_TAG=clone-fixtures
GUEST_DIR=$HERE/guest
VM_BASE=$BUILD/initramfs-clone.cpio.gz
VM_OUT_MIB=16
# shellcheck source=common.sh
. "$HERE/common.sh"

# Geometries: name, metadata MiB, target bytes (source and destination are
# sparse files of that size). The region sizes are in the guest scenario.
GEOMETRIES=("a 4 $((512 << 20))" "b 4 $((64 << 20))" "c 8 $((32 << 30))" "d 4 $((7 << 29))")

prepare() {
    fetch
    extract
    qemu_env
    local ko
    ko=$(VM_DIR=$TOP KVER=$KVER bash "$HERE/build-dm-clone.sh" | tail -n1)
    [[ -f $ko ]] || die "no dm-clone.ko (xtask/vm/build-dm-clone.sh)"
    local ir=$BUILD/initramfs-clone-root
    ir_base "$ir"
    ir_modules "$ir" drivers/block/virtio_blk crypto/crc32c_generic lib/libcrc32c \
        drivers/md/dm-mod drivers/md/dm-bufio drivers/md/persistent-data/dm-persistent-data
    ir_module_file "$ir" "$ko"
    ir_binary "$ir" "$ROOT/sbin/dmsetup" sbin/dmsetup
    ir_pack "$ir" "$VM_BASE"
    say "initramfs: $(du -h "$VM_BASE" | cut -f1) (kernel $KVER, $ko)"
}

boot() {
    qemu_env
    rm -rf "$WORK"
    mkdir -p "$WORK" "$LOGS"
    local g name meta size disks=()
    for g in "${GEOMETRIES[@]}"; do
        read -r name meta size <<< "$g"
        truncate -s "${meta}M" "$WORK/meta_$name.img"
        truncate -s "$size" "$WORK/dest_$name.img" "$WORK/src_$name.img"
        disks+=(meta_$name="$WORK/meta_$name.img" dest_$name="$WORK/dest_$name.img"
                src_$name="$WORK/src_$name.img")
    done
    run_vm clone "$GUEST_DIR/clone-fixtures.sh" "${disks[@]}"
}

# hydrated_runs REGION_SECTORS: reads `write|discard OFFSET
# LENGTH` lines; prints the hydrated regions as `start count` runs. A write
# hydrates every region it touches, a discard every region it covers whole.
hydrated_runs() {
    awk -v rs="$1" '
        function mark(a, b,   r) { for (r = a; r <= b; r++) h[r] = 1 }
        {
            s = $2 / 512; e = ($2 + $3) / 512
            if ($1 == "write") mark(int(s / rs), int((e - 1) / rs))
            else {
                a = int((s + rs - 1) / rs); b = int(e / rs) - 1
                mark(a, b)
            }
        }
        END {
            n = 0
            for (r in h) keys[n++] = r + 0
            # insertion sort: a few dozen regions at most
            for (i = 1; i < n; i++) { k = keys[i]; for (j = i - 1; j >= 0 && keys[j] > k; j--) keys[j + 1] = keys[j]; keys[j + 1] = k }
            for (i = 0; i < n; i++) {
                if (i > 0 && keys[i] == keys[i - 1] + 1) { cnt++ } else {
                    if (i > 0) print start, cnt
                    start = keys[i]; cnt = 1
                }
            }
            if (n > 0) print start, cnt
        }'
}

FAILS=0
check() { # WHAT GOT WANT
    if [[ $2 == "$3" ]]; then
        say "PASS $1"
    else
        say "FAIL $1: got '$2', want '$3'"
        FAILS=$((FAILS + 1))
    fi
}

fixtures() {
    qemu_env
    local res=$LOGS/clone/results.txt g name meta size region target dir runs hyd nr
    [[ -f $res ]] || die "no guest results ($res): run the boot first"
    [[ $(cat "$LOGS/clone/rc") == 0 ]] || die "the guest scenario failed (see $LOGS/clone-serial.log)"
    local qv bv dv
    qv=$("$QEMU" --version | head -n1)
    bv=$(dpkg-deb -f "$(ls "$CACHE"/busybox-static_*.deb | head -n1)" Version)
    dv=$(dpkg-deb -f "$(ls "$CACHE"/dmsetup_*.deb | head -n1)" Version)
    local kpkg kver
    kpkg=$(ls "$CACHE"/linux-image-6.12.*-amd64_*.deb | head -n1)
    kver=$(dpkg-deb -f "$kpkg" Version)
    for g in "${GEOMETRIES[@]}"; do
        read -r name meta size <<< "$g"
        read -r _ _ region target < <(awk -v g="$name" '$1 == "geometry" && $2 == g' "$res")
        nr=$(((target + region - 1) / region))
        runs=$(awk -v g="$name" '$1 == "op" && $2 == g {print $3, $4, $5}' "$res" \
            | hydrated_runs "$region")
        hyd=$(awk '{n += $2} END {print n + 0}' <<< "$runs")
        dir=$(printf '%s-region%s-%sregions' "$name" "$region" "$nr")
        rm -rf "${FIXTURES:?}/$dir"
        mkdir -p "$FIXTURES/$dir"
        for label in formatted final; do
            gzip -dc "$LOGS/clone/$name/meta-$label.img.gz" | xz -9e > "$FIXTURES/$dir/meta-$label.img.xz"
        done
        awk -v d="clone_$name" '$1 == "status" && $2 == d {$1 = $2 = ""; sub(/^  /, ""); print}' \
            "$res" > "$FIXTURES/$dir/status.txt"
        local st_f st_x st_r
        st_f=$(awk '$1 == "formatted" {print $8}' "$FIXTURES/$dir/status.txt")
        st_x=$(awk '$1 == "final" {print $8}' "$FIXTURES/$dir/status.txt")
        st_r=$(awk '$1 == "reactivated" {print $8}' "$FIXTURES/$dir/status.txt")
        check "$dir: formatted, nothing hydrated" "$st_f" "0/$nr"
        check "$dir: hydrated as the pattern says" "$st_x" "$hyd/$nr"
        check "$dir: reactivated reads the same" "$st_r" "$hyd/$nr"
        {
            echo "# dm-clone metadata written by a real Linux kernel (generated by"
            echo "# xtask/vm/clone-fixtures.sh; do not edit). See ../README.md."
            echo "name: $dir"
            echo "kernel:"
            echo "  release: \"$KVER\""
            echo "  package_version: \"$kver\""
            echo "  dm_clone: \"built out of tree from linux-source-6.12 (xtask/vm/build-dm-clone.sh)\""
            echo "environment:"
            echo "  qemu: \"$qv\""
            echo "  dmsetup: \"$dv\""
            echo "  busybox: \"$bv\""
            echo "geometry:"
            echo "  region_sectors: $region"
            echo "  target_sectors: $target"
            echo "  nr_regions: $nr"
            echo "  bitset_words: $(((nr + 63) / 64))"
            echo "  metadata_bytes: $((meta << 20))"
            echo "  metadata_block_sectors: 8"
            echo "table: \"0 $target clone <meta> <dest> <source> $region 1 no_hydration\""
            echo "ops:"
            awk -v g="$name" '$1 == "op" && $2 == g {printf "  - {op: %s, offset: %s, length: %s}\n", $3, $4, $5}' "$res"
            echo "hydrated_regions: $hyd"
            echo "hydrated:"
            awk '{printf "  - {start: %s, count: %s}\n", $1, $2}' <<< "$runs"
            echo "status:"
            awk '{l = $1; $1 = ""; sub(/^ /, ""); printf "  %s: \"%s\"\n", l, $0}' "$FIXTURES/$dir/status.txt"
            echo "metadata_sha256:"
            awk -v g="$name" '$1 == "meta-sha256" && $2 == g {printf "  %s: %s\n", $3, $4}' "$res"
        } > "$FIXTURES/$dir/manifest.yaml"
        say "$dir: $(du -b "$FIXTURES/$dir"/*.xz | awk '{n += $1} END {print n}') bytes of xz"
    done
    say "fixtures in $FIXTURES: $FAILS failed checks"
    ((FAILS == 0))
}

main() {
    case ${1:-all} in
        prepare) prepare ;;
        boot) boot ;;
        fixtures) fixtures ;;
        all) prepare; boot || die "the boot failed"; fixtures ;;
        *) die "unknown step '$1' (all|prepare|boot|fixtures)" ;;
    esac
}

main "$@"

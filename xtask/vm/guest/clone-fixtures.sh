# Guest scenario of xtask/vm/clone-fixtures.sh: the kernel's own dm-clone
# metadata for several geometries (sourced by /init after /lib.sh, under
# set -eu -o pipefail).
#
# For each geometry G (disks meta_G, dest_G, src_G: blank metadata, sparse
# destination and source of the target's size):
#   1. dmsetup create clone_G with `no_hydration` (the kernel formats the
#      blank metadata and commits); status `formatted`; the metadata device
#      saved as /out/G/meta-formatted.img.gz;
#   2. the hydration pattern: full-region writes, partial writes, writes
#      across a region boundary, whole-region discards (every one recorded as
#      `op G write|discard OFFSET LENGTH`, bytes);
#   3. status `final`; remove (the kernel commits); the metadata saved as
#      /out/G/meta-final.img.gz;
#   4. reactivation over it: status `reactivated`; remove; the sha256 of the
#      metadata after that second removal (`meta-sha256 G reactivated`).
#
# Facts go to /out/results.txt: `geometry G REGION_SECTORS TARGET_SECTORS`,
# `op ...`, `status clone_G LABEL LINE`, `meta-sha256 G LABEL HASH`.

# cf_save G LABEL: the metadata device, read past the page cache, gzip'd.
cf_save() {
    mkdir -p "/out/$1"
    dd if="$CF_META" bs=1M iflag=direct status=none | gzip -1 > "/out/$1/meta-$2.img.gz"
    h=$(dd if="$CF_META" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1)
    res "meta-sha256 $1 $2 $h"
    log "metadata of $1 saved ($2): $h"
}

# cf_create: the clone device over the geometry's three disks.
cf_create() {
    mk "clone_$CF_G" "0 $CF_TARGET clone $CF_META $CF_DEST $CF_SRC $CF_REGION 1 no_hydration"
}

# cf_begin G REGION_SECTORS TARGET_SECTORS: activate over blank metadata.
cf_begin() {
    CF_G=$1 CF_REGION=$2 CF_TARGET=$3
    eval "CF_META=\$D_meta_$1 CF_DEST=\$D_dest_$1 CF_SRC=\$D_src_$1"
    note "geometry $1: region $2 sectors, target $3 sectors"
    res "geometry $1 $2 $3"
    cf_create
    st "clone_$1" formatted
    cf_save "$1" formatted
}

# cf_write OFFSET LENGTH / cf_discard OFFSET LENGTH: on clone_$CF_G.
cf_write() { clone_write "$CF_G" CLNW "$@"; }
cf_discard() { clone_discard "$CF_G" "$@"; }

# cf_end: status, remove, save; reactivate, status, remove.
cf_end() {
    st "clone_$CF_G" final
    rm_dm "clone_$CF_G"
    cf_save "$CF_G" final
    cf_create
    st "clone_$CF_G" reactivated
    rm_dm "clone_$CF_G"
    h=$(dd if="$CF_META" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1)
    res "meta-sha256 $CF_G reactivated $h"
}

KIB=1024
MIB=$((1024 * KIB))
GIB=$((1024 * MIB))

# (a) 4 KiB regions, 131,072 regions: 2,048 bitset words = 4 full array
# blocks (509 words each) + a 12-word tail. Writes touch array blocks 0, 1
# and the tail; blocks 2 and 3 stay as formatted.
R=4096
cf_begin a 8 $((512 * MIB / 512))
cf_write 0 $R                           # region 0, whole
cf_write $((5 * R + 1536)) 512          # region 5, partial
cf_write $((100 * R)) $((4 * R))        # regions 100..103, whole, one bio
cf_write $((300 * R - 2048)) 4096       # regions 299, 300: across the boundary
cf_discard $((200 * R)) $((64 * R))     # regions 200..263
cf_write $((40000 * R)) $R              # region 40000 (array block 1), whole
cf_write $((131071 * R + 1024)) 1024    # region 131071 (the last), partial
cf_end

# (b) 64 KiB regions, 64 MiB target: 1,024 regions, 16 words, one array block.
R=$((64 * KIB))
cf_begin b 128 $((64 * MIB / 512))
cf_write $((2 * R)) $R                  # region 2, whole
cf_write $((7 * R + 8192)) 4096         # region 7, partial
cf_write $((10 * R - 4096)) 8192        # regions 9, 10: across the boundary
cf_discard $((20 * R)) $((4 * R))       # regions 20..23
cf_write $((1023 * R + 61440)) 4096     # region 1023 (the last), partial
cf_end

# (c) 4 KiB regions, 32 GiB target: 8,388,608 regions, 131,072 words =
# 257 full array blocks + a 259-word tail (258 > 252 entries: the array's
# B-tree has internal nodes).
R=4096
cf_begin c 8 $((32 * GIB / 512))
cf_write 0 $R                           # region 0 (array block 0), whole
cf_write $((8200000 * R + 512)) 512     # region 8,200,000 (block 251), partial
cf_write $((8306880 * R)) $((2 * R))    # regions 8,306,880..881 (block 255)
cf_discard $((4000000 * R)) $((64 * R)) # regions 4,000,000..4,000,063 (block 122)
cf_write $((8388607 * R)) $R            # region 8,388,607 (the last, tail block)
cf_end

# (d) 1 GiB regions (the kernel's maximum), 3.5 GiB target: 4 regions, the
# last one half a region. Writes would copy a whole GiB under TCG: only
# whole-region discards hydrate here.
R=$GIB
cf_begin d 2097152 $((7 * GIB / 2 / 512))
cf_discard $R $R                        # region 1
cf_discard $((2 * R)) $R                # region 2
cf_end

dmsetup ls
log 'clone fixtures done'

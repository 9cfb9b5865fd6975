# Boot 1 of xtask/vm/clone-test.sh: the kernel activates metadata made by
# `mkcow --kind clone` and hydrates part of it (sourced by /init after
# /lib.sh, under set -eu -o pipefail; CT_GEOMETRIES comes from the host:
# `name region_sectors target_sectors metadata_MiB;...`).
#
# For each geometry G (disks meta_G, dest_G, src_G): activate with
# no_hydration (`activate clone_G ok|refused`), status `formatted`, the
# geometry's pattern of writes and discards (each recorded as `op G
# write|discard OFFSET LENGTH`; `op G all N` when the kernel's own hydration
# ran to the end), status `final`, the sha256 of the clone device (`sha256
# clone_G final HASH`: the user's data), remove (the kernel commits).

# ct_write OFFSET LENGTH: one O_DIRECT bio of LENGTH bytes at byte OFFSET.
ct_write() {
    fill CLONE-W "$(($1 / 4096))" "$2"
    dd if=/tmp/buf of="/dev/mapper/clone_$CT_G" bs="$2" count=1 seek="$1" \
        oflag=direct,seek_bytes conv=notrunc status=none
    res "op $CT_G write $1 $2"
    log "write clone_$CT_G at $1, $2 bytes"
}

# ct_discard OFFSET LENGTH: discard LENGTH bytes at byte OFFSET.
ct_discard() {
    blkdiscard -o "$1" -l "$2" "/dev/mapper/clone_$CT_G"
    res "op $CT_G discard $1 $2"
    log "discard clone_$CT_G at $1, $2 bytes"
}

# ct_hydrate_all NR_REGIONS: the kernel's background hydration, until every
# region is hydrated (at most 10 minutes).
ct_hydrate_all() {
    dmsetup message "clone_$CT_G" 0 enable_hydration
    i=0
    while [ "$(dmsetup status "clone_$CT_G" | cut -d' ' -f7)" != "$1/$1" ]; do
        i=$((i + 1))
        [ "$i" -lt 1200 ] || { log "clone_$CT_G: hydration did not finish"; return 1; }
        sleep 0.5
    done
    dmsetup message "clone_$CT_G" 0 disable_hydration
    res "op $CT_G all $1"
    log "clone_$CT_G: every region hydrated by the kernel"
}

# a: 4 KiB regions; writes in array blocks 0 and 2 only (block 1 stays as
# mkcow wrote it); no discards (a discarded region's destination is not
# written, so the data cannot tell it is hydrated).
ct_ops_a() {
    R=4096
    ct_write 0 $R                           # region 0, whole
    ct_write $((5 * R + 1536)) 512          # region 5, partial
    ct_write $((100 * R)) $((4 * R))        # regions 100..103, one bio
    ct_write $((300 * R - 2048)) 4096       # regions 299, 300: across the boundary
    ct_write $((66000 * R)) $R              # region 66000 (array block 2), whole
    ct_write $((67583 * R + 1024)) 1024     # region 67583 (the last), partial
}

# b: 64 KiB regions, writes and discards.
ct_ops_b() {
    R=$((64 * 1024))
    ct_write $((2 * R)) $R                  # region 2, whole
    ct_write $((7 * R + 8192)) 4096         # region 7, partial
    ct_write $((10 * R - 4096)) 8192        # regions 9, 10: across the boundary
    ct_discard $((20 * R)) $((4 * R))       # regions 20..23
    ct_write $((1023 * R + 61440)) 4096     # region 1023 (the last), partial
}

# c: 1 MiB regions, the last one half a region; a partial write, then the
# kernel hydrates everything.
ct_ops_c() {
    R=$((1024 * 1024))
    ct_write $((3 * R + 4096)) 4096         # region 3, partial
    ct_write $((40 * R)) 4096               # region 40 (the last, half a region)
    ct_hydrate_all 41
}

ct_list "$CT_GEOMETRIES"
while read -r CT_G region target meta <&3; do
    eval "meta=\$D_meta_$CT_G dest=\$D_dest_$CT_G src=\$D_src_$CT_G"
    note "geometry $CT_G: region $region sectors, target $target sectors"
    if ct_activate "clone_$CT_G" "$meta" "$dest" "$src" "$region" "$target"; then
        st "clone_$CT_G" formatted
        "ct_ops_$CT_G"
        st "clone_$CT_G" final
        hs "clone_$CT_G" final
        rm_dm "clone_$CT_G"
    fi
done 3< /tmp/ct.list

dmsetup ls
log 'clone-test boot 1 done'

# Boot 1 of xtask/vm/clone-test.sh: `cowrt dm activate --kind clone` loads
# metadata made by `mkcow --kind clone` into the kernel, which hydrates part
# of it (sourced by /init after
# /lib.sh, under set -eu -o pipefail; CT_GEOMETRIES comes from the host:
# `name region_sectors target_sectors metadata_MiB;...`).
#
# For each geometry G (disks meta_G, dest_G, src_G): activate with
# no_hydration (`activate clone_G ok|refused`), status `formatted`, the
# geometry's pattern of writes and discards (each recorded as `op G
# write|discard OFFSET LENGTH`; `op G all N` when the kernel's own hydration
# ran to the end), status `final`, the sha256 of the clone device (`sha256
# clone_G final HASH`: the user's data), remove (the kernel commits).

# ct_write OFFSET LENGTH / ct_discard OFFSET LENGTH: on clone_$CT_G.
ct_write() { clone_write "$CT_G" CLONE-W "$@"; }
ct_discard() { clone_discard "$CT_G" "$@"; }

# ct_hydrate_all NR_REGIONS: the kernel's background hydration through
# `cowrt dm hydrate start --wait`, until every region is hydrated (at most
# 10 minutes), then `stop`.
ct_hydrate_all() {
    cowrt dm hydrate --wait --timeout 600 "clone_$CT_G" start
    cowrt dm hydrate "clone_$CT_G" stop
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
while read -r CT_G region _ _ <&3; do
    eval "meta=\$D_meta_$CT_G dest=\$D_dest_$CT_G src=\$D_src_$CT_G"
    note "geometry $CT_G: region $region sectors"
    if ct_activate "clone_$CT_G" "$meta" "$dest" "$src" "$region"; then
        st "clone_$CT_G" formatted
        "ct_ops_$CT_G"
        st "clone_$CT_G" final
        hs "clone_$CT_G" final
        ct_remove "clone_$CT_G"
    fi
done 3< /tmp/ct.list

dmsetup ls
log 'clone-test boot 1 done'

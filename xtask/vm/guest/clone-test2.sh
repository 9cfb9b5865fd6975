# Boot 2 of xtask/vm/clone-test.sh: the kernel reads the metadata cowrepair
# wrote (sourced by /init after /lib.sh, under set -eu -o pipefail;
# CT_REPAIRS comes from the host: `repair geometry region_sectors
# target_sectors;...`).
#
# For each repair R of geometry G (disks dmg_R, rep_R, dest_G, src_G): the
# damaged copy must be refused by `cowrt dm activate` (`activate dmg_R
# refused ...`: its own check or the kernel's) and by the kernel itself when
# the raw table skips cowrt's checks (`kernel raw_R refused ...`); the
# repaired metadata is activated through cowrt with no_hydration, its status
# recorded as `active` and the sha256 of the clone device as `sha256 rep_R
# final HASH`.

ct_list "$CT_REPAIRS"
while read -r rname g region target <&3; do
    eval "dmg=\$D_dmg_$rname rep=\$D_rep_$rname dest=\$D_dest_$g src=\$D_src_$g"
    note "repair $rname of geometry $g"
    if ct_activate "dmg_$rname" "$dmg" "$dest" "$src" "$region"; then
        st "dmg_$rname" active
        ct_remove "dmg_$rname"
    fi
    ct_kernel_load "raw_$rname" "$dmg" "$dest" "$src" "$region" "$target"
    if ct_activate "rep_$rname" "$rep" "$dest" "$src" "$region"; then
        st "rep_$rname" active
        hs "rep_$rname" final
        ct_remove "rep_$rname"
    fi
done 3< /tmp/ct.list

dmsetup ls
log 'clone-test boot 2 done'

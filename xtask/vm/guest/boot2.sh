# Boot 2: the kernel reads stores written by our tools.
#
# Disks: origin (attached read-only by the host), out, and any number of COW
# stores, each under its own serial (e.g. exp1p = snapshot 1 exported as a
# persistent store, ctl1 = a copy of the kernel's own cow1 as a control).
# Each store is activated directly over the origin (nothing writes the
# origin, so no snapshot-origin is needed), and its status and the sha256 of
# the snapshot it shows are recorded. The host compares them with boot 1.

S=$(sectors "$D_origin")
log "origin $D_origin: $S sectors"
hs "$D_origin" disk-start

for f in /sys/block/vd*; do
    name=$(cat "$f/serial")
    case $name in origin|out) continue ;; esac
    dev=/dev/${f##*/}
    note "store $name ($dev)"
    mk "v_$name" "0 $S snapshot $D_origin $dev P 8"
    st "v_$name" active
    hs "v_$name" final
    rm_dm "v_$name"
done

sync
hs "$D_origin" disk-end
dmsetup ls
log 'boot 2 done'

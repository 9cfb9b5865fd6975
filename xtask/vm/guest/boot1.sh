# Boot 1: the kernel writes three classic persistent COW stores.
#
# Disks: origin (32 MiB, each 4 KiB block holds "ORIGIN blk=N"), cow1, cow2,
# cow3 (16 MiB, zeroed), out. Chunk size 8 sectors (4 KiB), so one block is
# one chunk. Tags in the written data: A/B/C = origin writes while 1/2/3
# snapshots exist, S = snapshot-side writes through snap2.
#
# The writes are chosen so that the three stores hold identical copies of
# many chunks (the shared store should keep them once):
#   written first in phase C      -> snap1, snap2, snap3 all copy the same data
#   written first in phase B      -> snap1 and snap2 copy the same data
#   written in A, again in C only -> snap2 and snap3 copy the same (A) data
#   snap2 wrote it, origin in C   -> snap1 and snap3 copy the same data
# and so that every kind of exception the kernel makes occurs: full-chunk and
# partial origin writes, re-writes (no new exception), full-chunk snapshot
# writes (no copy-out), partial snapshot writes (copy-out then overwrite),
# snapshot writes over an existing exception, a 256 KiB multi-chunk bio.

S=$(sectors "$D_origin")
log "origin $D_origin: $S sectors"

# take_snap N COWDEV: add snapshot N to the live origin the way LVM does:
# suspend the origin (drains in-flight writes), create the snapshot, resume.
take_snap() {
    note "snapshot $1 on $2"
    dmsetup suspend org
    mk "snap$1" "0 $S snapshot $D_origin $2 P 8"
    dmsetup resume org
    st "snap$1" created
}

# rnd_writes COUNT TAG: COUNT origin writes to pseudo-random blocks.
rnd_writes() {
    k=0
    while [ "$k" -lt "$1" ]; do
        rnd $((S / 8))
        wr org "$R" "$2"
        k=$((k + 1))
    done
}

mk org "0 $S snapshot-origin $D_origin"
hs org initial

# ---- phase A: snap1 only ------------------------------------------------------
take_snap 1 "$D_cow1"
note 'phase A: origin writes with one snapshot'
for b in 0 8191 100 101 1000 4096 2047 3001; do wr org "$b" A; done
rnd_writes 30 A
note 'A: re-write already copied chunks (no new exception)'
wr org 100 A2
wr org 8191 A2
note 'A: partial-chunk origin write (1 sector of block 3000)'
wr_part org 3000 2 A
st snap1 after-A

# ---- phase B: snap1 + snap2 ---------------------------------------------------
take_snap 2 "$D_cow2"
note 'phase B: re-write blocks written in A (snap1 has them; snap2 copies A data)'
for b in 100 1000 8191 4096; do wr org "$b" B; done
note 'B: new blocks (snap1 and snap2 copy identical original data)'
for b in 200 201 202 6000 7777; do wr org "$b" B; done
rnd_writes 30 B
wr org 200 B2
wr_part org 3100 7 B
note 'B: snapshot-side writes through snap2'
wr snap2 50 S         # fresh chunk, full-chunk bio: no copy-out
wr snap2 100 S        # chunk snap2 already copied: overwrite in place
wr snap2 6500 S       # fresh chunk
wr snap2 5555 S       # fresh chunk
wr_part snap2 6600 3 S  # partial: copy-out from origin, then overwrite 1 sector
st snap1 after-B
st snap2 after-B

# ---- phase C: snap1 + snap2 + snap3 -------------------------------------------
take_snap 3 "$D_cow3"
note 'phase C: new blocks (all three snapshots copy identical original data)'
for b in 300 301 302; do wr org "$b" C; done
wr_run org 7000 64 C    # one 256 KiB bio: 64 chunks copied by all three
note 'C: blocks with older history'
wr org 200 C          # snap1, snap2 have it; snap3 copies B2 data
wr org 100 C          # snap1 original, snap2 own S data, snap3 copies B data
wr org 50 C           # snap2 owns it (S); snap1 and snap3 copy the original
wr org 6500 C         # same as 50
wr org 2047 C         # written in A only: snap2 and snap3 copy identical A data
wr_part org 3000 5 C  # partial in A: snap2 and snap3 copy the same A-modified chunk
rnd_writes 30 C
wr org 300 C2         # re-write: no new exception anywhere
note 'C: snapshot-side write over a chunk all three copied (un-shares it for snap2)'
wr snap2 7001 S
wr org 7001 C2        # every snapshot already has it: no new exception
res "writes $NWRITES"

# ---- results ------------------------------------------------------------------
for n in 1 2 3; do st "snap$n" final; done
st org final
for n in 1 2 3; do hs "snap$n" final; done
hs org final
note 'clean removal: snapshots first, then the origin'
for n in 1 2 3; do rm_dm "snap$n"; done
rm_dm org
sync
hs "$D_origin" disk-final
dmsetup ls
log 'boot 1 done'

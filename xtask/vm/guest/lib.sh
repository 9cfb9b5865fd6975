# Helpers for the guest scenarios (sourced by /init before /scenario.sh).
#
# Every action is echoed to the console; facts the host checks are appended to
# /out/results.txt as "key args... value" lines:
#   sha256 NAME LABEL HASH      checksum of /dev/mapper/NAME (or a disk)
#   status NAME LABEL STATUS... `dmsetup status NAME`
#   table  NAME TABLE...        the table a device was created with
#   writes N                    number of dd writes done

RES=/out/results.txt
NWRITES=0

log() { echo "vmtest: $*"; }
res() { echo "$*" >> "$RES"; }
note() { log "## $*"; }

# Size of a disk in 512-byte sectors.
sectors() { cat "/sys/block/${1##*/}/size"; }

# mk NAME TABLE: create a dm device from a one-line table.
mk() {
    log "dmsetup create $1 --table '$2'"
    dmsetup create "$1" --table "$2"
    res "table $1 $2"
}

# rm_dm NAME: remove a dm device (flushes it first).
rm_dm() {
    log "dmsetup remove $1"
    dmsetup remove "$1"
}

# st NAME LABEL: record `dmsetup status NAME`.
st() {
    s=$(dmsetup status "$1")
    log "status $1 [$2]: $s"
    res "status $1 $2 $s"
}

# hs PATH_OR_NAME LABEL: record the sha256 of /dev/mapper/NAME or of a device path.
hs() {
    case $1 in
        /*) dev=$1 ;;
        *) dev=/dev/mapper/$1 ;;
    esac
    h=$(sha256sum "$dev" | cut -d' ' -f1)
    log "sha256 $1 [$2]: $h"
    res "sha256 ${1##*/} $2 $h"
}

# fill TAG BLK BYTES: make /tmp/buf, BYTES long, recognisable as written by
# this test with TAG for 4 KiB block BLK.
fill() {
    # `yes` dies of SIGPIPE when head has enough (a pipefail failure): check
    # the size instead.
    yes "$1 blk=$2 " | head -c "$3" > /tmp/buf || true
    [ "$(wc -c < /tmp/buf)" -eq "$3" ]
}

# wr NAME BLK TAG: write one full 4 KiB block (one chunk) at block BLK of
# /dev/mapper/NAME, with O_DIRECT so the bio reaches dm immediately.
wr() {
    fill "$3" "$2" 4096
    dd if=/tmp/buf of="/dev/mapper/$1" bs=4096 seek="$2" count=1 \
        oflag=direct conv=notrunc status=none
    NWRITES=$((NWRITES + 1))
    log "wr $1 blk $2 $3"
}

# wr_part NAME BLK SECTOR TAG: write 512 bytes at sector SECTOR (0..7) of
# block BLK: a partial-chunk bio (the kernel must copy the rest of the chunk).
wr_part() {
    fill "$4" "$2" 512
    dd if=/tmp/buf of="/dev/mapper/$1" bs=512 seek=$(($2 * 8 + $3)) count=1 \
        oflag=direct conv=notrunc status=none
    NWRITES=$((NWRITES + 1))
    log "wr_part $1 blk $2 sector $3 $4"
}

# wr_run NAME BLK COUNT TAG: one large bio of COUNT blocks starting at BLK.
wr_run() {
    fill "$4" "$2" $(($3 * 4096))
    dd if=/tmp/buf of="/dev/mapper/$1" bs=$(($3 * 4096)) count=1 \
        oflag=direct,seek_bytes seek=$(($2 * 4096)) conv=notrunc status=none
    NWRITES=$((NWRITES + 1))
    log "wr_run $1 blk $2..$(($2 + $3 - 1)) $4"
}

# Deterministic pseudo-random numbers (31-bit LCG), so every run writes the
# same blocks. rnd N sets R to a number in 0..N-1.
SEED=12345
rnd() {
    SEED=$(((SEED * 1103515245 + 12345) % 2147483648))
    R=$(((SEED >> 8) % $1))
}

# clone_write G TAG OFFSET LENGTH: one O_DIRECT bio of LENGTH bytes, filled
# as `fill TAG` does, at byte OFFSET of /dev/mapper/clone_G; recorded as
# `op G write OFFSET LENGTH` (the dm-clone scenarios).
clone_write() {
    fill "$2" "$(($3 / 4096))" "$4"
    dd if=/tmp/buf of="/dev/mapper/clone_$1" bs="$4" count=1 seek="$3" \
        oflag=direct,seek_bytes conv=notrunc status=none
    res "op $1 write $3 $4"
    log "write clone_$1 at $3, $4 bytes"
}

# clone_discard G OFFSET LENGTH: discard LENGTH bytes at byte OFFSET of
# /dev/mapper/clone_G; recorded as `op G discard OFFSET LENGTH`.
clone_discard() {
    blkdiscard -o "$2" -l "$3" "/dev/mapper/clone_$1"
    res "op $1 discard $2 $3"
    log "discard clone_$1 at $2, $3 bytes"
}

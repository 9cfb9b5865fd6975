# Helpers of the runtime scenarios (sourced by /scenario.sh; busybox ash).
#
# Verdicts go to the console and to /out/results.txt as `VM: PASS WHAT` /
# `VM: FAIL WHAT (why)` lines; facts for the host as `KEY ARGS...` lines.

RES=/out/results.txt
# Longest a cowrt, mkfs or fsck command may take before it counts as hung.
LIMIT=120
RUN=/run/cowrt
E2FSCK=/usr/sbin/e2fsck
MKE2FS=/usr/sbin/mke2fs

pass() { echo "VM: PASS $*" | tee -a "$RES"; }
fail() { echo "VM: FAIL $*" | tee -a "$RES"; }
res() { echo "$*" >> "$RES"; }
log() { echo "rt: $*"; }

# check WHAT CMD...: PASS when CMD exits 0 (OK=yes, else OK=no); its
# output is in /tmp/check.out, and on the console when it failed.
check() {
    what=$1
    shift
    if timeout "$LIMIT" "$@" > /tmp/check.out 2>&1; then
        OK=yes
        pass "$what"
    else
        rc=$?
        OK=no
        cat /tmp/check.out
        fail "$what (exit $rc: $(tail -n 2 /tmp/check.out | tr '\n' ' '))"
    fi
}

# Every dirty page written, every clean one dropped: the next read of a
# device goes to its driver (the daemon, dm), not the page cache.
settle() {
    sync
    echo 3 > /proc/sys/vm/drop_caches
}

now() { cut -d' ' -f1 /proc/uptime; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# expect KEY HASH: what snapshot KEY must read as from now on.
expect() {
    eval "EXP_$1=$2"
    res "expect $1 $2"
    log "expect $1 = $2"
}

# verify WHEN KEY DEV: sha256 of DEV = the recorded hash, and e2fsck -fn clean.
verify() {
    eval "want=\${EXP_$2:-none}"
    got=$(sha "$3")
    if [ "$got" = "$want" ]; then
        pass "$1: $2 sha256 = recorded when taken"
    else
        fail "$1: $2 sha256 $got != recorded $want"
    fi
    check "$1: $2 e2fsck -fn clean" "$E2FSCK" -fn "$3"
}

# manifest DEV: one hash over every file's path and sha256 (mounted read-only).
manifest() {
    mkdir -p /mnt/ro
    mount -t ext4 -o ro,noload "$1" /mnt/ro
    m=$(cd /mnt/ro && find . -type f | sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
    umount /mnt/ro
    echo "$m"
}

# ------------------------------------------------------------ workload ------
# Deterministic file contents: every piece is a slice of /tmp/rand (made once
# per boot), offsets from a 31-bit LCG, so the classic and the shared phase
# write the same files.

SEED=1
rnd() {
    SEED=$(((SEED * 1103515245 + 12345) % 2147483648))
    R=$(((SEED >> 8) % $1))
}

make_rand() {
    dd if=/dev/urandom of=/tmp/rand bs=1M count=24 status=none
}

# wl_files DIR TAG COUNT SEED: COUNT files of 1-64 KiB under DIR/TAG, then
# every fifth one removed (file-heavy: many inodes, directories, bitmaps).
wl_files() {
    SEED=$4
    mkdir -p "$1/$2"
    k=0
    while [ "$k" -lt "$3" ]; do
        rnd 64; kib=$((R + 1))
        rnd 5000
        dd if=/tmp/rand of="$1/$2/f$k" bs=4096 skip="$R" count=$(((kib + 3) / 4)) status=none
        k=$((k + 1))
    done
    k=0
    while [ "$k" -lt "$3" ]; do
        rm -f "$1/$2/f$k"
        k=$((k + 5))
    done
}

# wl_random DIR COUNT SEED: DIR/big (8 MiB) created if missing, then COUNT
# writes of 4-32 KiB at random places in it (random overwrites in place).
wl_random() {
    SEED=$3
    [ -f "$1/big" ] || dd if=/tmp/rand of="$1/big" bs=1M count=8 status=none
    k=0
    while [ "$k" -lt "$2" ]; do
        rnd 8; n=$((R + 1))
        rnd $((2048 - n)); at=$R
        rnd 5000
        dd if=/tmp/rand of="$1/big" bs=4096 skip="$R" seek="$at" count="$n" conv=notrunc status=none
        k=$((k + 1))
    done
}

# mnt DEV, umnt: the filesystem under test at /mnt.
mnt() { mkdir -p /mnt/fs && mount -t ext4 "$1" /mnt/fs; }
umnt() { umount /mnt/fs; }

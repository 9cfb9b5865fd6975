# The n-way benchmark (busybox ash, sourced by /init with set -eu).
#
# Disks: origin (64 MiB), store (128 MiB, formatted here each round), cows
# (one disk cut into 16 COWs of 66 MiB with dm linear), out.
# For each round and each n in BENCH_NS: n classic persistent snapshots
# (`cowrt dm activate`, writes through the first NAME-origin) and one shared
# store with n snapshots (`cowrt serve` + n `cowrt message create`); 64 MiB
# written to the origin twice with dd (O_DIRECT, fsync at the end): the first
# write copies every chunk out, the rewrite copies nothing. Page cache dropped
# before each dd. Lines for the host:
#   bench KIND N ROUND first SECONDS rewrite SECONDS space SECTORS meta SECTORS
# (space: allocated sectors, metadata included; meta: the metadata part, for
# the shared store with its preallocated journal).

. /rt.sh
mkdir -p "$RUN"
trap 'cp "$RUN"/*.log /out/ 2>/dev/null || true' EXIT
ROUNDS=${BENCH_ROUNDS:-3}
NS=$(echo "${BENCH_NS:-1,2,4,8,16}" | tr ',' ' ')
MIB=64
PART=135168   # sectors per classic COW (66 MiB)

dd if=/dev/urandom of=/tmp/d1 bs=1M count=$MIB status=none
dd if=/dev/urandom of=/tmp/d2 bs=1M count=$MIB status=none
k=0
while [ "$k" -lt 16 ]; do
    dmsetup create "bcow$k" --table "0 $PART linear $D_cows $((k * PART))"
    k=$((k + 1))
done
dmsetup mknodes

# timed SRC DEV: seconds one dd of SRC onto DEV takes (O_DIRECT + fsync).
timed() {
    settle
    a=$(now)
    dd if="$1" of="$2" bs=1M oflag=direct conv=fsync status=none
    awk -v a="$a" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'
}

classic() { # N ROUND
    k=0
    while [ "$k" -lt "$1" ]; do
        dd if=/dev/zero of="/dev/mapper/bcow$k" bs=4096 count=2 oflag=direct status=none
        cowrt dm activate --kind persistent --chunk-size 4k --origin "$D_origin" \
            --cow "/dev/mapper/bcow$k" "b$k" > /dev/null
        k=$((k + 1))
    done
    first=$(timed /tmp/d1 /dev/mapper/b0-origin)
    rewrite=$(timed /tmp/d2 /dev/mapper/b0-origin)
    space=0
    meta=0
    k=0
    while [ "$k" -lt "$1" ]; do
        st=$(dmsetup status "b$k")
        space=$((space + $(echo "$st" | awk '{split($4, a, "/"); print a[1]}')))
        meta=$((meta + $(echo "$st" | awk '{print $5}')))
        k=$((k + 1))
    done
    k=0
    while [ "$k" -lt "$1" ]; do
        cowrt dm deactivate "b$k" > /dev/null
        k=$((k + 1))
    done
    res "bench classic $1 $2 first $first rewrite $rewrite space $space meta $meta"
    log "classic n=$1 round $2: first $first s, rewrite $rewrite s, $space sectors"
}

shared() { # N ROUND
    mkcow --kind shared --chunk-size 4k -f -q "$D_store"
    cowrt serve --store "$D_store" --origin "$D_origin" bn > /tmp/serve.out 2>&1 \
        || { cat /tmp/serve.out; fail "bench: cowrt serve"; return 0; }
    org=$(awk '$1 == "READY" && $2 == "bn" {print $3}' /tmp/serve.out)
    k=0
    while [ "$k" -lt "$1" ]; do
        if ! timeout "$LIMIT" cowrt message bn create > /tmp/msg.out 2>&1; then
            cat /tmp/msg.out "$RUN/bn.log"
            fail "bench: shared n=$1 round $2: cowrt message bn create: $(cat /tmp/msg.out)"
            timeout "$LIMIT" cowrt stop bn > /dev/null 2>&1 || true
            return 0
        fi
        k=$((k + 1))
    done
    if ! first=$(timed /tmp/d1 "$org") || ! rewrite=$(timed /tmp/d2 "$org"); then
        fail "bench: shared n=$1 round $2: the write failed"
        cowrt stop bn > /dev/null || true
        return 0
    fi
    status=$(timeout "$LIMIT" cowrt status bn)
    cowrt status bn --format json > "/out/status-n$1-r$2.json" || true
    res "bench-status shared $1 $2 $status"
    # seed 002's status line: 5 ERROR NEW_ID TOTAL ALLOCATED METADATA N IDS...
    space=$(echo "$status" | awk '{print $5}')
    meta=$(echo "$status" | awk '{print $6}')
    timeout "$LIMIT" cowrt stop bn > /dev/null || fail "bench: shared n=$1 round $2: cowrt stop bn"
    res "bench shared $1 $2 first $first rewrite $rewrite space $space meta $meta"
    log "shared n=$1 round $2: first $first s, rewrite $rewrite s, $space sectors"
}

r=1
while [ "$r" -le "$ROUNDS" ]; do
    for n in $NS; do
        classic "$n" "$r"
        shared "$n" "$r"
    done
    r=$((r + 1))
done
pass "bench complete"

# Shared pieces of the VM harnesses (sourced, never run): the folder layout,
# the Debian packages, downloading and extracting them, dm-clone's module,
# building an initramfs, booting qemu, the data patterns and hydrated runs.
# Used by xtask/vm/run.sh and xtask/vm/clone-test.sh (`cargo xtask vm-test`),
# xtask/vm/clone-fixtures.sh (`cargo xtask vm-clone-fixtures`),
# xtask/vm/build-dm-clone.sh and xtask/vm-runtime/run.sh (`cargo xtask
# vm-runtime`, `cargo xtask bench-nway`).
#
# Sourcing defines functions and these variables: VM_SCRIPTS (this folder),
# WORKSPACE, KERNEL_META and PKGS (the packages every harness extracts; a
# harness may add to PKGS). `vm_layout` then sets TOP, CACHE, BUILD and ROOT.
# The sourcing script sets, before calling the rest:
#   WORK (disk images), LOGS (logs and results), VM_TIMEOUT,
#   and optionally SAY_TAG (prefix of progress lines), VM_SMP (default 1),
#   VM_MEM (MiB, default 1024), VM_CPU (qemu -cpu), VM_BASE (the base
#   initramfs of run_vm), VM_APPEND (more kernel arguments), VM_OUT_MIB
#   (size of the out disk, default 8), GUEST_DIR (/init and /lib.sh).

VM_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORKSPACE=$(cd "$VM_SCRIPTS/../.." && pwd)

# Debian bookworm packages (docs/live-tests.md). The qemu libraries listed
# are those a stock bookworm host of this kind lacks.
KERNEL_META=linux-image-6.12-amd64
PKGS=(busybox-static dmsetup libdevmapper1.02.1
      qemu-system-x86 qemu-system-common qemu-system-data seabios
      libcapstone4 libfdt1 libibverbs1 libpmem1 librdmacm1 libslirp0 libvdeplug2
      libnl-3-200 libnl-route-3-200 libdaxctl1 libndctl6 libexecs0)

# vm_layout: TOP = VM_DIR (default target/vm of the workspace, made and
# made absolute); CACHE (downloaded .deb files, kept between runs), BUILD
# (extracted packages, initramfs images) and ROOT (= BUILD/root) in it.
vm_layout() {
    TOP=${VM_DIR:-$WORKSPACE/target/vm}
    mkdir -p "$TOP"
    TOP=$(cd "$TOP" && pwd)
    CACHE=$TOP/cache/debs
    BUILD=$TOP/build
    ROOT=$BUILD/root
}

say() { printf '[%s %(%H:%M:%S)T] %s\n' "${SAY_TAG:-run.sh}" -1 "$*" >&2; }
die() { say "ERROR: $*"; exit 2; }

# The kernel package: the cached one, else the one the metapackage names.
kernel_pkg() {
    local f
    f=$(ls "$CACHE"/linux-image-6.12.*-amd64_*.deb 2>/dev/null | head -n1 || true)
    if [[ -n $f ]]; then
        basename "$f" | cut -d_ -f1
    else
        apt-cache depends "$KERNEL_META" | awk '/Depends: linux-image-/ {print $2; exit}'
    fi
}

# download_missing DIR PACKAGE[=VERSION]...: apt-get download, into DIR,
# each package that has no .deb there yet.
download_missing() {
    local dir=$1 missing=() p
    shift
    mkdir -p "$dir"
    for p in "$@"; do
        compgen -G "$dir/${p%%=*}_*.deb" >/dev/null || missing+=("$p")
    done
    if ((${#missing[@]})); then
        say "downloading into $dir: ${missing[*]}"
        (cd "$dir" && apt-get download "${missing[@]}" >&2) || die "apt-get download failed"
    else
        say "all packages cached in $dir"
    fi
}

fetch() {
    local kpkg
    kpkg=$(kernel_pkg)
    if [[ -z $kpkg ]]; then
        say "apt-cache does not know $KERNEL_META: running apt-get update"
        apt-get update -qq
        kpkg=$(kernel_pkg)
        [[ -n $kpkg ]] || die "cannot resolve $KERNEL_META"
    fi
    download_missing "$CACHE" "$kpkg" "${PKGS[@]}"
}

# Extract every cached package into ROOT (redone when the set changes).
extract() {
    local stamp=$BUILD/root.stamp want d
    want=$(cd "$CACHE" && ls -1 *.deb | sort)
    if [[ -f $stamp && $(cat "$stamp") == "$want" && -d $ROOT ]]; then
        return
    fi
    say "extracting packages into $ROOT"
    rm -rf "$ROOT"
    mkdir -p "$ROOT"
    for d in "$CACHE"/*.deb; do dpkg -x "$d" "$ROOT"; done
    printf '%s\n' "$want" > "$stamp"
}

KVER=${KVER:-}
QEMU=
qemu_env() {
    KVER=$(basename "$(ls -d "$ROOT"/lib/modules/*/ | head -n1)")
    [[ -n $KVER && -f $ROOT/boot/vmlinuz-$KVER ]] || die "no kernel in $ROOT"
    QEMU=$ROOT/usr/bin/qemu-system-x86_64
    export LD_LIBRARY_PATH=$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/lib/x86_64-linux-gnu
    # accel-tcg-x86_64.so (qemu-system-common) is a loadable module in Debian.
    export QEMU_MODULE_DIR=$ROOT/usr/lib/x86_64-linux-gnu/qemu
    "$QEMU" --version >/dev/null || die "extracted qemu does not run"
}

# copy_tools DEST SRC NAME...: copy the binaries under test at the start of a
# run, so that a rebuild elsewhere cannot change them halfway through.
copy_tools() {
    local dest=$1 src=$2 t
    shift 2
    rm -rf "$dest"
    mkdir -p "$dest"
    for t in "$@"; do
        [[ -x $src/$t ]] || die "no $t in $src (cargo build --release -p cowtools)"
        cp -p "$src/$t" "$dest/$t"
    done
}

# ------------------------------------------------------------ initramfs -----

# ir_base DIR: a fresh initramfs tree with busybox (every applet linked), the
# dynamic loader, and the guest's /init and /lib.sh from GUEST_DIR.
ir_base() {
    local ir=$1 m
    rm -rf "$ir"
    mkdir -p "$ir"/{bin,sbin,dev,proc,sys,tmp,out,run,etc,lib/modules,lib64,lib/x86_64-linux-gnu}
    cp "$ROOT/bin/busybox" "$ir/bin/busybox"
    for m in $("$ir/bin/busybox" --list); do
        [[ -e $ir/bin/$m ]] || ln -s busybox "$ir/bin/$m"
    done
    cp -L /lib64/ld-linux-x86-64.so.2 "$ir/lib64/"
    install -m 755 "$GUEST_DIR/init" "$ir/init"
    install -m 644 "$GUEST_DIR/lib.sh" "$ir/lib.sh"
    : > "$ir/lib/modules/load.list"
}

# ir_modules DIR MODULE...: decompress kernel modules (paths under
# kernel/, without .ko.xz) into DIR/lib/modules; /init loads them in this order.
ir_modules() {
    local ir=$1 m
    shift
    for m in "$@"; do
        xz -dc "$ROOT/lib/modules/$KVER/kernel/$m.ko.xz" > "$ir/lib/modules/$(basename "$m").ko"
        basename "$m" >> "$ir/lib/modules/load.list"
    done
}

# ir_module_file DIR FILE.ko: add a module built elsewhere, loaded after the others.
ir_module_file() {
    cp "$2" "$1/lib/modules/"
    basename "$2" .ko >> "$1/lib/modules/load.list"
}

# ir_binary DIR SRC DEST: copy a program and every library ldd lists for it
# (libraries of the extracted packages first, then the host's).
ir_binary() {
    local ir=$1 src=$2 dest=$3 lib
    mkdir -p "$ir/$(dirname "$dest")"
    rm -f "$ir/$dest"   # a busybox applet link: never write through it
    cp -L "$src" "$ir/$dest"
    for lib in $(LD_LIBRARY_PATH=$ROOT/lib/x86_64-linux-gnu ldd "$src" \
                 | awk '/=>/ && $3 ~ /^\// {print $3} /ld-linux/ {print $1}'); do
        [[ -e $ir/lib/x86_64-linux-gnu/$(basename "$lib") ]] \
            || cp -L "$lib" "$ir/lib/x86_64-linux-gnu/"
    done
}

# ir_pack DIR OUT: a gzip'd newc cpio of DIR.
ir_pack() {
    (cd "$1" && find . | LC_ALL=C sort | "$ROOT/bin/busybox" cpio -o -H newc 2>/dev/null) \
        | gzip -6 > "$2"
}

# dm_clone_ko: the path of dm-clone.ko for KVER (qemu_env first), built once
# by xtask/vm/build-dm-clone.sh; dies when the build fails.
dm_clone_ko() {
    local ko
    ko=$(VM_DIR=$TOP KVER=$KVER bash "$VM_SCRIPTS/build-dm-clone.sh" | tail -n1)
    [[ -f $ko ]] || die "no dm-clone.ko (xtask/vm/build-dm-clone.sh)"
    echo "$ko"
}

# ir_clone DIR KO: ir_base with virtio disks, device-mapper, dm-clone (KO)
# and dmsetup: the guest of the dm-clone scenarios.
ir_clone() {
    ir_base "$1"
    ir_modules "$1" drivers/block/virtio_blk crypto/crc32c_generic lib/libcrc32c \
        drivers/md/dm-mod drivers/md/dm-bufio drivers/md/persistent-data/dm-persistent-data
    ir_module_file "$1" "$2"
    ir_binary "$1" "$ROOT/sbin/dmsetup" sbin/dmsetup
}

# ----------------------------------------------------------------- data -----

# pattern_file FILE TAG BLOCKS: BLOCKS blocks of 4 KiB, block N filled with
# "TAG blk=N " repeated: every block differs from every other.
pattern_file() {
    perl -e 'my ($tag, $n) = @ARGV;
             for my $b (0 .. $n - 1) {
                 my $l = sprintf("%s blk=%d ", $tag, $b);
                 print substr($l x (4096 / length($l) + 1), 0, 4096);
             }' "$2" "$3" > "$1"
}

# hydrated_runs REGION_SECTORS: reads `write|discard OFFSET LENGTH` (bytes)
# and `all NR_REGIONS` lines; prints the hydrated regions as `start count`
# runs. A write hydrates every region it touches, a discard every region it
# covers whole, `all` every region.
hydrated_runs() {
    awk -v rs="$1" '
        function mark(a, b,   r) { for (r = a; r <= b; r++) h[r] = 1 }
        $1 == "write" { mark(int($2 / 512 / rs), int(($2 + $3) / 512 / rs - 1e-9)) }
        $1 == "discard" { mark(int(($2 / 512 + rs - 1) / rs), int(($2 + $3) / 512 / rs) - 1) }
        $1 == "all" { mark(0, $2 - 1) }
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

# ------------------------------------------------------------------ VM ------

wait_for_vm_slot() {
    [[ -n ${VM_WAIT_CMD:-} ]] || return 0
    until sh -c "$VM_WAIT_CMD"; do
        say "waiting for: $VM_WAIT_CMD"
        sleep 15
    done
}

# run_vm NAME SCENARIO SERIAL=IMAGE[:ro]...
# Boots the kernel with VM_BASE plus /scenario.sh = SCENARIO and the given
# disks (plus an "out" disk), then unpacks the guest's /out into LOGS/NAME/.
run_vm() {
    local name=$1 scenario=$2
    shift 2
    local ov=$BUILD/overlay-$name out=$WORK/$name-out.img log=$LOGS/$name-serial.log
    local base=${VM_BASE:-$BUILD/initramfs-base.cpio.gz}
    local args=() n=0 spec serial img ro t0 t1 rc
    rm -rf "$ov" "$LOGS/$name"
    mkdir -p "$ov" "$LOGS/$name"
    install -m 644 "$scenario" "$ov/scenario.sh"
    ir_pack "$ov" "$BUILD/overlay-$name.cpio.gz"
    cat "$base" "$BUILD/overlay-$name.cpio.gz" > "$BUILD/initramfs-$name.img"

    rm -f "$out"
    truncate -s "${VM_OUT_MIB:-8}M" "$out"
    for spec in "$@" "out=$out"; do
        serial=${spec%%=*}
        img=${spec#*=}
        ro=
        if [[ $img == *:ro ]]; then img=${img%:ro}; ro=,readonly=on; fi
        args+=(-drive "file=$img,format=raw,if=none,id=d$n$ro"
               -device "virtio-blk-pci,drive=d$n,serial=$serial")
        n=$((n + 1))
    done

    wait_for_vm_slot
    say "booting $name with $n disks (serial log: $log)"
    t0=$(date +%s.%N)
    rc=0
    timeout "$VM_TIMEOUT" "$QEMU" -accel tcg -M q35 ${VM_CPU:+-cpu "$VM_CPU"} -m "${VM_MEM:-1024}" \
        -smp "${VM_SMP:-1}" -nodefaults \
        -display none -no-reboot -L "$ROOT/usr/share/seabios" -L "$ROOT/usr/share/qemu" \
        -serial "file:$log" -kernel "$ROOT/boot/vmlinuz-$KVER" \
        -initrd "$BUILD/initramfs-$name.img" \
        -append "console=ttyS0 panic=-1 loglevel=4 VMTEST_DISKS=$n ${VM_APPEND:-}" \
        "${args[@]}" || rc=$?
    t1=$(date +%s.%N)
    awk -v n="$name" -v a="$t0" -v b="$t1" -v rc="$rc" 'BEGIN {printf "%s wall %.1f s, qemu exit %s\n", n, b - a, rc}' \
        | tee "$LOGS/$name/wall.txt" >&2
    ((rc == 0)) || say "qemu for $name exited with $rc"
    tar -xf "$out" -C "$LOGS/$name" 2>/dev/null || say "no results on the out disk of $name"
    [[ -f $LOGS/$name/rc && $(cat "$LOGS/$name/rc") == 0 ]] \
        || { say "guest scenario $name failed (see $log)"; return 1; }
}

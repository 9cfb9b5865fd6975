#!/usr/bin/env bash
# Builds dm-clone.ko out of tree for the VM's Debian kernel, which does not
# build it (`# CONFIG_DM_CLONE is not set`; runtime.md 1, kernel-vm.md).
#
#   1. apt-get download (into a cache kept between runs, only what is
#      missing): linux-source-6.12, linux-headers-KVER,
#      linux-headers-KVER's -common part and linux-kbuild, all of the
#      kernel's own package version;
#   2. dpkg -x the headers and kbuild; take drivers/md/dm-clone-*.[ch] and
#      the private headers of drivers/md (dm.h, persistent-data/*.h...) out
#      of the source tarball;
#   3. make -C <headers> M=<src> CONFIG_DM_CLONE=m modules (the headers'
#      Module.symvers has dm-persistent-data's symbols: the module loads
#      after dm-persistent-data.ko, which Debian ships).
#
# The last line on stdout is the path of dm-clone.ko. A second run with the
# module in place does nothing but print it (idempotent; FORCE=1 rebuilds).
# The module is unsigned: loading it taints the kernel, which is harmless
# in the test VM.
#
# Usage: xtask/vm/build-dm-clone.sh
# Environment:
#   VM_DIR  the VM directory (default: target/vm of the workspace); the
#           downloads go to VM_DIR/cache/dm-clone-debs (apart from
#           cache/debs, whose packages run.sh extracts into the guest), the
#           build to VM_DIR/dm-clone/KVER/
#   KVER    kernel release (default: that of the linux-image package cached
#           in VM_DIR/cache/debs, else 6.12.118+deb12-amd64)
#   FORCE   1 to rebuild even if the module exists
# Needs: apt-get (Debian bookworm's security mirror for the 6.12 packages),
# dpkg, make, gcc, strings. Root is not needed when the packages are already cached.
# Exit status: 0 built (or already built), 2 on any failure.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"
vm_layout
SAY_TAG=build-dm-clone

# The kernel release: KVER, else the cached linux-image package's, else the default.
kernel_release() {
    if [[ -n ${KVER:-} ]]; then
        echo "$KVER"
        return
    fi
    local f
    f=$(ls "$CACHE"/linux-image-6.12.*-amd64_*.deb 2>/dev/null | head -n1 || true)
    if [[ -n $f ]]; then
        basename "$f" | cut -d_ -f1 | sed 's/^linux-image-//'
    else
        echo "6.12.118+deb12-amd64"
    fi
}

KREL=$(kernel_release)
[[ $KREL =~ ^(6\.12\.[0-9]+)\+(deb[0-9]+)-amd64$ ]] \
    || die "kernel release '$KREL' is not a Debian 6.12 amd64 release (6.12.N+debM-amd64)"
UPSTREAM=${BASH_REMATCH[1]}
ABI=${BASH_REMATCH[1]}+${BASH_REMATCH[2]}
DEBS_DIR=$TOP/cache/dm-clone-debs
OUT=$TOP/dm-clone/$KREL
KO=$OUT/dm-clone.ko

if [[ -f $KO && ${FORCE:-0} != 1 ]]; then
    say "already built for $KREL"
    echo "$KO"
    exit 0
fi

DEBS=("linux-headers-$KREL" "linux-headers-$ABI-common" "linux-kbuild-$ABI" linux-source-6.12)

# The Debian package version of the kernel (e.g. 6.12.118-1~deb12u1): every
# package must have exactly that one.
package_version() {
    local f v
    f=$(ls "$DEBS_DIR/linux-headers-${KREL}_"*.deb 2>/dev/null | head -n1 || true)
    if [[ -n $f ]]; then
        dpkg-deb -f "$f" Version
        return
    fi
    v=$(apt-cache show "linux-headers-$KREL" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
    if [[ -z $v ]]; then
        say "apt-cache does not know linux-headers-$KREL: running apt-get update"
        apt-get update -qq >&2 || die "apt-get update failed"
        v=$(apt-cache show "linux-headers-$KREL" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
    fi
    [[ -n $v ]] || die "no package linux-headers-$KREL in apt's lists"
    echo "$v"
}

fetch_build_debs() {
    local version p f
    version=$(package_version)
    download_missing "$DEBS_DIR" "${DEBS[@]/%/=$version}"
    for p in "${DEBS[@]}"; do
        f=$(ls "$DEBS_DIR/${p}_"*.deb | head -n1)
        [[ $(dpkg-deb -f "$f" Version) == "$version" ]] \
            || die "$f is version $(dpkg-deb -f "$f" Version), the kernel's is $version"
    done
}

# modinfo_field FIELD KO: a field of the module's .modinfo (no kmod needed).
modinfo_field() {
    strings "$2" | awk -v k="$1=" 'index($0, k) == 1 && v == "" {v = substr($0, length(k) + 1)} END {print v}'
}

build() {
    local work=$OUT/work root src tarball hdr f
    rm -rf "$work"
    root=$work/root
    src=$work/src
    mkdir -p "$root" "$src"
    for p in "${DEBS[@]}"; do
        [[ $p == linux-source-* ]] && continue
        dpkg -x "$(ls "$DEBS_DIR/${p}_"*.deb | head -n1)" "$root"
    done
    # The headers' Makefile includes its -common part by absolute path
    # (/usr/src/...): point it into root (the scripts/tools links are relative).
    hdr=$root/usr/src/linux-headers-$KREL
    [[ -f $hdr/Makefile ]] || die "no $hdr/Makefile after extraction"
    sed -i "s|^include /usr/src/|include $root/usr/src/|" "$hdr/Makefile"
    say "extracting drivers/md/dm-clone-* from linux-source-6.12"
    dpkg -x "$(ls "$DEBS_DIR/linux-source-6.12_"*.deb | head -n1)" "$work/source-deb"
    tarball=$(ls "$work"/source-deb/usr/src/linux-source-6.12.tar.* | head -n1)
    # dm-clone-*.c and the private headers they include (dm.h, dm-core.h...,
    # persistent-data/*.h), none of which the headers package has.
    tar -xf "$tarball" -C "$work" --wildcards \
        'linux-source-6.12/drivers/md/dm-clone-*' \
        'linux-source-6.12/drivers/md/*.h'
    rm -rf "$work/source-deb"
    cp "$work"/linux-source-6.12/drivers/md/dm-clone-*.c "$work"/linux-source-6.12/drivers/md/*.h "$src/"
    mkdir -p "$src/persistent-data"
    cp "$work"/linux-source-6.12/drivers/md/persistent-data/*.h "$src/persistent-data/"
    cat > "$src/Kbuild" <<'EOF'
obj-$(CONFIG_DM_CLONE) += dm-clone.o
dm-clone-y := dm-clone-target.o dm-clone-metadata.o
EOF
    say "building against $hdr ($(gcc --version | head -n1))"
    # No BTF for the module (it would need pahole, and nothing here uses it).
    make -C "$hdr" M="$src" CONFIG_DM_CLONE=m CONFIG_DEBUG_INFO_BTF_MODULES= modules >&2 \
        || die "make failed (log above)"
    [[ -f $src/dm-clone.ko ]] || die "make ran but made no dm-clone.ko"
    local magic
    magic=$(modinfo_field vermagic "$src/dm-clone.ko")
    [[ $magic == "$KREL "* ]] || die "dm-clone.ko has vermagic '$magic', not for $KREL"
    cp "$src/dm-clone.ko" "$KO.tmp"
    strip --strip-debug "$KO.tmp"
    mv "$KO.tmp" "$KO"
    rm -rf "$work"
    say "built: vermagic $magic; depends: $(modinfo_field depends "$KO")"
}

fetch_build_debs
build
echo "$KO"

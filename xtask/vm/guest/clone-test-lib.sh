# Helpers of the guest scenarios of xtask/vm/clone-test.sh (the host puts
# this file after the generated header and before clone-test1.sh or
# clone-test2.sh; /lib.sh is sourced first). Clones are activated and
# removed through `cowrt dm` (its checks, then the kernel's); the raw table
# through dmsetup only asks the kernel itself about metadata cowrt refuses.

# ct_activate DEV META DEST SOURCE REGION_SECTORS: `cowrt dm activate --kind
# clone --no-hydration` (the source's size is the target's); records
# `activate DEV ok` and `table DEV TABLE`, or `activate DEV refused WHY`.
# Returns 1 when cowrt or the kernel refused.
ct_activate() {
    log "cowrt dm activate --kind clone $1 over $2 (region $5 sectors)"
    if cowrt dm activate --kind clone --no-hydration --metadata "$2" --dest "$3" \
        --source "$4" --region-size "$5" "$1" > /tmp/ct.out 2>&1; then
        cat /tmp/ct.out
        res "activate $1 ok"
        res "table $1 $(dmsetup table "$1")"
        return 0
    fi
    cat /tmp/ct.out
    res "activate $1 refused $(tr '\n' ' ' < /tmp/ct.out)"
    return 1
}

# ct_kernel_load DEV META DEST SOURCE REGION_SECTORS TARGET_SECTORS: the
# clone table straight to the kernel (no cowrt checks); records `kernel DEV
# ok` (and removes it again) or `kernel DEV refused WHY`.
ct_kernel_load() {
    log "dmsetup create $1 over $2 (region $5, target $6 sectors)"
    if dmsetup create "$1" --table "0 $6 clone $2 $3 $4 $5 1 no_hydration" > /tmp/ct.out 2>&1; then
        res "kernel $1 ok"
        rm_dm "$1"
        return 0
    fi
    cat /tmp/ct.out
    res "kernel $1 refused $(tr '\n' ' ' < /tmp/ct.out)"
    dmsetup remove "$1" > /dev/null 2>&1 || true
}

# ct_remove DEV: `cowrt dm deactivate` (the kernel commits the metadata).
ct_remove() {
    log "cowrt dm deactivate $1"
    cowrt dm deactivate "$1"
}

# ct_list TEXT: the `;`-separated items of TEXT, one a line, in /tmp/ct.list.
ct_list() { echo "$1" | tr ';' '\n' | sed '/^$/d' > /tmp/ct.list; }

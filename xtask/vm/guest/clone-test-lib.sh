# Helpers of the guest scenarios of xtask/vm/clone-test.sh (the host puts
# this file after the generated header and before clone-test1.sh or
# clone-test2.sh; /lib.sh is sourced first).

# ct_activate DEV META DEST SOURCE REGION_SECTORS TARGET_SECTORS: a dm-clone
# device without background hydration; records `activate DEV ok` or
# `activate DEV refused WHY`. Returns 1 when the kernel refused the table.
ct_activate() {
    log "dmsetup create $1 over $2 (region $5, target $6 sectors)"
    if dmsetup create "$1" --table "0 $6 clone $2 $3 $4 $5 1 no_hydration" > /tmp/ct.out 2>&1; then
        res "activate $1 ok"
        return 0
    fi
    cat /tmp/ct.out
    res "activate $1 refused $(tr '\n' ' ' < /tmp/ct.out)"
    dmsetup remove "$1" > /dev/null 2>&1 || true
    return 1
}

# ct_list TEXT: the `;`-separated items of TEXT, one a line, in /tmp/ct.list.
ct_list() { echo "$1" | tr ';' '\n' | sed '/^$/d' > /tmp/ct.list; }

#!/usr/bin/env bash
# The memory pass of `cairn bench` (a fresh process: evict the database from the page cache,
# open it, a cold and a warm pass of the queries) run by hand on a database built earlier
# with `cairn bench --dir DB`, with and without a memory budget, and inside a cgroup-v1
# memory group that holds the process's memory and page cache to a limit: a database larger
# than the memory it may use. Needs root (the cgroup, the page-cache eviction) and a
# pass input: JSON {"queries": [[f32]], "gt": [[id]], "k": K, "ef": EF}.
#
#   scripts/memory_pass.sh target/release/cairn DB INPUT.json OUTDIR
#
# Writes OUTDIR/pass-NAME.json per configuration (see docs/benchmarks.md, "Memory budget").
set -euo pipefail
bin=$1 db=$2 input=$3 out=$4
cg=/sys/fs/cgroup/memory/cairn-memory-pass
mkdir -p "$out" "$cg"
run() { # name limit [cairn args...]
    local name=$1 limit=$2
    shift 2
    echo -1 > "$cg/memory.limit_in_bytes"
    echo 0 > "$cg/memory.force_empty" 2>/dev/null || true
    [[ $limit != none ]] && echo "$limit" > "$cg/memory.limit_in_bytes"
    sh -c 'echo $$ > "$0/cgroup.procs"; shift; exec "$@"' "$cg" - "$bin" bench-memory-pass "$db" \
        --input "$input" "$@" > "$out/pass-$name.json"
    echo "$name: $(uptime)"
}
run free none
run budget-cg450 450M --memory-budget 400M --lock-memory
run nobudget-cg450 450M
run budget-cg350 350M --memory-budget 300M --lock-memory

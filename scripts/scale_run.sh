#!/usr/bin/env bash
# Issue 17's scale run: the 2M x 768 set of scripts/scale_data.py built through the real write
# path (`cairn import`: upserts, seals of full memtables; no merges along the way), one final
# `cairn compact`, then fresh-process memory passes (scripts/memory_pass.sh's cgroup, held to
# LIMIT) at each EF. Peak RSS and wall time of the import and the compaction come from
# /usr/bin/time. Needs root for the cgroup and the page-cache eviction.
#
#   scripts/scale_run.sh [DATA_DIR] [DB] [QUANT] [EFS] [LIMIT]
#   defaults: ~/.cache/cairn-bench/scale/2000000x768 ~/.cache/cairn-bench/scale-db rabitq4 64,128,256 1200M
#
# Writes DB.out/{create,import,compact}.txt, pass-*.json and input-EF.json.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-$HOME/.cache/cairn-bench/scale/2000000x768}
db=${2:-$HOME/.cache/cairn-bench/scale-db}
quant=${3:-rabitq4}
efs=${4:-64,128,256}
limit=${5:-1200M}
bin=${CAIRN:-target/release/cairn}
py=${PY:-$HOME/.cache/cairn-bench/venv/bin/python}
out=$db.out
mkdir -p "$out"
log() { echo "== $* $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/log.txt"; }

if [[ ! -e $db/MANIFEST ]]; then
    log create
    $bin create "$db" bench --dim 768 --metric cosine --quantization "$quant" \
        --ef-construction "${EF_CONSTRUCTION:-64}" > "$out/create.txt"
    log import
    /usr/bin/time -v $bin import "$db" bench "$data/base.npy" --batch 5000 \
        --durability buffered --no-compaction > "$out/import.txt" 2>&1
    log compact
    /usr/bin/time -v $bin compact "$db" bench > "$out/compact.txt" 2>&1
    log built
fi
$bin stats "$db" bench > "$out/stats.txt" 2>&1 || true

IFS=, read -ra ef_list <<< "$efs"
for ef in "${ef_list[@]}"; do
    input=$out/input-$ef.json
    "$py" - "$data" "$ef" "$input" <<'EOF'
import json, sys
import numpy as np
data, ef, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
q = np.load(f"{data}/queries.npy")
raw = np.fromfile(f"{data}/gt.ivecs", dtype=np.int32)
k = int(raw[0])
gt = raw.reshape(-1, k + 1)[:, 1:11]
with open(path, "w") as f:
    json.dump({"queries": q.tolist(), "gt": gt.tolist(), "k": 10, "ef": ef}, f)
EOF
    log "pass ef $ef"
    cg=/sys/fs/cgroup/memory/cairn-scale-pass
    mkdir -p "$cg"
    echo -1 > "$cg/memory.limit_in_bytes"
    echo 0 > "$cg/memory.force_empty" 2>/dev/null || true
    echo "$limit" > "$cg/memory.limit_in_bytes"
    sh -c 'echo $$ > "$0/cgroup.procs"; shift; exec "$@"' "$cg" - $bin bench-memory-pass "$db" \
        --input "$input" --memory-budget "$limit" > "$out/pass-ef$ef.json"
done
log done

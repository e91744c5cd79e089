#!/usr/bin/env bash
# One `cairn bench` per quantization (databases kept in target/bench-DATA-Q), then the
# interleaved comparison against hnswlib over all four. Usage:
#   scripts/bench_quantization.sh glove-6b-50-angular clustered-384
set -u
cd "$(dirname "$0")/.."
PY=~/.cache/cairn-bench/venv/bin/python
CAIRN=target/release/cairn
for DATA in "$@"; do
  G=~/.cache/cairn-bench/data/$DATA
  case $DATA in glove*) EF=40,120,400 ;; *) EF=10,40,120 ;; esac
  for Q in int8 rabitq4 rabitq1 none; do
    rm -rf target/bench-$DATA-$Q
    echo "== $DATA $Q $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    nice $CAIRN bench --base $G/base.fvecs --queries $G/query.fvecs --gt $G/groundtruth.ivecs \
      --metric cosine --k 10 --ef $EF --threads 2 --quantization $Q \
      --dir target/bench-$DATA-$Q --csv target/bench-$DATA-$Q.csv 2>&1 | tail -25
  done
  echo "== interleaved $DATA $(date -u +%T)"
  $PY scripts/interleaved_vs_hnswlib.py --data $G \
    --db int8=target/bench-$DATA-int8,rabitq4=target/bench-$DATA-rabitq4,rabitq1=target/bench-$DATA-rabitq1,none=target/bench-$DATA-none \
    --ef $EF --rounds 5
done

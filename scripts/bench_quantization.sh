#!/usr/bin/env bash
# One `cairn bench` per quantization (databases kept in target/bench-DATA-Q), then the
# interleaved comparison against hnswlib over all of them. Usage:
#   scripts/bench_quantization.sh glove-6b-50-angular clustered-384
#   EF=20,40,80,120,200 scripts/bench_quantization.sh pypi-minilm-384
# EF overrides the ef list (default: 40,120,400 on GloVe, else 10,40,120); QS the settings
# (default "int8 rabitq4 rabitq1 none"); ROUNDS the interleaved rounds (default 5);
# BUILD=0 keeps the databases of an earlier run and only re-times them.
set -u
cd "$(dirname "$0")/.."
PY=~/.cache/cairn-bench/venv/bin/python
CAIRN=target/release/cairn
QS=${QS:-"int8 rabitq4 rabitq1 none"}
for DATA in "$@"; do
  G=~/.cache/cairn-bench/data/$DATA
  case $DATA in glove*) DEF_EF=40,120,400 ;; *) DEF_EF=10,40,120 ;; esac
  EFS=${EF:-$DEF_EF}
  DBS=""
  for Q in $QS; do
    DBS="$DBS${DBS:+,}$Q=target/bench-$DATA-$Q"
    [ "${BUILD:-1}" = 0 ] && continue
    rm -rf target/bench-$DATA-$Q
    echo "== $DATA $Q $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    nice $CAIRN bench --base $G/base.fvecs --queries $G/query.fvecs --gt $G/groundtruth.ivecs \
      --metric cosine --k 10 --ef $EFS --threads 2 --quantization $Q \
      --dir target/bench-$DATA-$Q --csv target/bench-$DATA-$Q.csv 2>&1 | tail -25
  done
  echo "== interleaved $DATA $(date -u +%T)"
  $PY scripts/interleaved_vs_hnswlib.py --data $G --db "$DBS" --ef $EFS --rounds "${ROUNDS:-5}"
done

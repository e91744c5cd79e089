#!/usr/bin/env bash
# The multi-process test of issue 14, long: a writer process under Durability::Sync is
# SIGKILLed N times (default 300) at random moments and restarted, while three read-only
# reader processes check every search against a model of the writer's step sequence
# (tests/multiprocess.rs). SEED (hex, optional) picks the sequence and the kill moments.
# Exit 0 only if no reader and no recovery ever saw a wrong state.
#   scripts/multiprocess_soak.sh [N] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-300}"
SEED="${2:-}"
export CAIRN_MP_KILLS="$N"
if [[ -n "$SEED" ]]; then
    export CAIRN_MP_SEED="$SEED"
fi
cargo test --release -p cairndb --test multiprocess writer_killed_while_readers_follow_soak \
    -- --ignored --exact --nocapture

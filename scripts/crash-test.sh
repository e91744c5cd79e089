#!/usr/bin/env bash
# The lifecycle crash loop with N kills (default 200): a child process upserts, deletes and
# compacts under Durability::Sync and is SIGKILLed at random moments; after each kill the
# database must reopen, verify, and equal the model. Exit 0 only if every round passed.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200}"
CAIRN_CRASH_ROUNDS="$N" cargo test --release --test crash_churn -- --nocapture

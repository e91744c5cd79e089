#!/usr/bin/env bash
# The whole test suite, as the README gives it: the Rust tests (`cargo test --workspace`: unit,
# integration, property and doc tests of the library and of the command-line tool in cli/), then
# the Python package: it is built and installed with `pip install ./python` into a virtual
# environment under target/, and pytest runs the binding tests, LangChain's standard
# vector-store suite, the data-frame tests (pyarrow, pandas, polars), the LlamaIndex store,
# the RAG example's smoke test, and the file-format tests that run the `cairn` binary on
# Parquet written by pyarrow and polars and read its exports with polars and DuckDB (the
# binary is built first, `cargo build -p cairn-cli`, and passed in CAIRN_BIN).
#
# Needs the Rust toolchain and python3 (3.9+) with venv; pip fetches the packages listed in
# python/requirements-test.txt from PyPI on the first run.
#   scripts/test.sh            everything
#   scripts/test.sh rust       only `cargo test --workspace`
#   scripts/test.sh python     only the Python tests
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"

if [[ "$what" == all || "$what" == rust ]]; then
    echo "== cargo test --workspace"
    cargo test --workspace
fi

if [[ "$what" == all || "$what" == python ]]; then
    venv="target/python-venv"
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "== creating $venv"
        python3 -m venv "$venv"
    fi
    echo "== pip install -r python/requirements-test.txt ./python"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r python/requirements-test.txt
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall \
        --no-deps ./python
    # The command-line tool the file-format tests and the `cairn eval` = `cairndb.eval` test run
    # (cheap after `cargo test --workspace`, which built it already). A missing binary fails
    # those tests; it never skips them.
    echo "== cargo build -p cairn-cli"
    cargo build -p cairn-cli
    target_dir="$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    export CAIRN_BIN="$target_dir/debug/cairn"
    echo "== pytest python/tests"
    # Run from outside python/ so the installed wheel is tested, not the source folder.
    (cd target && "../$venv/bin/python" -m pytest -q -c ../python/pyproject.toml ../python/tests)
fi

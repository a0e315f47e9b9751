#!/usr/bin/env bash
# scripts/test.sh — set up a fresh Debian machine (build dependencies + PyTorch as the oracle),
# build, and run the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cd build
ctest --output-on-failure -j 2 --timeout 900

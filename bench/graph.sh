#!/usr/bin/env bash
# The span graph (graph/, issue 16): ingest rate (spans/s), each query's
# latency (median and worst of 15 runs, in-process, after the store is
# open) and the store's size per span, at 10k, 100k and 1M spans of
# generated traces shaped like recorded worlds (what makes them realistic:
# graph/examples/graph_bench.rs); and what a person waits for,
# `substrate-graph tree WORLD --json` as a process (open, answer, exit).
# Goals: ingest >= 100k spans/s; each query <= 5 ms at 1M spans.
#
#   bench/graph.sh [SIZES]      SIZES: comma-separated span counts
#                               [default 10000,100000,1000000]
#
# Needs ~1 GB in /var/tmp at 1M spans (430 MB of traces, the store);
# removed at the end. The program is an example of substrate-graph, so
# nothing but this benchmark builds it.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
SIZES=${1:-10000,100000,1000000}
$CARGO build --release -q -p substrate-graph --example graph_bench --bin substrate-graph
TARGET_DIR=$($CARGO metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
"$TARGET_DIR/release/examples/graph_bench" --sizes "$SIZES" \
    --cli "$TARGET_DIR/release/substrate-graph" --dir /var/tmp/substrate-graph-bench

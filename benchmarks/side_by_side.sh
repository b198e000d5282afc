#!/usr/bin/env bash
# The engine and the anchors back to back in one sitting, interleaved per dataset, through ../shared/bench.
#
#   BENCH_VENVS=/path/from/setup_anchors.sh benchmarks/side_by_side.sh OUT BUDGET SEEDS SYSTEMS DATASET...
#   e.g. benchmarks/side_by_side.sh benchmarks/results/s28-300s 300 2 automl,flaml,autogluon german_health medpar
#
# Per dataset every system runs in the order given (one at a time, nothing else should run), so a slow
# drift in the machine's state touches all systems alike. OUT/SYSTEM.jsonl holds the shared harness's
# lines; OUT/load.txt the load average before each system and at the end. AG_PRESET passes through to
# the AutoGluon adapter (medium_quality by default; high_quality for the bagged preset).
# Tabulate with: python benchmarks/headtohead.py --engine OUT/automl.jsonl --anchors OUT --systems ... --seeds ...
set -euo pipefail
[ $# -ge 5 ] || { echo "usage: $0 OUT BUDGET SEEDS SYSTEMS DATASET..." >&2; exit 2; }
out=$1; budget=$2; seeds=$3; systems=$4; shift 4
here="$(cd "$(dirname "$0")" && pwd)"
bench="${BENCH_DIR:-$here/../../shared/bench}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
export AUTOML_PYTHON="${AUTOML_PYTHON:-$(command -v python3)}"
work="$(mktemp -d "${TMPDIR:-/tmp}/side-by-side-XXXX")"
git -C "$here/.." describe --always --dirty > "$out/commit.txt"  # -dirty: uncommitted edits were measured
echo "AG_PRESET=${AG_PRESET:-medium_quality} budget=$budget seeds=$seeds" >> "$out/commit.txt"
for d in "$@"; do
  for s in ${systems//,/ }; do
    echo "$(date +%T) $d $s $(cat /proc/loadavg)" >> "$out/load.txt"
    python3 "$bench/run_suite.py" "$s" --budget "$budget" --seeds "$seeds" --only "$d" \
      --results "$out" --work "$work/$s" >> "$out/run.log" 2>&1 || echo "$(date +%T) $d $s failed" >> "$out/load.txt"
  done
done
echo "$(date +%T) end $(cat /proc/loadavg)" >> "$out/load.txt"

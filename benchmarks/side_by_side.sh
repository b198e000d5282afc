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
# Every run is also measured as a whole process tree: benchmarks/cgroup_peak.py wraps each adapter in a memory
# cgroup of its own (tree_peak_mb, tree_anon_peak_mb in SYSTEM.jsonl, beside GNU time's largest single process,
# peak_rss_mb), and the engine's `automl` command in another (engine_tree_peak_mb, engine_tree_anon_peak_mb).
# The harness itself runs unchanged from a folder that links it and holds the wrapped adapters. AUTOML_BIN
# (default: automl on PATH) is the engine's command, e.g. a script adding overrides.
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
harness="$work/harness"
mkdir -p "$harness/adapters"
ln -s "$(cd "$bench" && pwd)/run_suite.py" "$harness/run_suite.py"  # its HERE is the link's folder
for s in ${systems//,/ }; do
  printf '#!/bin/bash\nexec python3 %q --merge "$1/engine_tree.json" "$1/timing.json" %q "$@"\n' \
    "$here/cgroup_peak.py" "$(cd "$bench" && pwd)/adapters/$s" > "$harness/adapters/$s"
  chmod +x "$harness/adapters/$s"
done
# the engine's own command in a group of its own (engine_tree_*): the adapter that waits for it and then loads the
# graph into onnxruntime to score it is not part of the engine, as FLAML's predict is part of FLAML's process
real_automl="${AUTOML_BIN:-$(command -v automl)}"
cat > "$harness/automl" <<EOF
#!/bin/bash
for a in "\$@"; do case "\$a" in hydra.run.dir=*) wd="\$(dirname "\${a#hydra.run.dir=}")";; esac; done
exec python3 "$here/cgroup_peak.py" --prefix engine_ "\$wd/engine_tree.json" "$real_automl" "\$@"
EOF
chmod +x "$harness/automl"
export AUTOML_BIN="$harness/automl"
suite="$(cd "$bench/../datasets" && pwd)/datasets.yaml"
git -C "$here/.." describe --always --dirty > "$out/commit.txt"  # -dirty: uncommitted edits were measured
echo "AG_PRESET=${AG_PRESET:-medium_quality} budget=$budget seeds=$seeds" >> "$out/commit.txt"
for d in "$@"; do
  for s in ${systems//,/ }; do
    echo "$(date +%T) $d $s $(cat /proc/loadavg)" >> "$out/load.txt"
    python3 "$harness/run_suite.py" "$s" --suite "$suite" --budget "$budget" --seeds "$seeds" --only "$d" \
      --results "$out" --work "$work/$s" >> "$out/run.log" 2>&1 || echo "$(date +%T) $d $s failed" >> "$out/load.txt"
  done
done
echo "$(date +%T) end $(cat /proc/loadavg)" >> "$out/load.txt"

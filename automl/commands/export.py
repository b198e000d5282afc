"""`automl export RUN_DIR --trial N --out DIR`: any completed trial of a run as its own verified graph."""
from __future__ import annotations

import argparse
import sys

from automl.stages.export_trial import export_trial


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="automl export",
        description="Refit a completed trial of a run folder with its searched configuration, export it as one "
                    "ONNX graph, gate it on parity and write it with its own model card and manifest into --out "
                    "(a run folder of its own: `automl predict --model DIR`, `automl serve --model DIR`).")
    ap.add_argument("run_dir", metavar="RUN_DIR", help="the run folder the search wrote")
    ap.add_argument("--trial", type=int, required=True, metavar="N", help="trial number (leaderboard.csv `trial`)")
    ap.add_argument("--out", required=True, metavar="DIR", help="an empty or new folder for the exported model")
    a = ap.parse_args(argv)
    manifest = export_trial(a.run_dir, a.trial, a.out)
    if manifest.status != "COMPLETE":
        print(f"error: trial {a.trial} was not exported: {manifest.error}", file=sys.stderr)
        return 1
    f = manifest.final
    print(f"trial {a.trial} ({f['family']}): CV {manifest.metric}={f['cv_mean']:.5g}, holdout "
          f"{f.get('holdout_score', float('nan')):.5g}, parity max diff {f['parity']['max_diff']:.2g}; "
          f"wrote {a.out}/model.onnx")
    return 0

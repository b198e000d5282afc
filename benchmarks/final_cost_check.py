"""How the final stage's price (automl/search/budget.py final_cost_parts) compares with what it measured.

For each run folder (manifest.json + study.journal), prices the shipped plan's members as the search did
and sets each part beside the final stage's own timings:
  fit      refit on the search rows (+ on all rows with export.refit_full)   vs  refit_s + refit_full_s
  export   ONNX conversion, parity, the ONNX holdout scoring                 vs  export_s + parity_s + holdout_onnx_s
  predict  scoring the holdout in Python                                     vs  holdout_predict_s
and the whole final stage (timings.final_s, with ensemble selection, stacking, calibration, explanations).

    python benchmarks/final_cost_check.py /tmp/bench-work/automl/*/run
Runs on sampled data (final_scale > 1) are priced at scale 1 and marked.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import median
from typing import Any

from automl.estimators import REGISTRY
from automl.search.budget import final_cost_parts

MEASURED = {"fit": ("refit_s", "refit_full_s"), "export": ("export_s", "parity_s", "holdout_onnx_s"),
            "predict": ("holdout_predict_s", "checkpoint_s")}


def trials(run: Path) -> dict[int, Any]:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(run / "study.journal")))
    study = optuna.load_study(study_name=None, storage=storage)
    return {t.number: t for t in study.get_trials(deepcopy=False)}


def check(run: Path) -> dict[str, Any] | None:
    m = json.loads((run / "manifest.json").read_text())
    final = m.get("final") or {}
    timings = final.get("timings") or {}
    if not timings or "estimated_s" not in final:
        return None
    numbers = [x["trial"] for x in final.get("members") or []] or [final.get("trial")]
    by_number = trials(run)
    refit_full = "refit_full_s" in timings
    priced = {"fit": 0.0, "export": 0.0, "predict": 0.0, "fixed": 0.0}
    families = []
    for n in numbers:
        t = by_number.get(n) if isinstance(n, int) else None
        if t is None:
            return None
        family = t.params.get("family", "")
        spec = REGISTRY.get(family) if family in REGISTRY else None
        parts = final_cost_parts(t.user_attrs, int(m["search"]["cv_folds"]), refit_full, 1.0, 1.0,
                                 int(m["search"].get("holdout_rows") or 0), bool(spec and spec.predict_grows),
                                 spec.early_refit_ratio if spec else 1.0)
        for k, v in parts.items():
            priced[k] += v
        families.append(family)
    measured = {k: sum(float(timings.get(x) or 0.0) for x in keys) for k, keys in MEASURED.items()}
    return {"run": str(run), "kind": final.get("kind"), "families": families, "priced": priced,
            "measured": measured, "estimated_s": final["estimated_s"],
            "final_s": float(m.get("timings", {}).get("final_s") or 0.0), "refit_full": refit_full}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    rows = [r for r in (check(p) for p in args.runs) if r is not None]
    print("| run | shipped | part | priced s | measured s | measured / priced |")
    print("|---|---|---|---|---|---|")
    ratios: dict[str, list[float]] = {}
    for r in rows:
        name = "/".join(Path(r["run"]).parts[-2:])
        for part in ("fit", "export", "predict"):
            p, q = r["priced"][part], r["measured"][part]
            if p > 0.05:
                ratios.setdefault(part, []).append(q / p)
            print(f"| {name} | {r['kind']} {'+'.join(r['families'])} | {part} | {p:.2f} | {q:.2f} | "
                  f"{q / p if p > 0.05 else float('nan'):.2f} |")
        total = sum(r["priced"].values())
        ratios.setdefault("whole final stage", []).append(r["final_s"] / total)
        print(f"| {name} | | whole final stage | {total:.2f} | {r['final_s']:.2f} | {r['final_s'] / total:.2f} |")
    print()
    for part, rs in ratios.items():
        print(f"{part}: median measured/priced {median(rs):.2f} over {len(rs)} runs (min {min(rs):.2f}, "
              f"max {max(rs):.2f})")


if __name__ == "__main__":
    main()

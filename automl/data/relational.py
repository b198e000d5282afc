"""Several tables -> one model frame: point-in-time aggregates over related tables (featuretools DFS).

The target table's rows get aggregates (count, sum, mean, ...) over the tables related to it, each
computed with a cutoff time = the row's own time index, so no row sees data from after its time.
Aggregates over other tables cannot live in a single-row ONNX graph, so the run folder keeps what
`automl predict --tables` needs to compute them the same way: the feature definitions
(featuretools JSON, not pickle) and the table layout with each column's woodwork logical type.
"""
from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from automl.config.schema import DataConfig
from automl.data.load import file_sha256, read_table
from automl.errors import UserError
from automl.io import RunPaths, write_json, write_text

log = logging.getLogger("automl")


def layout_from_config(data: DataConfig) -> dict[str, Any]:
    """The table layout as plain JSON-able data (also what the run folder stores)."""
    return {"target_table": data.target_table,
            "tables": {n: {"path": str(t.path), "index": t.index, "time_index": t.time_index or ""}
                       for n, t in data.tables.items()},
            "relationships": [{"parent": r.parent, "child": r.child} for r in data.relationships],
            "aggregates": list(data.aggregates), "max_depth": int(data.max_depth),
            "cutoff_round": data.cutoff_round}


def _split_ref(ref: str, field: str, tables: dict[str, Any]) -> tuple[str, str]:
    if not isinstance(ref, str) or ref.count(".") < 1:
        raise UserError(field, f"'{ref}' is not of the form table.column", "Write it as e.g. customers.customer_id.")
    table, column = ref.split(".", 1)
    if table not in tables:
        raise UserError(field, f"'{table}' is not a declared table", f"Use one of: {', '.join(tables)}.")
    return table, column


def validate_layout(layout: dict[str, Any], frames: dict[str, pd.DataFrame] | None = None,
                    target: str | None = None) -> None:
    """Config rules (and, given the frames, column rules), as one-line user errors naming the field."""
    tables, tt = layout["tables"], layout["target_table"]
    if not tt:
        raise UserError("data.target_table", "is empty but data.tables declares tables",
                        f"Set data.target_table to one of: {', '.join(tables)}.")
    if tt not in tables:
        raise UserError("data.target_table", f"'{tt}' is not a declared table", f"Use one of: {', '.join(tables)}.")
    if layout["max_depth"] < 1:
        raise UserError("data.max_depth", f"must be >= 1, got {layout['max_depth']}", "Set data.max_depth=2.")
    _check_primitives(layout["aggregates"])
    if layout.get("cutoff_round"):
        try:
            pd.tseries.frequencies.to_offset(layout["cutoff_round"])
            pd.Timestamp("2020-01-01").floor(layout["cutoff_round"])
        except ValueError:
            raise UserError("data.cutoff_round", f"'{layout['cutoff_round']}' is not a fixed pandas frequency",
                            "Use e.g. 1h, 6h or 1D (or '' for exact cutoff times).") from None
    seen = set()
    for i, rel in enumerate(layout["relationships"]):
        pt, pc = _split_ref(rel["parent"], f"data.relationships[{i}].parent", tables)
        ct, _cc = _split_ref(rel["child"], f"data.relationships[{i}].child", tables)
        if pt == ct:
            raise UserError(f"data.relationships[{i}]", f"parent and child are the same table '{pt}'",
                            "Relate two different tables.")
        if pc != tables[pt]["index"]:
            raise UserError(f"data.relationships[{i}].parent", f"'{pc}' is not the index of table '{pt}' "
                            f"('{tables[pt]['index']}')", f"Set parent: {pt}.{tables[pt]['index']}.")
        if (pt, ct) in seen:
            raise UserError(f"data.relationships[{i}]", f"a second relationship between '{pt}' and '{ct}'",
                            "Declare one relationship per pair of tables.")
        seen.add((pt, ct))
    linked = {tt}
    for _ in tables:  # tables reachable from the target table through relationships
        for rel in layout["relationships"]:
            a, b = rel["parent"].split(".", 1)[0], rel["child"].split(".", 1)[0]
            if a in linked or b in linked:
                linked |= {a, b}
    unlinked = [n for n in tables if n not in linked]
    if unlinked:
        raise UserError("data.relationships", f"table '{unlinked[0]}' is not related to the target table '{tt}'",
                        f"Add a relationship for '{unlinked[0]}' or remove it from data.tables.")
    if frames is None:
        return
    for name, t in tables.items():
        df = frames[name]
        for key in ("index", "time_index"):
            col = t[key]
            if col and col not in df.columns:
                raise UserError(f"data.tables.{name}.{key}", f"'{col}' is not a column of {Path(t['path']).name}",
                                f"Use one of: {', '.join(map(str, list(df.columns)[:20]))}.")
        if df[t["index"]].isna().any() or df[t["index"]].duplicated().any():
            dup = df[t["index"]][df[t["index"]].duplicated()]
            raise UserError(f"data.tables.{name}.index", f"'{t['index']}' must be unique and non-missing"
                            + (f", but {dup.iloc[0]!r} repeats" if len(dup) else ""),
                            "Point index at a column with one id per row.")
        if t["time_index"] and name == layout["target_table"] and df[t["time_index"]].isna().any():
            raise UserError(f"data.tables.{name}.time_index", f"'{t['time_index']}' is missing in "
                            f"{int(df[t['time_index']].isna().sum())} row(s); it is each row's cutoff time",
                            "Fill it in for every row of the target table.")
        if t["time_index"]:
            ti = df[t["time_index"]]
            bad = pd.to_datetime(ti, errors="coerce", format="mixed").isna() & ti.notna()
            if bad.any():
                raise UserError(f"data.tables.{name}.time_index", f"'{t['time_index']}' holds "
                                f"{df[t['time_index']][bad].iloc[0]!r}, which is not a date/time",
                                "Send ISO dates/times (or set time_index: '').")
    for i, rel in enumerate(layout["relationships"]):
        for side in ("parent", "child"):
            tname, col = rel[side].split(".", 1)
            if col not in frames[tname].columns:
                raise UserError(f"data.relationships[{i}].{side}", f"'{col}' is not a column of table '{tname}'",
                                f"Use one of: {', '.join(map(str, list(frames[tname].columns)[:20]))}.")
    if target is not None and target not in frames[tt].columns:
        raise UserError("task.target", f"'{target}' is not a column of the target table '{tt}'",
                        f"Set task.target to one of: {', '.join(map(str, list(frames[tt].columns)[:20]))}.")


def _check_primitives(names: list[str]) -> None:
    import featuretools as ft

    known = set(ft.list_primitives().query("type == 'aggregation'")["name"])
    for n in names:
        if n not in known:
            raise UserError("data.aggregates", f"'{n}' is not a featuretools aggregation primitive",
                            "Use e.g. count, sum, mean, max, min, std, num_unique, last.")


def read_frames(layout: dict[str, Any], paths: dict[str, str] | None = None,
                field: str = "data.tables") -> dict[str, pd.DataFrame]:
    out = {}
    for name, t in layout["tables"].items():
        path = (paths or {}).get(name, t["path"])
        out[name] = read_table(path, f"{field}.{name}.path" if field == "data.tables" else f"{field} {name}")
    return out


def _entityset(layout: dict[str, Any], frames: dict[str, pd.DataFrame], target: str | None,
               logical_types: dict[str, dict[str, str]] | None = None) -> Any:
    import featuretools as ft

    es = ft.EntitySet(id="automl")
    for name, t in layout["tables"].items():
        df = frames[name].copy()
        if name == layout["target_table"] and target is not None and target in df.columns:
            df = df.drop(columns=[target])  # never an input to any aggregate
        if t["time_index"]:
            df[t["time_index"]] = pd.to_datetime(df[t["time_index"]], format="mixed")
        lt = None
        if logical_types is not None:
            lt = {c: v for c, v in logical_types[name].items() if c in df.columns}
        es.add_dataframe(dataframe_name=name, dataframe=df, index=t["index"],
                         time_index=t["time_index"] or None, logical_types=lt)
    for rel in layout["relationships"]:
        pt, pc = rel["parent"].split(".", 1)
        ct, cc = rel["child"].split(".", 1)
        es.add_relationship(pt, pc, ct, cc)
    return es


def _cutoffs(layout: dict[str, Any], frame: pd.DataFrame) -> pd.DataFrame | None:
    t = layout["tables"][layout["target_table"]]
    if not t["time_index"]:
        return None
    times = pd.to_datetime(frame[t["time_index"]], format="mixed")
    if layout.get("cutoff_round"):
        times = times.dt.floor(layout["cutoff_round"])  # down: a row may see less, never later data
    return pd.DataFrame({t["index"]: frame[t["index"]].to_numpy(), "time": times.to_numpy()})


def _to_model_columns(fm: pd.DataFrame) -> pd.DataFrame:
    """featuretools dtypes (Int64, boolean, Categorical) -> float64 or plain object strings."""
    out = {}
    for c in fm.columns:
        s = fm[c]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            out[c] = pd.to_numeric(s.astype("float64"), errors="coerce")
        elif pd.api.types.is_datetime64_any_dtype(s):
            out[c] = s.astype(str).where(s.notna(), None)
        else:
            out[c] = s.astype(object).where(s.notna(), None)
    return pd.DataFrame(out, index=fm.index)


def _join(layout: dict[str, Any], target_frame: pd.DataFrame, fm: pd.DataFrame) -> pd.DataFrame:
    """Target table rows in their file order, plus the aggregate columns."""
    idx = layout["tables"][layout["target_table"]]["index"]
    fm = fm[~fm.index.duplicated()]
    agg = _to_model_columns(fm).reindex(pd.Index(target_frame[idx].to_numpy()))
    agg.index = target_frame.index
    clash = [c for c in agg.columns if c in target_frame.columns]
    if clash:
        raise UserError(f"column '{clash[0]}'", "the target table has a column with an aggregate feature's name",
                        "Rename that column.")
    return pd.concat([target_frame, agg], axis=1)


def _quiet() -> Any:
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore")  # featuretools/woodwork emit pandas FutureWarnings per primitive
    return ctx


def build_flat_frame(data: DataConfig, target: str, run_dir: Path) -> pd.DataFrame:
    """Read the declared tables, synthesise point-in-time aggregates, save their definitions; one frame out."""
    import featuretools as ft

    layout = layout_from_config(data)
    if str(data.path) != layout["tables"].get(data.target_table, {}).get("path", str(data.path)):
        raise UserError("data.path", f"'{data.path}' is not the target table's path",
                        f"Set data.path=${{data.tables.{data.target_table}.path}} (or leave it to the data config).")
    validate_layout(layout)
    frames = read_frames(layout)
    validate_layout(layout, frames, target)
    tt = layout["target_table"]
    frame = frames[tt]
    ctx = _quiet()
    try:
        es = _entityset(layout, frames, target)
        ignore = {tt: [c for c in frame.columns if c == target]}
        features = ft.dfs(entityset=es, target_dataframe_name=tt, agg_primitives=layout["aggregates"],
                          trans_primitives=[], max_depth=layout["max_depth"], features_only=True,
                          ignore_columns=ignore)
        # the target table's own columns come from the file, as in a single-table run
        features = [f for f in features if not isinstance(f, ft.IdentityFeature)]
        if not features:
            raise UserError("data.relationships", f"no aggregate feature can be made for table '{tt}'",
                            "Relate child tables (with numeric or categorical columns) to the target table.")
        fm = ft.calculate_feature_matrix(features, entityset=es, cutoff_time=_cutoffs(layout, frame),
                                         n_jobs=1, verbose=False) if layout["tables"][tt]["time_index"] else \
            ft.calculate_feature_matrix(features, entityset=es, n_jobs=1, verbose=False)
        logical = {n: {c: str(v) for c, v in es[n].ww.logical_types.items()} for n in layout["tables"]}
    finally:
        ctx.__exit__(None, None, None)
    run = RunPaths(Path(run_dir))
    write_text(run.relational_features, ft.save_features(features))
    write_json(run.relational_layout, {**layout, "target": target, "logical_types": logical,
                                       "point_in_time": bool(layout["tables"][tt]["time_index"]),
                                       "features": describe(features)})
    flat = _join(layout, frame, fm)
    log.info("relational: %d tables -> %d aggregate feature(s) on '%s' (%d rows)%s", len(frames), len(features), tt,
             len(flat), ", point in time" if layout["tables"][tt]["time_index"] else ", NO cutoff (no time_index)")
    if not layout["tables"][tt]["time_index"]:
        log.warning("relational: target table '%s' has no time_index: aggregates use all rows of related tables", tt)
    return flat


def describe(features: list[Any]) -> list[dict[str, str]]:
    """Name and plain-language definition of each synthesised feature."""
    out = []
    for f in features:
        try:
            desc = __import__("featuretools").describe_feature(f)
        except Exception:  # a description is a courtesy; the name is the definition
            desc = f.get_name()
        out.append({"name": f.get_name(), "primitive": type(f.primitive).__name__ if hasattr(f, "primitive") else "",
                    "definition": desc})
    return out


def read_layout(run_dir: Path) -> dict[str, Any]:
    """The layout a run on several tables saved: tables, relationships, logical types, feature definitions."""
    return json.loads(RunPaths(Path(run_dir)).relational_layout.read_text())


def compute_from_run(run_dir: Path, paths: dict[str, str] | None = None, field: str = "--tables") -> pd.DataFrame:
    """The model frame from raw tables, with the run's saved feature definitions and layout (no refitting)."""
    import featuretools as ft

    run = RunPaths(Path(run_dir))
    if not run.relational_layout.exists():
        raise UserError("--model", f"run folder '{run_dir}' holds no "
                        f"{run.relational_layout.relative_to(run.root).as_posix()}",
                        "Use --tables only with a run trained on several tables (data.tables).")
    layout = read_layout(run_dir)
    unknown = [n for n in (paths or {}) if n not in layout["tables"]]
    if unknown:
        raise UserError(field, f"'{unknown[0]}' is not a table of this model",
                        f"Name one of: {', '.join(layout['tables'])}.")
    frames = read_frames(layout, paths, field)
    validate_layout(layout, frames)
    tt = layout["target_table"]
    ctx = _quiet()
    try:
        es = _entityset(layout, frames, layout.get("target"), layout["logical_types"])
        features = ft.load_features(run.relational_features.read_text())
        cut = _cutoffs(layout, frames[tt])
        fm = (ft.calculate_feature_matrix(features, entityset=es, cutoff_time=cut, n_jobs=1, verbose=False)
              if cut is not None else ft.calculate_feature_matrix(features, entityset=es, n_jobs=1, verbose=False))
    finally:
        ctx.__exit__(None, None, None)
    return _join(layout, frames[tt], fm)


def tables_sha256(data: DataConfig) -> str:
    """One hash over every table file and the layout: what a resumed study must match."""
    layout = layout_from_config(data)
    h = hashlib.sha256(json.dumps({k: v for k, v in layout.items() if k != "tables"}, sort_keys=True).encode())
    for name in sorted(layout["tables"]):
        t = layout["tables"][name]
        h.update(json.dumps([name, t["index"], t["time_index"], file_sha256(t["path"])]).encode())
    return h.hexdigest()

"""Feature synthesis: featuretools' own values, ONNX parity of every synthesised feature, the card."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from automl.data.roles import infer_schema, to_epoch_seconds, to_model_frame
from automl.errors import UserError
from automl.export.contract import feeds_from_frame
from automl.features.synthesis import DATETIME_PRIMITIVES, DFSFeatures, RelevanceSelector

NUM = pd.DataFrame({
    "price": [10.0, 0.0, np.nan, -2.5, 7.0, 0.0, 3.0e30, 1.0],
    "area": [2.0, 0.0, 1.0, 0.0, np.nan, 5.0, 1.0e10, -4.0],
    "rooms": [1.0, 2.0, 3.0, 4.0, 0.0, 6.0, 7.0, 8.0],
})
STAMPS = ["2020-01-05 13:45:10", "1969-12-31 23:59:59", None, "2024-02-29 00:00:00", "2000-03-01 00:00:01",
          "1900-01-01 12:00:00", "2038-01-19 03:14:07", "2023-12-31 23:59:59"]
TEXTS = ["hello world, it's me", "", "  a -- b!! ", "x\ty\nz", "ünï çödé", "one\r two", "\n", "... ?"]
Y = np.array([0, 1, 0, 1, 1, 0, 1, 0])


def _featuretools(df: pd.DataFrame, logical: str, prims: list[str]) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import featuretools as ft

        df = df.copy()
        df.insert(0, "row", np.arange(len(df)))
        es = ft.EntitySet("t")
        es.add_dataframe(dataframe=df, dataframe_name="t", index="row",
                         logical_types={c: logical for c in df.columns if c != "row"})
        fm, _ = ft.dfs(entityset=es, target_dataframe_name="t", trans_primitives=prims, agg_primitives=[],
                       max_depth=1)
    return fm


def test_numeric_definitions_match_featuretools_values():
    X = NUM.astype(np.float32)
    dfs = DFSFeatures("numeric", max_features=None).fit(X, Y)
    ours = pd.DataFrame(dfs.transform(X), columns=dfs.get_feature_names_out())
    ft_vals = _featuretools(X.astype(np.float64), "Double", list(dfs.primitives or
                                                            ("add_numeric", "subtract_numeric",
                                                             "multiply_numeric", "divide_numeric")))
    synthesised = [c for c in ft_vals.columns if c not in X.columns]
    assert sorted(ours.columns) == sorted(synthesised)  # featuretools decided which features exist
    for name in synthesised:
        ref = ft_vals[name].to_numpy(dtype=np.float64)
        got = ours[name].to_numpy(dtype=np.float64)
        finite = np.isfinite(ref) & (np.abs(ref) < 3e38)  # float32 range
        np.testing.assert_allclose(got[finite], ref[finite], rtol=1e-6, err_msg=name)
        # featuretools gives +/-inf (x / 0) or NaN (0 / 0); the engine gives missing for both
        assert np.isnan(got[~finite]).all(), name
    assert np.isnan(ours["price / area"].to_numpy()[[1, 3]]).all()  # zero denominators


def test_datetime_parts_match_featuretools_values():
    s = pd.Series(STAMPS)
    secs = pd.DataFrame({"when": to_epoch_seconds(s)})
    dfs = DFSFeatures("datetime", max_features=None).fit(secs, Y)
    ours = pd.DataFrame(dfs.transform(secs), columns=dfs.get_feature_names_out())
    ft_vals = _featuretools(pd.DataFrame({"when": pd.to_datetime(s)}), "Datetime", list(DATETIME_PRIMITIVES))
    assert sorted(ours.columns) == sorted(c for c in ft_vals.columns if c != "when")
    for name in ours.columns:
        ref = pd.to_numeric(ft_vals[name].astype(object), errors="coerce").to_numpy(dtype=np.float64)
        np.testing.assert_array_equal(ours[name].to_numpy(dtype=np.float64), ref, err_msg=name)


def test_text_counts_match_featuretools_values():
    X = pd.DataFrame({"note": TEXTS})
    dfs = DFSFeatures("text", max_features=None).fit(X, Y)
    ours = pd.DataFrame(dfs.transform(X), columns=dfs.get_feature_names_out())
    ft_vals = _featuretools(X, "NaturalLanguage", ["num_words", "num_characters"])
    for name in ("NUM_WORDS(note)", "NUM_CHARACTERS(note)"):
        np.testing.assert_array_equal(ours[name].to_numpy(dtype=np.float64),
                                      ft_vals[name].to_numpy(dtype=np.float64), err_msg=name)


def _mixed_frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    words = ("the battery died after two weeks screen is bright and sharp delivery was late support "  # noqa: SIM905
             "never answered great value for money would buy again").split()
    df = pd.DataFrame({
        "price": rng.normal(100, 30, n).round(2),
        "area": rng.integers(0, 4, n).astype(float),  # many zero denominators
        "rooms": rng.normal(3, 1, n),
        "when": (pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.uniform(0, 3e8, n).round(), unit="s"))
        .strftime("%Y-%m-%dT%H:%M:%S"),
        "note": [" ".join(rng.choice(words, rng.integers(3, 12))) for _ in range(n)],
        "y": rng.integers(0, 2, n),
    })
    df.loc[::6, "price"] = np.nan
    df.loc[::7, "when"] = None
    df.loc[::9, "note"] = None
    return df


def test_every_synthesised_feature_has_exact_onnx_parity_with_nan_zero_and_unseen_text():
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer

    from automl.export.converters import register_converters
    from automl.export.onnx import TARGET_OPSET, session

    df = _mixed_frame()
    schema = infer_schema(df, "y", [], [])
    assert {c.name: c.role for c in schema.features} == {"price": "numeric", "area": "numeric", "rooms": "numeric",
                                                          "when": "datetime", "note": "text"}
    X = to_model_frame(df, schema)
    ct = ColumnTransformer([("dfs", DFSFeatures("numeric", max_features=None), ["price", "area", "rooms"]),
                            ("dt", DFSFeatures("datetime", max_features=None), ["when"]),
                            ("txt", DFSFeatures("text", max_features=None), ["note"])])
    ct.fit(X.iloc[:40], df["y"].iloc[:40])
    register_converters()
    kinds = {"numeric": FloatTensorType, "datetime": DoubleTensorType}
    model = convert_sklearn(ct, initial_types=[(c.name, kinds.get(c.role, StringTensorType)([None, 1]))
                                               for c in schema.features], target_opset=TARGET_OPSET)
    unseen = X.iloc[40:].copy()
    unseen["note"] = ["zebra quokka!!", "", "   ", "tab\there", "new\nline words", "é accent", "--- ...",
                      *unseen["note"].iloc[7:]]
    unseen.loc[unseen.index[:3], "area"] = 0.0
    for rows in (X.iloc[40:], unseen):
        feeds = feeds_from_frame(rows, schema.to_json())
        got = session(model.SerializeToString()).run(None, feeds)[0]
        np.testing.assert_array_equal(got, ct.transform(rows).astype(np.float32))  # NaN == NaN here
    assert np.isnan(ct.transform(unseen)[:3]).any()  # the zero denominators did reach the graph


@pytest.mark.onnx
def test_full_pipeline_with_every_synthesis_choice_exports_with_parity_and_the_card_lists_them():
    from sklearn.linear_model import LogisticRegression

    from automl.export.onnx import check_parity, export_onnx
    from automl.features.build import describe
    from automl.preprocessing.pipeline import build_pipeline
    from automl.reporting.features_section import synthesised_features

    df = _mixed_frame(120)
    schema = infer_schema(df, "y", [], [])
    X, y = to_model_frame(df, schema), df["y"].to_numpy()
    pre = {"scaler": "standard", "native_nan": False, "num_impute": "median", "datetime_parts": "full",
           "dfs": True, "dfs_primitives": "ratios", "dfs_max_features": 4, "poly": True, "poly_top_k": 2,
           "pca_components": 2, "text_vectorizer": "tfidf", "text_svd": 5, "text_stats": True, "select": 0.75}
    pipe = build_pipeline(LogisticRegression(max_iter=300), pre, schema, ["price"], "binary").fit(X[:90], y[:90])
    model = export_onnx(pipe, schema, "binary", [0, 1], {})
    report = check_parity(model, pipe, X[90:], schema, "binary", 1e-5, seed=0)
    assert report["passed"] and report["max_diff"] <= 1e-5
    rows = describe(pipe)
    n_synth = sum(pipe.named_steps["pre"].output_indices_[p].stop - pipe.named_steps["pre"].output_indices_[p].start
                  for p in ("dt", "dfs", "txtstat", "pca"))
    assert 0 < len(rows) <= n_synth + 10
    kept = set(pipe.named_steps["select"].indices_)
    assert len(kept) < pipe.named_steps["select"].n_features_in_  # selection really dropped columns
    card = "\n".join(synthesised_features({"synthesised_features": [rows]}))
    ratios = [r for r in rows if r["part"] == "dfs"]
    for r in ratios:  # e.g. "ratio(price, area) = price / area (missing where area is 0)"
        a, b = r["feature"].split(" / ")
        assert f"ratio({a}, {b}) = {a} / {b}" in card
    assert "Synthesised features the model uses" in card and "pca" in card


def test_selector_keeps_the_relevant_columns_and_tolerates_nan():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    X = np.column_stack([rng.normal(size=200), y + rng.normal(scale=0.1, size=200), rng.normal(size=200)])
    X[::5, 1] = np.nan
    sel = RelevanceSelector(keep=0.3).fit(X, y)  # ceil(0.3 * 3) = 1 column
    assert sel.indices_.tolist() == [1]
    assert sel.transform(X).shape == (200, 1)


def test_datetime_contract_feeds_epoch_seconds_and_names_bad_values():
    schema = [{"name": "when", "kind": "datetime", "dtype": "float64"}]
    df = pd.DataFrame({"when": ["2024-05-01T13:45:00", "2024-05-01T15:45:00+02:00", "", None, "1714571100"]})
    with pytest.raises(UserError, match="when"):
        feeds_from_frame(df, schema)  # a bare number inside a text column is not a date
    feeds = feeds_from_frame(df.iloc[:4], schema)["when"].reshape(-1)
    assert feeds.dtype == np.float64
    assert feeds[0] == feeds[1] == 1714571100.0  # offsets convert to UTC
    assert np.isnan(feeds[2:]).all()
    numeric = feeds_from_frame(pd.DataFrame({"when": [1714571100.5]}), schema)["when"]
    assert numeric[0, 0] == 1714571100.5  # epoch seconds pass through


def test_parts_constant_in_training_are_dropped():
    dates = pd.Series(["2020-01-01", "2020-03-04", None, "2021-07-09"])  # dates only: hour and minute are 0
    dfs = DFSFeatures("datetime", max_features=None).fit(pd.DataFrame({"d": to_epoch_seconds(dates)}), Y[:4])
    assert list(dfs.get_feature_names_out()) == ["DAY(d)", "DAY_OF_YEAR(d)", "MONTH(d)", "WEEKDAY(d)", "YEAR(d)"]


def test_selector_obeys_the_sklearn_estimator_contract():
    from sklearn.utils.estimator_checks import check_estimator

    failed = [(r["check_name"], str(r["exception"])[:200]) for r in check_estimator(RelevanceSelector(), on_fail=None)
              if r["status"] == "failed"]
    assert failed == []


def test_features_enumerated_ahead_are_the_ones_featuretools_enumerates_for_each_fit(monkeypatch):
    """The search enumerates every feature of the data's columns once, in a child (search/enumerate_ahead.py),
    and each fit filters that answer: the features must be those featuretools gives the fit's own columns
    (a subset, in their order: max_inputs keeps the most relevant of each fold) and primitives, on its values."""
    from automl.features import synthesis
    from automl.features.build import DATETIME_SETS, DFS_SETS, enumerating

    rng = np.random.default_rng(1)
    n, names = 80, ["b", "Zeta", "x 1", "a", "é", "SUM(t.v)", "x10", "x2"]
    df = pd.DataFrame({c: rng.normal(0, 1 + i, n) for i, c in enumerate(names)})
    df.loc[::5, "a"] = np.nan
    df = df.assign(when=_mixed_frame(n)["when"], note=_mixed_frame(n)["note"], y=rng.integers(0, 2, n))
    schema = infer_schema(df, "y", [], [])
    X, y = to_model_frame(df, schema), df["y"].to_numpy()
    table = synthesis.enumerate_columns(enumerating({"dfs": True, "text_stats": True}, schema))
    assert set(table) == {"numeric", "datetime", "text"} and table["numeric"][0] == tuple(names)
    fits = [(DFSFeatures("numeric", prims, max_features=None, max_inputs=k), names)
            for prims in DFS_SETS.values() for k in (2, 3, 5, 8)]
    fits += [(DFSFeatures("datetime", parts, max_features=None), ["when"]) for parts in DATETIME_SETS.values()]
    fits += [(DFSFeatures("text", max_features=None), ["note"])]
    for seed in range(3):  # other rows, other most relevant columns
        rows = np.random.default_rng(seed).choice(n, 60, replace=False)
        for make, cols in fits:
            monkeypatch.setattr(synthesis, "_known", {})
            own = make.__class__(**make.get_params()).fit(X[cols].iloc[rows], y[rows]).features_
            synthesis.remember(table)
            ahead = make.__class__(**make.get_params()).fit(X[cols].iloc[rows], y[rows]).features_
            assert ahead == own and own, (make.kind, make.primitives, make.max_inputs)
    # columns outside what was enumerated (another frame's): featuretools is asked, as before
    other = DFSFeatures("numeric", max_features=None).fit(pd.DataFrame({"p": [1.0, 2.0, 4.0], "q": [3.0, 1.0, 2.0]}))
    assert {f[0] for f in other.features_} == set(DFS_SETS["arithmetic"])

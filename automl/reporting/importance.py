"""Which hyperparameters mattered: fANOVA importance over the trials of the run's study journal."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from automl.io import RunPaths


def load_study(paths: RunPaths) -> Any:
    """The run's Optuna study from its journal, or None when the folder holds none."""
    import optuna  # deferred: the report's tables-only path never needs it
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if not paths.study.exists():
        return None
    storage = JournalStorage(JournalFileBackend(str(paths.study)))
    names = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=names[0], storage=storage) if names else None


def hyperparameter_importance(study: Any, family: str, greater: bool) -> tuple[dict[str, float], str]:
    """fANOVA importance of one family's hyperparameters (and preprocessing choices), over its completed
    trials; Optuna's evaluator needs one parameter space, so one family at a time: the chosen one, or the
    most tried one when the chosen one has too few trials."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
    counts = pd.Series([t.params.get("family") for t in complete]).value_counts()
    if counts.get(family, 0) < 6 and len(counts) and counts.iloc[0] >= 6:
        family = str(counts.index[0])
    trials = [t for t in complete if t.params.get("family") == family]
    if len(trials) < 6:
        return {}, f"{len(trials)} completed {family} trial(s): too few to say which hyperparameters mattered"
    common = set.intersection(*(set(t.params) for t in trials)) - {"family"}
    varied = [p for p in sorted(common) if len({json.dumps(t.params[p], default=str) for t in trials}) > 1]
    if not varied:
        return {}, f"the {family} trials did not vary any hyperparameter"
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as the search's study: the lean fork imports optuna anew
    sub = optuna.create_study(direction="maximize" if greater else "minimize")
    for t in trials:
        sub.add_trial(optuna.trial.create_trial(
            params={p: t.params[p] for p in varied}, distributions={p: t.distributions[p] for p in varied},
            value=t.values[0]))
    ev = optuna.importance.FanovaImportanceEvaluator(n_trees=32, seed=0)
    return optuna.importance.get_param_importances(sub, evaluator=ev), f"fANOVA over {len(trials)} {family} trials"

"""How a worker takes its next trial from a shared study."""
import optuna

from automl.search import coordination as co


def test_a_queued_retry_runs_before_older_queued_trials():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    study.enqueue_trial({"x": 1.0}, user_attrs={"origin": "portfolio"})
    study.enqueue_trial({"x": 2.0}, user_attrs={"origin": "portfolio"})
    study.enqueue_trial({"x": 3.0}, user_attrs={"retry_of": 0})
    order = []
    for _ in range(3):
        t = co.ask(study)
        order.append(t.suggest_float("x", 0.0, 10.0))
        study.tell(t, 0.0)
    assert order == [3.0, 1.0, 2.0]
    assert co.ask(study).number == 3  # an empty queue: a new trial, as study.ask() gives

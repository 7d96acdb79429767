"""Accuracy-matrix metrics on a hand-computed 3-task matrix."""

import math

import pytest

from optbias.continual import metrics

# R[i][j]: accuracy on task j after training task i.
R = [
    [0.90, 0.10, 0.05],
    [0.60, 0.80, 0.10],
    [0.30, 0.70, 0.95],
]


def test_average_accuracy():
    assert metrics.average_accuracy(R) == pytest.approx((0.30 + 0.70 + 0.95) / 3)


def test_forgetting_is_best_earlier_minus_final():
    # task 0: max(0.90, 0.60) - 0.30 = 0.60; task 1: max(0.10, 0.80) - 0.70 = 0.10
    assert metrics.forgetting_per_task(R) == pytest.approx([0.60, 0.10])
    assert metrics.average_forgetting(R) == pytest.approx(0.35)


def test_forgetting_uses_the_max_not_the_diagonal():
    # task 0 peaks after task 1 (0.95 > 0.50), so its forgetting is 0.95 - 0.40, not 0.50 - 0.40.
    R3 = [[0.50, 0.0, 0.0], [0.95, 0.9, 0.0], [0.40, 0.5, 1.0]]
    assert metrics.forgetting_per_task(R3) == pytest.approx([0.55, 0.40])


def test_backward_transfer():
    # mean(0.30 - 0.90, 0.70 - 0.80) = mean(-0.60, -0.10) = -0.35
    assert metrics.backward_transfer(R) == pytest.approx(-0.35)


def test_improving_on_an_old_task_is_negative_forgetting():
    # with T = 2 only R[0][0] counts as "before": 0.50 - 0.95 = -0.45 (positive backward transfer)
    assert metrics.forgetting_per_task([[0.50, 0.0], [0.95, 0.9]]) == pytest.approx([-0.45])
    assert metrics.backward_transfer([[0.50, 0.0], [0.95, 0.9]]) == pytest.approx(0.45)


def test_learning_accuracy_is_the_mean_of_the_diagonal():
    assert metrics.learning_accuracy(R) == pytest.approx((0.90 + 0.80 + 0.95) / 3)
    # Learning less cannot hide forgetting: a model that never learns task 1 forgets nothing of it.
    never_learned = [[0.5, 0.1], [0.5, 0.9]]
    assert metrics.average_forgetting(never_learned) == 0.0 and metrics.learning_accuracy(never_learned) == 0.7
    with pytest.raises(ValueError, match="square"):
        metrics.learning_accuracy([[0.5, 0.5]])


def test_no_forgetting_gives_zero_and_single_task_is_defined():
    perfect = [[1.0, 0.0], [1.0, 1.0]]
    assert metrics.average_forgetting(perfect) == 0.0
    assert metrics.backward_transfer(perfect) == 0.0
    assert metrics.summarize([[0.7]]) == {
        "average_accuracy": 0.7, "forgetting": [], "average_forgetting": 0.0, "bwt": 0.0,
        "final_accuracy": [0.7], "mean_accuracy_old_tasks": None, "learning_accuracy": 0.7,
    }


def test_summarize_collects_every_scalar():
    s = metrics.summarize(R)
    assert s["mean_accuracy_old_tasks"] == pytest.approx(0.5)
    assert s["final_accuracy"] == [0.30, 0.70, 0.95]
    assert math.isclose(s["bwt"], -0.35)


@pytest.mark.parametrize("bad", [[], [[0.1, 0.2]], [[[0.1]]]])
def test_non_square_matrix_is_rejected(bad):
    with pytest.raises(ValueError, match="square"):
        metrics.average_accuracy(bad)


def test_learned_rule_known_answers_at_the_boundary():
    # Halfway from chance to perfect: 0.5 + 0.5 / 2 = 0.75 on a pair, 0.1 + 0.9 / 2 = 0.55 on ten classes.
    assert metrics.LEARNED_FRACTION == 0.5
    assert metrics.learned_threshold(0.5) == 0.75 and metrics.learned_threshold(0.1) == pytest.approx(0.55)
    assert metrics.learned([0.75], 0.5) is True      # exactly at the threshold: learned
    assert metrics.learned([0.749], 0.5) is False
    assert metrics.learned([0.70, 0.80], 0.5) is True  # judged on the mean over seeds, not seed by seed
    assert metrics.learned([0.99, 0.50], 0.5) is False  # mean 0.745
    assert metrics.learned([0.56], 0.1) is True and metrics.learned([0.549], 0.1) is False
    assert metrics.learned([0.193], 0.5) is False and metrics.learned([0.105], 0.1) is False  # shampoo-nograft


def test_learned_rule_rejects_what_it_cannot_judge():
    with pytest.raises(ValueError, match="no learning accuracy"):
        metrics.learned([], 0.5)
    with pytest.raises(ValueError, match="finite fractions"):
        metrics.learned([math.nan], 0.5)
    with pytest.raises(ValueError, match="finite fractions"):
        metrics.learned([1.2], 0.5)
    with pytest.raises(ValueError, match=r"chance accuracy must be in \(0, 1\]"):
        metrics.learned([0.9], 0.0)

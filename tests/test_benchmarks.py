import pytest
import torch

from optbias.continual import benchmarks
from optbias.continual import tasks as tasks_mod
from optbias.continual.benchmarks import DEFAULT_PAIRS


def toy_data(n_per_class=6):
    y = torch.arange(10).repeat_interleave(n_per_class)
    x = (torch.arange(len(y) * 784) % 256).to(torch.uint8).reshape(len(y), 784)
    return {"x_train": x, "y_train": y, "x_test": x[::2].clone(), "y_test": y[::2].clone()}


def test_class_incremental_pairs_and_class_sets():
    tasks = tasks_mod.class_incremental(toy_data(), DEFAULT_PAIRS)
    assert [t.classes for t in tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    for task in tasks:
        assert set(task.y_train.tolist()) == set(task.classes)
        assert set(task.y_test.tolist()) == set(task.classes)
        assert len(task.y_train) == 12 and len(task.y_test) == 6
        assert task.x_train.dtype == torch.float32 and 0.0 <= task.x_train.min() and task.x_train.max() <= 1.0
    seen = [c for t in tasks for c in t.y_train.unique().tolist()]
    assert sorted(seen) == list(range(10))  # no class in two tasks, none missing


def test_class_incremental_keeps_digit_labels_for_the_shared_head():
    task = tasks_mod.class_incremental(toy_data(), DEFAULT_PAIRS)[4]
    assert set(task.y_train.tolist()) == {8, 9}  # not remapped to {0, 1}: one 10-way head


def test_class_incremental_rejects_overlapping_groups():
    with pytest.raises(ValueError, match="two tasks"):
        tasks_mod.class_incremental(toy_data(), [(0, 1), (1, 2)])


def test_permuted_tasks_are_permutations_and_task0_is_identity():
    data = toy_data()
    tasks = tasks_mod.permuted(data, n_tasks=4, permutation_seed=7)
    assert len(tasks) == 4
    assert torch.equal(tasks[0].x_train, data["x_train"].float() / 255)
    perms = [tasks_mod.permutation(t, 784, 7) for t in range(4)]
    assert torch.equal(perms[0], torch.arange(784))
    for t, perm in enumerate(perms):
        assert torch.equal(perm.sort().values, torch.arange(784))  # a true permutation
        assert torch.equal(tasks[t].x_train, data["x_train"][:, perm].float() / 255)
        assert torch.equal(tasks[t].y_train, data["y_train"])
    assert len({tuple(p.tolist()) for p in perms}) == 4  # all different


def test_permutations_are_deterministic_and_seeded():
    assert torch.equal(tasks_mod.permutation(3, 784, 0), tasks_mod.permutation(3, 784, 0))
    assert not torch.equal(tasks_mod.permutation(3, 784, 0), tasks_mod.permutation(3, 784, 1))
    a = tasks_mod.permuted(toy_data(), 3, 5)
    b = tasks_mod.permuted(toy_data(), 3, 5)
    assert all(torch.equal(x.x_test, y.x_test) for x, y in zip(a, b))


def test_registry_builds_and_counts_tasks_without_data():
    spec = benchmarks.get("permuted")
    assert spec.n_tasks({"n_tasks": 3}) == 3
    assert len(spec.build(toy_data(), {"n_tasks": 3})) == 3
    assert benchmarks.get("class_incremental").n_tasks({}) == 5
    with pytest.raises(ValueError, match="known benchmarks: class_incremental, permuted"):
        benchmarks.get("split_cifar")


def test_chance_accuracy_is_one_over_the_classes_of_a_task():
    assert benchmarks.get("class_incremental").chance_accuracy({}) == 0.5  # the paper's pairs
    assert benchmarks.chance_accuracy("permuted", {"n_tasks": 10}) == 0.1
    assert benchmarks.chance_accuracy("class_incremental", {"pairs": [[0, 1, 2], [3, 4, 5]]}) == pytest.approx(1 / 3)
    # Tasks of different sizes: the mean over tasks, the learning accuracy of uniform guessing.
    assert benchmarks.chance_accuracy("class_incremental", {"pairs": [[0, 1], [2, 3, 4, 5]]}) == pytest.approx(0.375)
    with pytest.raises(ValueError, match="known benchmarks"):
        benchmarks.chance_accuracy("split_cifar", {})

"""The mix sampler draws each source exactly its share; weight-0 sources are never read."""

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from anomaly_vit.data.sampler import MixSampler, counts_per_source


def test_counts_follow_weights_within_one_and_sum_to_total():
    weights = {"real": 1.0, "composite": 2.0, "painted": 0.5, "renders": 0.0}
    for total in (1, 7, 100, 333, 1001):
        counts = counts_per_source(weights, total)
        assert sum(counts.values()) == total
        assert counts["renders"] == 0
        for name, weight in weights.items():
            assert abs(counts[name] - total * weight / 3.5) < 1.0


@pytest.mark.parametrize("weights", [{"a": -1.0, "b": 1.0}, {"a": 0.0, "b": 0.0}])
def test_bad_weights_raise(weights):
    with pytest.raises(ValueError, match="weight"):
        counts_per_source(weights, 10)


class CountingDataset(Dataset):
    def __init__(self, n):
        self.reads = Counter()
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        self.reads[index] += 1
        return index


def test_each_epoch_has_exact_per_source_counts_and_zero_weight_is_never_read():
    indices = {
        "real": list(range(0, 30)),
        "synthetic": list(range(30, 130)),
        "unused": list(range(130, 150)),
    }
    weights = {"real": 0.3, "synthetic": 0.7, "unused": 0.0}
    sampler = MixSampler(indices, weights, samples_per_epoch=90, seed=3)
    dataset = CountingDataset(150)
    for epoch in range(4):
        sampler.set_epoch(epoch)
        drawn = [
            int(i) for batch in DataLoader(dataset, batch_size=16, sampler=sampler) for i in batch
        ]
        assert len(drawn) == 90
        per_source = Counter(
            "real" if i < 30 else "synthetic" if i < 130 else "unused" for i in drawn
        )
        assert per_source == {"real": 27, "synthetic": 63}
        # real: 27 of 30 drawn without replacement -> no repeats inside one epoch
        assert max(Counter(i for i in drawn if i < 30).values()) == 1
    assert not any(dataset.reads[i] for i in range(130, 150))


def test_small_source_repeats_evenly():
    sampler = MixSampler({"small": [0, 1, 2]}, {"small": 1.0}, samples_per_epoch=10, seed=0)
    counts = Counter(iter(sampler))
    assert sorted(counts.values()) == [3, 3, 4]


def test_order_depends_only_on_seed_and_epoch():
    make = lambda: MixSampler({"a": list(range(50))}, {"a": 1.0}, 40, seed=5)  # noqa: E731
    first, second = make(), make()
    first.set_epoch(2)
    second.set_epoch(2)
    assert list(first) == list(second)
    second.set_epoch(3)
    assert list(first) != list(second)


def test_missing_training_images_for_weighted_source_raise():
    with pytest.raises(ValueError, match="no training images"):
        MixSampler({"a": [0, 1], "b": []}, {"a": 1.0, "b": 1.0}, 4)


def test_sampler_is_a_torch_sampler():
    assert isinstance(MixSampler({"a": [0]}, {"a": 1.0}, 1), torch.utils.data.Sampler)

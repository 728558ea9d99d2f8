"""Draw each source in proportion to its mix weight, exactly up to rounding, every epoch."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch.utils.data import Sampler

from anomaly_vit.errors import DataError


def counts_per_source(weights: Mapping[str, float], total: int) -> dict[str, int]:
    """Split `total` draws over sources by weight with the largest-remainder rule.

    Counts sum to `total` and each differs from `total * share` by less than one; a source with
    weight 0 gets 0.
    """
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"mix weights must be >= 0, got {dict(weights)}")
    weight_sum = sum(weights.values())
    if weight_sum <= 0:
        raise ValueError(f"at least one mix weight must be > 0, got {dict(weights)}")
    exact = {name: total * w / weight_sum for name, w in weights.items()}
    counts = {name: int(value) for name, value in exact.items()}
    leftover = total - sum(counts.values())
    by_remainder = sorted(exact, key=lambda name: (counts[name] - exact[name], name))
    for name in by_remainder[:leftover]:
        counts[name] += 1
    return counts


class MixSampler(Sampler[int]):
    """Yield `samples_per_epoch` dataset indices: each source exactly its share, shuffled together.

    Within a source, indices are drawn without replacement and a new permutation starts only when
    the source is exhausted, so a small source repeats evenly. Indices of a source with weight 0
    are never yielded. The order depends only on (seed, epoch): call `set_epoch` (Lightning does)
    and a resumed run sees the same batches as an uninterrupted one.

    With `label_of_index` (class-balanced draws), each source's quota is split equally over
    the classes that source has, each class drawn like a source: the mix shares still hold
    exactly, and inside each share a rare class is seen as often as a common one.
    """

    def __init__(
        self,
        indices_by_source: Mapping[str, Sequence[int]],
        weights: Mapping[str, float],
        samples_per_epoch: int,
        seed: int = 0,
        label_of_index: Mapping[int, int] | None = None,
    ) -> None:
        missing = [name for name, w in weights.items() if w > 0 and not indices_by_source.get(name)]
        if missing:
            raise DataError(f"sources {missing} have a weight > 0 but no training images")
        self.indices_by_source = {name: list(ix) for name, ix in indices_by_source.items()}
        self.label_of_index = dict(label_of_index) if label_of_index is not None else None
        self.counts = counts_per_source(weights, samples_per_epoch)
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        drawn: list[int] = []
        for name in sorted(self.counts):
            count = self.counts[name]
            if count == 0:
                continue
            pool = self.indices_by_source[name]
            if self.label_of_index is None:
                drawn.extend(_draw(pool, count, generator))
                continue
            by_label: dict[int, list[int]] = {}
            for i in pool:
                by_label.setdefault(self.label_of_index[i], []).append(i)
            quotas = counts_per_source({str(k): 1.0 for k in sorted(by_label)}, count)
            for label in sorted(by_label):
                drawn.extend(_draw(by_label[label], quotas[str(label)], generator))
        shuffle = torch.randperm(len(drawn), generator=generator).tolist()
        return iter([drawn[i] for i in shuffle])


def _draw(pool: Sequence[int], count: int, generator: torch.Generator) -> list[int]:
    """`count` members of `pool`, without replacement until it is exhausted, then anew."""
    if count == 0:
        return []
    n_rounds = -(-count // len(pool))
    order = torch.cat([torch.randperm(len(pool), generator=generator) for _ in range(n_rounds)])
    return [pool[i] for i in order[:count].tolist()]

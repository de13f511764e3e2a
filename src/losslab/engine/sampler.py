"""The data order of a training run: a function of ``(seed, epoch)`` only, resumable mid-epoch.

Exact resume needs the batches after the checkpoint to be the ones the interrupted run would have
drawn. ``DistributedSampler`` already shuffles with a generator seeded by ``seed + epoch`` (and gives
each process its own shard); this subclass can also start part-way into the epoch without loading
the skipped samples.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset, DistributedSampler

__all__ = ["ResumableSampler"]


class ResumableSampler(DistributedSampler):
    """A ``DistributedSampler`` (seeded shuffle per epoch, one shard per process) that can start
    part-way into an epoch: ``start`` samples of this process's shard are skipped without loading."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int, shuffle: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start

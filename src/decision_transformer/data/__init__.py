"""Data: the one episode representation and TrajectoryDataset with its loaders (datasets.py), and
the vectorised training-window sampler (sampler.py)."""

from decision_transformer.data.datasets import (
                                                DatasetError,
                                                Episode,
                                                MissingDataset,
                                                TrajectoryDataset,
                                                describe,
                                                load_dataset,
)

__all__ = ["DatasetError", "Episode", "MissingDataset", "TrajectoryDataset", "describe", "load_dataset"]

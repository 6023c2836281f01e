"""Data tables, the demo world and dataset loaders."""

from engine.data.schema import EVENT_TYPES, EVENT_WEIGHTS, Dataset, DatasetError

__all__ = ["EVENT_TYPES", "EVENT_WEIGHTS", "Dataset", "DatasetError"]

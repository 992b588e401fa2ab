"""Where a machine keeps its ML files: model folders, the feature cache, run folders (ML_DIR)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def models_dir(config: Mapping[str, Any]) -> Path:
    """Where trained model folders live (``<ML_DIR>/models``)."""
    return Path(config.get("ML_MODELS_DIR") or Path(config["ML_DIR"]) / "models")


def cache_dir(config: Mapping[str, Any]) -> Path:
    """The feature and backbone cache (``<ML_DIR>/cache``), shared by every run."""
    return Path(config.get("ML_CACHE_DIR") or Path(config["ML_DIR"]) / "cache")


def run_dir(config: Mapping[str, Any], run_id: int) -> Path:
    """A run's working folder: its training manifest and the worker's log."""
    return Path(config["ML_DIR"]) / "runs" / str(run_id)

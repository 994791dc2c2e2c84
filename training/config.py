"""Typed stage configs from small YAML files (unknown keys are an error)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from engine.model.config import dataclass_from_dict

T = TypeVar("T")


def load_config(cls: type[T], path: str | Path, overrides: dict | None = None) -> T:
    import yaml

    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of settings")
    data.update(overrides or {})
    return dataclass_from_dict(cls, data, str(path))


def parse_override(text: str) -> tuple[str, object]:
    """``key=value`` from the command line; the value is read as YAML (numbers, lists, null)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"override {text!r} must look like key=value")
    return key, yaml.safe_load(value)

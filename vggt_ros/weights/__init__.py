"""Weights shipped inside the package, so that a preset runs without a checkpoint.

`small.safetensors` is the `small` preset trained by `make train` on the project's own synthetic
scenes (README.md beside it gives the recipe, the loss curve and the held-out accuracy). It is
stored in fp16 to stay small and loaded as fp32. What it is travels in the file's own safetensors
metadata (`description`), so the node and the evaluator's report can say which model they ran.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from safetensors import safe_open

SHIPPED = {'small': 'small.safetensors'}


def shipped_weights(preset: str) -> Path | None:
    """The shipped weight file of `preset`, if the package has one."""
    name = SHIPPED.get(preset)
    if name is None:
        return None
    path = Path(str(resources.files(__name__) / name))
    return path if path.is_file() else None


def describe(path: str | Path) -> str:
    """The `description` a weight file carries in its metadata (empty if none)."""
    with safe_open(str(path), 'pt') as weights:
        return (weights.metadata() or {}).get('description', '')

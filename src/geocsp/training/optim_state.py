"""Optimizer state <-> safetensors tensors + JSON, for checkpoints (no pickle).

``optimizer.state_dict()`` holds per-parameter tensors (Adam's moments) and plain values
(step counts, param groups); :func:`flatten_optimizer_state` splits them so the tensors go
to ``optim.safetensors`` and the rest to ``state.json``.
"""

from __future__ import annotations

from typing import Any


def flatten_optimizer_state(state_dict: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into safetensors-able tensors and JSON data.

    Returns:
        ``({"state.<param>.<key>": tensor}, {"scalars": {...}, "param_groups": [...]})``.
    """
    import torch

    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state_dict["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"scalars": scalars, "param_groups": state_dict["param_groups"]}


def unflatten_optimizer_state(tensors: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, values in data.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else dict(g) for g in data["param_groups"]]
    return {"state": state, "param_groups": groups}

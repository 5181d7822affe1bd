"""DistributedDataParallel around a whole training step.

DDP expects one forward per backward. A geocsp step calls several modules (the location
encoder, the projection W, the objective, which may hold a learnable temperature), so
:func:`ddp_step` wraps them in one :class:`StepModule` whose ``forward`` is the whole
loss computation; DDP then averages every trained parameter's gradient over the ranks.
Checkpoints keep using the unwrapped ``model`` (its ``state_dict`` keys do not change).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from geocsp.distributed.context import DistInfo
from geocsp.objectives import LossOutput

StepFn = Callable[..., LossOutput]


class StepModule(nn.Module):
    """``forward(*args) = fn(model, *args)`` as a ``(total, terms)`` tuple.

    Args:
        model: the module holding every trained parameter (registered as ``model``).
        fn: ``(model, *args, **kwargs) -> LossOutput``.
    """

    def __init__(self, model: nn.Module, fn: StepFn) -> None:
        super().__init__()
        self.model = model
        self._fn = fn

    def forward(self, *args: Any, **kwargs: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """Run ``fn(model, *args, **kwargs)``.

        Args:
            *args: positional arguments of ``fn`` after the model.
            **kwargs: keyword arguments of ``fn``.

        Returns:
            ``(total, terms)``: the scalar loss and its named (detached) terms.
        """
        out = self._fn(self.model, *args, **kwargs)
        return out.total, out.terms


def ddp_step(
    model: nn.Module, fn: StepFn, info: DistInfo, *, find_unused_parameters: bool = False
) -> StepFn:
    """A callable ``(*args) -> LossOutput`` running ``fn(model, *args)``, under DDP if distributed.

    When ``info`` is not distributed the callable is a plain call of ``fn``.

    DDP broadcasts rank 0's parameters and buffers once, at construction, so every rank
    starts from the same weights. Buffers are not re-broadcast each step
    (``broadcast_buffers=False``): geocsp's buffers are seeded constants or queues filled
    from gathered (hence identical) batches.

    Args:
        model: the trained modules, already on ``info.device``.
        fn: ``(model, *args, **kwargs) -> LossOutput``; one call per optimizer step.
        info: this process's :class:`DistInfo`.
        find_unused_parameters: set when some trained parameter gets no gradient in a
            step (e.g. W with an objective that ignores it).

    Returns:
        The step callable; call ``.backward()`` on its ``total`` as usual.
    """
    module: nn.Module = StepModule(model, fn)
    if info.distributed:
        ids = [info.device.index] if info.device.type == "cuda" else None
        module = DistributedDataParallel(
            module,
            device_ids=ids,
            broadcast_buffers=False,
            find_unused_parameters=find_unused_parameters,
        )

    def step(*args: Any, **kwargs: Any) -> LossOutput:
        total, terms = module(*args, **kwargs)
        return LossOutput(total, terms)

    return step

"""Model FLOPs of a training step (torch's FLOP counter) and the machine's fp32 matmul peak."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matmul-like ops (mm, addmm, bmm, convolutions, their backward) `fn` runs.

    Attention runs on the math backend while counting: the CPU flash-attention kernel has no FLOP
    formula in torch's counter, and the math path spells it as the same two batched matmuls.
    """
    with FlopCounterMode(display=False) as counter, sdpa_kernel([SDPBackend.MATH]):
        fn()
    return int(counter.get_total_flops())


def training_step_flops(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> int:
    """FLOPs of forward + cross-entropy + backward for one batch (the optimizer step is not
    counted: it is elementwise). The gradients it leaves are cleared."""

    def step() -> None:
        inputs = normalize(images) if normalize is not None else images
        F.cross_entropy(model(inputs), labels).backward()

    flops = count_flops(step)
    model.zero_grad(set_to_none=True)
    return flops


def matmul_seconds(size: int, repeats: int = 1, warmup: int = 1) -> list[float]:
    """Seconds of `repeats` fp32 `size`x`size` matmuls (after `warmup` untimed ones)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(warmup):
        torch.mm(a, b)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        seconds.append(time.perf_counter() - start)
    return seconds


def matmul_flops_per_second(size: int, repeats: int = 5, warmup: int = 1) -> list[float]:
    """FLOP/s of each timed `size`x`size` fp32 matmul (2 size^3 FLOPs each), at the current
    thread count (`torch.get_num_threads()`)."""
    return [2 * size**3 / s for s in matmul_seconds(size, repeats, warmup) if s > 0]

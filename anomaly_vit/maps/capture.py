"""Capture post-softmax attention matrices from any timm VisionTransformer, leaving it as found.

timm's `Attention` runs `F.scaled_dot_product_attention` when `attn.fused_attn` is on, and that
kernel never materialises the attention weights. Its unfused path does::

    attn = (q * scale) @ k.transpose(-2, -1)   # + mask
    attn = attn.softmax(dim=-1)
    attn = self.attn_drop(attn)                 # <- input: the post-softmax attention
    x = attn @ v

so `capture_attention` switches `fused_attn` off on every block and hooks `attn.attn_drop`. In
eval mode dropout is the identity, so the hook's *output* is the post-softmax attention and is also
the very tensor `attn @ v` consumes: gradients taken with respect to it are dy/dA.

Everything the context changes is restored on exit, also when the body raises: `fused_attn` of
every block, `grad_checkpointing` (off while capturing: recomputing blocks in backward would run
the hooks again and detach what they stored), the train/eval flag of every submodule (the model is
put in eval mode while capturing), and the hooks are removed. Autocast is disabled inside, so the
attention is computed in the parameters' dtype (fp32 for a normally trained model).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import nn


def find_vision_transformer(model: nn.Module) -> nn.Module:
    """Return `model` if it is a timm ViT, else its first submodule that is one (e.g. a wrapper's)."""
    for module in model.modules():
        if all(hasattr(module, name) for name in ("blocks", "patch_embed", "num_prefix_tokens")):
            return module
    raise TypeError(
        f"{type(model).__name__} contains no timm VisionTransformer (a module with `blocks`, "
        "`patch_embed` and `num_prefix_tokens`); attention maps need one."
    )


def attention_modules(vit: nn.Module) -> list[nn.Module]:
    """The `attn` module of every block, checked to be a timm `Attention` we can capture from."""
    modules = []
    for index, block in enumerate(vit.blocks):
        attn = getattr(block, "attn", None)
        if attn is None or not hasattr(attn, "attn_drop") or not hasattr(attn, "fused_attn"):
            raise TypeError(
                f"block {index} ({type(block).__name__}) has no timm-style `attn` with "
                "`attn_drop` and `fused_attn`; attention capture supports timm VisionTransformer "
                "blocks built on timm.layers.Attention."
            )
        modules.append(attn)
    return modules


class AttentionRecord:
    """What one forward pass under `capture_attention` leaves: one [B, H, N, N] tensor per layer
    and the final tokens [B, N, D] (the output of `vit.norm`, which the head pools)."""

    def __init__(self, num_layers: int) -> None:
        self._attn_bhnn: list[torch.Tensor | None] = [None] * num_layers
        self.final_tokens_bnd: torch.Tensor | None = None  # the tokens the head pools (`vit.norm`)

    def _store(self, layer: int, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._attn_bhnn[layer] = output

    @property
    def num_layers(self) -> int:
        return len(self._attn_bhnn)

    def attn_bhnn(self) -> list[torch.Tensor]:
        """The captured tensors, still in the autograd graph when captured with grad enabled."""
        missing = [i for i, a in enumerate(self._attn_bhnn) if a is None]
        if missing:
            raise RuntimeError(
                f"no attention captured for layers {missing}: run exactly one forward pass of the "
                "model inside `capture_attention` before reading the record."
            )
        return list(self._attn_bhnn)  # type: ignore[arg-type]

    def detached_fp32(self) -> list[torch.Tensor]:
        """The captured tensors, detached and in fp32."""
        return [a.detach().float() for a in self.attn_bhnn()]


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put `model` in eval mode; restore every submodule's own train/eval flag afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


@contextmanager
def _unfused_with_hooks(vit: nn.Module, record: AttentionRecord) -> Iterator[None]:
    attns = attention_modules(vit)
    saved_fused = [attn.fused_attn for attn in attns]
    saved_checkpointing = getattr(vit, "grad_checkpointing", None)
    handles = []
    try:
        for layer, attn in enumerate(attns):
            attn.fused_attn = False
            handles.append(
                attn.attn_drop.register_forward_hook(
                    lambda module, inputs, output, layer=layer: record._store(
                        layer, module, inputs, output
                    )
                )
            )
        handles.append(
            vit.norm.register_forward_hook(
                lambda module, inputs, output: setattr(record, "final_tokens_bnd", output)
            )
        )
        if saved_checkpointing:
            vit.grad_checkpointing = False
        yield
    finally:
        for handle in handles:
            handle.remove()
        for attn, fused in zip(attns, saved_fused, strict=True):
            attn.fused_attn = fused
        if saved_checkpointing is not None:
            vit.grad_checkpointing = saved_checkpointing


def _device_type(model: nn.Module) -> str:
    param = next(model.parameters(), None)
    return param.device.type if param is not None else "cpu"


@contextmanager
def capture_attention(model: nn.Module, vit: nn.Module | None = None) -> Iterator[AttentionRecord]:
    """Record every layer's post-softmax attention during the forward passes run inside.

    `model` may be a timm ViT or a module wrapping one (the wrapper is put in eval mode as a
    whole; the hooks go on the ViT inside: `vit`, when the caller has located it already).
    Later forward passes overwrite earlier ones.
    """
    vit = find_vision_transformer(model) if vit is None else vit
    record = AttentionRecord(len(vit.blocks))
    with ExitStack() as stack:
        stack.enter_context(_eval_mode(model))
        stack.enter_context(_unfused_with_hooks(vit, record))
        stack.enter_context(torch.autocast(device_type=_device_type(model), enabled=False))
        yield record


@contextmanager
def gradients_enabled() -> Iterator[None]:
    """Leave `torch.inference_mode` / `torch.no_grad` (e.g. Lightning validation) for a backward."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def model_input(model: nn.Module, images_bchw: torch.Tensor, requires_grad: bool) -> torch.Tensor:
    """`images_bchw` as a fresh tensor in the model's dtype and device (not an inference tensor).

    Call inside `gradients_enabled()` when `requires_grad`: cloning there turns an inference
    tensor into a normal one that autograd can record.
    """
    param = next(model.parameters())
    images = images_bchw.detach().to(device=param.device, dtype=param.dtype).clone()
    return images.requires_grad_(requires_grad)


def forward_with_attention(
    model: nn.Module, images_bchw: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One gradient-free forward pass: (logits [B, K], per-layer attention [B, H, N, N] fp32)."""
    with capture_attention(model) as record, torch.no_grad():
        logits = model(model_input(model, images_bchw, requires_grad=False))
        return logits.detach().float(), record.detached_fp32()

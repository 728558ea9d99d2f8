"""The network a bundle carries: a trained `ViTClassifier` as one forward-only graph.

Input: normalised float images [B, 3, H, W] (the inferencer normalises with the bundle's mean and
std, as `ViTClassifier.normalize` does). Outputs, all per image:

- ``logits`` [B, K]: the class head;
- ``score`` [B]: the defect score as `model.mask_loss.decision` reads it (`defect_score`);
- ``map`` [B, H, W]: the model's own forward-only map at the input size, drawn at the tokens'
  centres like `explain` draws it: ``tokens`` (the token head's defect probability) when the
  model has a token head, else ``evidence`` (the class head on each final token, defect vs good).

The map is drawn by the map kinds' own functions (`maps.kinds.MAP_KINDS`, read from the same
`ForwardPass` fields `explain` fills) and `maps.readout.upsample_maps`, so the exported map cannot
drift from the explained one.
"""

from __future__ import annotations

import torch
from torch import nn

from anomaly_vit.maps.capture import find_vision_transformer
from anomaly_vit.maps.forward import ForwardPass, MapBatch, MapOptions
from anomaly_vit.maps.kinds import MAP_KINDS
from anomaly_vit.maps.readout import token_layout, upsample_maps

INPUT_NAME = "image"
OUTPUT_NAMES = ("logits", "score", "map")


def map_kind(model: nn.Module) -> str:
    """The forward-only map a model is best explained by: its token head's, else the evidence."""
    return "tokens" if getattr(model, "token_head", None) is not None else "evidence"


class DeployNet(nn.Module):
    """`ViTClassifier` -> (logits, defect score, map) from normalised images (module doc)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        model.eval()
        self.vit = find_vision_transformer(model)
        self.token_head = getattr(model, "token_head", None)
        self.good_index = int(model.good_index)
        # the classifier's own rule, held as a plain attribute: tracing must not walk the
        # LightningModule (its `trainer` property raises outside a fit)
        self.defect_score = model.defect_score
        self.kind = map_kind(model)
        self.input_hw = tuple(int(v) for v in self.vit.patch_embed.img_size)
        self.layout = token_layout(self.vit, self.input_hw)
        self.eval()  # an exporter restores the mode it found: keep it eval (BatchNorm stems)

    def forward(self, normalised_bchw: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features_bnd = self.vit.forward_features(normalised_bchw)
        logits_bk = self.vit.forward_head(features_bnd)
        token_logits_bn = None
        if self.token_head is not None:
            token_logits_bn = self.token_head(features_bnd[:, self.vit.num_prefix_tokens :])
        forward = ForwardPass(
            MapBatch(self.vit, self.vit, self.layout, normalised_bchw),
            MapOptions(good_class=self.good_index),
            logits_bk.float(),
            final_tokens_bnd=features_bnd,
            token_logits_bn=token_logits_bn,
        )
        grid_bhw = MAP_KINDS[self.kind].grid(forward)
        score_b = self.defect_score(logits_bk, token_logits_bn)
        map_bhw = upsample_maps(grid_bhw, self.input_hw, self.layout.geometry)
        return logits_bk.float(), score_b, map_bhw

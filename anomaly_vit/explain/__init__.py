"""Where the model looks: attention capture, rollout, relevance and evidence maps, scores.

`attention_maps` is the entry point; the pictures live in `anomaly_vit.viz.overlays`
(imported separately, it pulls in matplotlib).
"""

from anomaly_vit.maps.capture import capture_attention, forward_with_attention
from anomaly_vit.maps.forward import attention_maps
from anomaly_vit.maps.readout import map_to_original, read_out_maps, token_layout
from anomaly_vit.maps.relevance import gradient_relevance, target_scores
from anomaly_vit.maps.rollout import attention_rollout
from anomaly_vit.maps.scores import score_maps, score_with_baselines

__all__ = [
    "attention_maps",
    "attention_rollout",
    "capture_attention",
    "forward_with_attention",
    "gradient_relevance",
    "map_to_original",
    "read_out_maps",
    "score_maps",
    "score_with_baselines",
    "target_scores",
    "token_layout",
]

"""Where the model looks: map kinds (one registry), the forward passes they read, their scores.

- `kinds`: `MAP_KINDS`, each kind's function and what it needs; `explain_images` draws them.
- `forward`: the ViT located and its token layout derived once per batch; captured passes.
- `capture`, `rollout`, `relevance`, `readout`: attention capture, rollout, relevance, read-out
  geometry (`readout.map_to_original`: a map back to the photo's pixels).
- `scores`: localisation scores against masks and the baselines; `scorer`: ONE scorer
  (predict -> score -> aggregate) for the training callback (`callbacks.maps`), the end of
  training (`explain_scores`) and `python -m anomaly_vit.explain`.
- `probes`: the callback's fixed probe set and its dump's arrays.
The pictures live in `anomaly_vit.viz.overlays` (numbers in, pictures out).
"""

from anomaly_vit.maps.capture import capture_attention, forward_with_attention
from anomaly_vit.maps.kinds import MAP_KINDS, MapKind, attention_maps, explain_images, kinds_for
from anomaly_vit.maps.readout import map_to_original, read_out_maps, token_layout
from anomaly_vit.maps.relevance import gradient_relevance, target_scores
from anomaly_vit.maps.rollout import attention_rollout
from anomaly_vit.maps.scorer import MapScorer, SplitScorer
from anomaly_vit.maps.scores import peak_share, score_maps, score_with_baselines

__all__ = [
    "MAP_KINDS",
    "MapKind",
    "MapScorer",
    "SplitScorer",
    "attention_maps",
    "attention_rollout",
    "capture_attention",
    "explain_images",
    "forward_with_attention",
    "gradient_relevance",
    "kinds_for",
    "map_to_original",
    "peak_share",
    "read_out_maps",
    "score_maps",
    "score_with_baselines",
    "target_scores",
    "token_layout",
]

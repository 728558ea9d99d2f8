"""The explain command: maps, predictions and scores of a checkpoint on new images.

`python -m anomaly_vit.explain` (`explain.command`); the maps themselves and their scorer live in
`anomaly_vit.maps`.
"""

"""The Hydra mains: train, eval, check_data (``python -m anomaly_vit.<name>`` forwards here)."""

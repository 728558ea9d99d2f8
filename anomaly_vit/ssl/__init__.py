"""Self-supervised pretraining of the classifier's ViT (`python -m anomaly_vit.pretrain`)."""

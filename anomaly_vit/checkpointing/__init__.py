"""Checkpoints: safe loading, atomic writing, exact resume (without losing history or the best
model), fine-tuning with lineage, RNG state and checkpoints numbered by global epoch."""

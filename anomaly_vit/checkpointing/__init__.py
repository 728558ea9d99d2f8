"""Checkpoints: safe loading, atomic writing, exact resume, fine-tuning with lineage, RNG
state and checkpoints numbered by global epoch."""

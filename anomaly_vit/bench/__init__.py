"""Benchmarks of the training pipeline: throughput, data and rollout shares, FLOP/s, convergence, memory."""

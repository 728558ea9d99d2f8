"""`python -m anomaly_vit.bench [bench=quick] [key=value ...]`: the benchmark table (console,
markdown, JSON). Settings: conf/bench.yaml; `bench=quick` is the < 3 min mode.

Rows, each measured in this one run:
1. training throughput of the project pipeline / a plain PyTorch loop (interleaved epochs);
2. share of a training step spent waiting for data (loading + augmentation);
3. share of training time spent in rollout dumps at the default `every_n_epochs`;
4. achieved training FLOP/s as a share of this machine's fp32 matmul peak;
5. convergence: epochs to the target score, seed recipe / default recipe (full mode);
6. peak memory of a default training run, and start-up time of the CLI.
The report goes to the run dir (`outputs/bench/<time>/`, or `hydra.run.dir=...`): bench.md and
bench.json, with the per-epoch samples, the Lightning hook times and a cProfile summary of one
epoch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from anomaly_vit import CONF_DIR


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="bench")
def main(cfg: DictConfig) -> None:
    from anomaly_vit.bench.runner import run_bench
    from anomaly_vit.bench.settings import bench_settings

    out_dir = Path(HydraConfig.get().runtime.output_dir)  # read now: the steps compose others
    code = run_bench(bench_settings(cfg), out_dir)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()

"""Process-level costs: peak memory of a training run and start-up time of the CLI."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch


def run_with_peak_rss(
    command: list[str], log_path: Path, cwd: Path | None = None
) -> dict[str, Any]:
    """Run `command`; return its exit code, wall seconds and peak resident memory in bytes
    (`ru_maxrss` of that child alone, from `os.wait4`)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "returncode": process.returncode,
        "wall_seconds": time.perf_counter() - started,
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # Linux reports KiB
        "log": str(log_path),
    }


def startup_seconds(repeats: int, cwd: Path | None = None) -> list[float]:
    """Wall seconds of `python -m anomaly_vit.train --help` (imports, config composition), each."""
    seconds = []
    for _ in range(int(repeats)):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "anomaly_vit.train", "--help"],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        seconds.append(time.perf_counter() - started)
    return seconds


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, threads, load, versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import lightning
    import timm

    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": load_average(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "timm": timm.__version__,
    }


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []

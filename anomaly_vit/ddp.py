"""Lightning DDP inside a Hydra job: children re-run this job (not the sweep) in its own run dir.

Lightning starts DDP ranks 1..N-1 by re-running the command line. Under Hydra that goes wrong in
three known ways, all handled here:

- a multirun child gets `-m` and the whole sweep list again, and launches the sweep itself;
- `hydra.run.dir` holds `${now:...}`, which a child resolves a second later: a second run dir;
- under joblib/submitit the command line is the launcher's, not `python -m anomaly_vit.train`.

So a child runs `python -m <entry_module> <this job's overrides> hydra.run.dir=<this run dir>
hydra.mode=RUN hydra.output_subdir=null` and logs to `<task>_rank<k>.log`. `end_job` tidies up
after a job (process group, launcher environment, stray children) so the next job of a sweep
starts clean. `exclusive` serialises data preparation between processes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers import subprocess_script

log = logging.getLogger(__name__)

# hydra.* overrides a child keeps; run dir, mode, sweeper and launcher are set for it
KEPT_HYDRA_OVERRIDES = ("hydra.job_logging", "hydra.hydra_logging", "hydra/job_logging",
                        "hydra/hydra_logging", "hydra.verbose", "hydra.job.env_set", "hydra.job.chdir")  # fmt: skip
LAUNCHER_ENV = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "NODE_RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "OMP_NUM_THREADS",
)
_launched: list[_HydraJobLauncher] = []


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def child_command(local_rank: int, entry_module: str) -> tuple[list[str], str]:
    """The command (and cwd) that runs rank `local_rank` of the current Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    kept = [o for o in hydra_cfg.overrides.hydra if o.lstrip("+~").startswith(KEPT_HYDRA_OVERRIDES)]
    command = [
        sys.executable, "-m", entry_module, *hydra_cfg.overrides.task, *kept,
        f"hydra.run.dir={_quote(str(hydra_cfg.runtime.output_dir))}",
        "hydra.mode=RUN", "hydra.output_subdir=null",
        f"hydra.job.name={hydra_cfg.job.name}_rank{local_rank}",
    ]  # fmt: skip
    return command, str(hydra_cfg.runtime.cwd)


class _StoppableObserver(_ChildProcessObserver):
    """Lightning's child watcher, stoppable at job end: when a child fails, the job gets
    `grace_s` to fail on rank 0 too (and end cleanly) before the main process is killed, as
    Lightning does at once (rank 0 may be stuck in a collective waiting for the dead child)."""

    def __init__(self, *args: Any, grace_s: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopped = threading.Event()
        self.grace_s = grace_s

    def run(self) -> None:
        while not self.stopped.wait(self._sleep_period):
            codes = [proc.poll() for proc in self._child_processes]
            if all(code == 0 for code in codes):
                return
            if any(codes):
                if not self.stopped.wait(self.grace_s):
                    log.error("a DDP child failed (exit codes %s); ending the job", codes)
                    self._terminate_all()
                return


class _HydraJobLauncher(subprocess_script._SubprocessScriptLauncher):
    """Lightning's script launcher with `child_command` in place of its Hydra command."""

    def __init__(self, *args: Any, entry_module: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entry_module = entry_module
        self.environ_before: dict[str, str | None] = {}
        self.observer: _StoppableObserver | None = None

    def launch(self, function: Callable, *args: Any, **kwargs: Any) -> Any:
        with mock.patch.object(subprocess_script, "_launch_process_observer", self._observe):
            return super().launch(function, *args, **kwargs)

    def _observe(self, procs: list[subprocess.Popen]) -> None:
        self.observer = _StoppableObserver(main_pid=os.getpid(), child_processes=procs)
        self.observer.start()

    def _call_children_scripts(self) -> None:
        self.environ_before = {key: os.environ.get(key) for key in LAUNCHER_ENV}
        _launched.append(self)
        command = lambda local_rank: child_command(local_rank, self.entry_module)  # noqa: E731
        with mock.patch.object(subprocess_script, "_hydra_subprocess_cmd", command):
            super()._call_children_scripts()


class HydraDDPStrategy(DDPStrategy):
    """`DDPStrategy` whose child processes run this Hydra job's own overrides in its run dir.

    `entry_module` is the module children run (`anomaly_vit.train`); outside Hydra it behaves
    exactly like Lightning's `ddp`.
    """

    def __init__(self, entry_module: str = "anomaly_vit.train", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entry_module = entry_module

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        from hydra.core.hydra_config import HydraConfig

        if (
            isinstance(self._launcher, subprocess_script._SubprocessScriptLauncher)
            and HydraConfig.initialized()
        ):
            self._launcher = _HydraJobLauncher(
                self.cluster_environment,
                self.num_processes,
                self.num_nodes,
                entry_module=self.entry_module,
            )


def end_job(failed: bool = False, wait_s: float = 120.0) -> None:
    """After a job: leave the process group, restore the environment, reap (or kill) children.

    Without this the next job of a sweep in the same process finds `LOCAL_RANK` set, believes
    it is a child and waits forever for ranks that never start.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    while _launched:
        launcher = _launched.pop()
        if launcher.observer is not None:
            launcher.observer.stopped.set()
        for proc in launcher.procs:
            try:
                proc.wait(timeout=0 if failed else wait_s)
            except subprocess.TimeoutExpired:
                log.warning("DDP child %d still running after the job; terminating it", proc.pid)
                proc.kill()
                proc.wait()
        for key, value in launcher.environ_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def exclusive(lock_path: str | Path | None) -> Iterator[None]:
    """Hold an exclusive file lock (e.g. while generating shared data); no-op for None."""
    if lock_path is None:
        yield
        return
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

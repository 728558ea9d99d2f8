"""Where a run writes: a new folder claimed atomically, or the run a checkpoint belongs to.

Importing this module (the package does) registers the OmegaConf resolvers the configs use for
the run dir: `avit.resume_run_dir` (train.yaml), `avit.run_dir_or_new` and `avit.hydra_subdir`
(conf/hydra/default.yaml).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

MAX_RUN_DIR_NUMBER = 1000  # <run dir>_2 ... _1000 are tried before giving up

_CLAIMED: dict[str, str] = {}  # new run dir asked for -> the folder this process claimed


def claim_run_dir(new_run_dir: str) -> str:
    """Create `new_run_dir`, or `<new_run_dir>_2`, `_3`, ... when it exists: a folder no other
    run uses (two runs started in the same second with the same run_name get one each). The
    creation is the claim (atomic), and a process claims once per name."""
    if new_run_dir not in _CLAIMED:
        for number in range(1, MAX_RUN_DIR_NUMBER + 1):
            candidate = new_run_dir if number == 1 else f"{new_run_dir}_{number}"
            try:
                Path(candidate).mkdir(parents=True, exist_ok=False)
            except FileExistsError:
                continue
            _CLAIMED[new_run_dir] = candidate
            break
        else:
            raise ValueError(f"{new_run_dir}_1..{MAX_RUN_DIR_NUMBER} all exist: set run_name")
    return _CLAIMED[new_run_dir]


def resume_run_dir(ckpt_path: str | None, new_run_dir: str) -> str:
    """The run dir of a train run: the run `ckpt_path` came from, else a new folder
    (`claim_run_dir(new_run_dir)`).

    `<run>/checkpoints/<name>.ckpt` resumes into `<run>`. A missing file, or one outside a
    `checkpoints/` folder, gets a new folder (and loading it then says what is wrong).
    """
    if ckpt_path:
        path = Path(str(ckpt_path)).expanduser()
        if path.is_file() and path.parent.name == "checkpoints":
            return str(path.resolve().parents[1])
    return claim_run_dir(new_run_dir)


def run_dir_or_new(run_dir: str | None, new_run_dir: str) -> str:
    """`run_dir` when the task config sets one (train), else a new claimed folder (eval, ...)."""
    return str(run_dir) if run_dir else claim_run_dir(new_run_dir)


def hydra_subdir(run_dir: str, stamp: str) -> str:
    """`.hydra`, or `.hydra/resume_<stamp>` when `run_dir` already holds a run's config.

    A resumed run keeps the config and overrides it started with (the sweep report reads them).
    """
    existing = Path(str(run_dir)) / ".hydra" / "config.yaml"
    return f".hydra/resume_{stamp}" if existing.is_file() else ".hydra"


OmegaConf.register_new_resolver("avit.resume_run_dir", resume_run_dir, replace=True)
OmegaConf.register_new_resolver("avit.run_dir_or_new", run_dir_or_new, replace=True)
OmegaConf.register_new_resolver("avit.hydra_subdir", hydra_subdir, replace=True)

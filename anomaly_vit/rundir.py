"""The run directory contract: every file name a run writes, the one atomic writer, the readers.

A run dir (``outputs/runs/<time>_<name>/``, one job of a multirun) holds everything a later step
reads (eval, explain, fine-tune, the sweep report, the notebook), so it can be moved or
archived as one folder::

    .hydra/            resolved config and overrides
    checkpoints/       last.ckpt, best.ckpt, epoch_XXXX.ckpt (numbered by GLOBAL epoch)
    tensorboard/       event files on the global-epoch axis
    metrics.csv        one row per epoch
    curves.png         loss and accuracy, redrawn each epoch
    confusion.png      the test confusion matrix
    rollouts/          epoch_XXXX.png + .npz every N epochs, evolution.png, timing.json
    split.csv          every record with its item, split, source, path, label
    data_report.json   what the data check found
    summary.json       final test metrics, config essentials, lineage, map scores

Every file is written through `atomic_write`: a reader (or a process killed mid-write) never
sees half a file; at worst a hidden ``.<name>.tmp`` is left, which the next write replaces.

A new run claims its folder by creating it (``<time>_<name>_2``, ``_3``, ... when taken), so no
two runs share one. Importing this module (the package does) registers the OmegaConf resolvers
the configs use for the run dir: `avit.resume_run_dir` (train.yaml), `avit.run_dir_or_new` and
`avit.hydra_subdir` (conf/hydra/default.yaml).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import os
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from omegaconf import OmegaConf

from anomaly_vit.errors import STORAGE_ERRNOS, RunDirError, exit_with, storage_message

HYDRA_DIR = ".hydra"
CONFIG_FILE = "config.yaml"  # in HYDRA_DIR
OVERRIDES_FILE = "overrides.yaml"  # in HYDRA_DIR
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"
EPOCH_CHECKPOINT = "epoch_{epoch:04d}.ckpt"  # numbered by GLOBAL epoch
TENSORBOARD_DIR = "tensorboard"
METRICS_CSV = "metrics.csv"
CURVES_PNG = "curves.png"
CONFUSION_PNG = "confusion.png"
ROLLOUTS_DIR = "rollouts"
ROLLOUT_PATTERN = re.compile(r"epoch_(\d+)\.(png|npz)$")  # rollouts/epoch_XXXX.png and .npz
EVOLUTION_PNG = "evolution.png"  # in ROLLOUTS_DIR
TIMING_JSON = "timing.json"  # in ROLLOUTS_DIR
SPLIT_CSV = "split.csv"
DATA_REPORT_JSON = "data_report.json"
SUMMARY_JSON = "summary.json"
ERROR_TXT = "error.txt"  # a multirun job that failed: why, on one line (the sweep report reads it)
PREDICTIONS_CSV = "predictions.csv"  # explain's output folder
SWEEP_CSV, SWEEP_MD, SWEEP_PNG = "sweep_summary.csv", "sweep_summary.md", "sweep.png"  # multirun

MAX_RUN_DIR_NUMBER = 1000  # <run dir>_2 ... _1000 are tried before giving up
FILE_MODE = 0o644  # what a plain `open(path, "w")` gives under the usual umask


def rollout_file(epoch: int, suffix: str) -> str:
    """Name of the rollout dump of a global epoch (`suffix` "png" or "npz")."""
    return f"epoch_{epoch:04d}.{suffix}"


# ------------------------------------------------------------------------------------ writing
def atomic_write(
    path: str | Path, write: Callable[[IO[bytes]], Any], durable: bool = False
) -> Path:
    """Call `write(handle)` on the hidden ``.<name>.tmp`` beside `path`, then rename it over
    `path`; parent folders are created. A failed write removes its temp file.

    `durable` flushes the file and the folder to disk before returning (checkpoints).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (best effort: not every OS can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def write_json(path: str | Path, payload: Mapping[str, Any], finite: bool = True) -> Path:
    """Write JSON atomically; with `finite`, NaN/inf become null so any JSON reader accepts it."""
    data = _finite(payload) if finite else payload
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str))


def write_csv(path: str | Path, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Path:
    """Write a header row and `rows` as CSV, atomically."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(list(header))
    writer.writerows(rows)
    return write_text(path, text.getvalue())


def write_dict_rows(
    path: str | Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> Path:
    """Write dict rows as CSV with `columns` (missing values empty), atomically."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(columns), restval="")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, text.getvalue())


def write_dump(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write a rollout dump (``rollouts/epoch_XXXX.npz``, compressed) atomically."""
    return atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# ------------------------------------------------------------------------------------ reading
def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON file of the run dir (summary.json, data_report.json, timing.json)."""
    return json.loads(Path(path).read_text())


def read_metrics_csv(path: str | Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv as floats (empty cells become NaN); [] when there is no file."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [
            {k: (float(v) if v not in ("", None) else math.nan) for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]


def lineage_rows(lineage: list[dict], metrics_file: str = METRICS_CSV) -> list[dict[str, float]]:
    """metrics.csv rows of the parent runs, each up to the global epoch its child started from.

    Oldest first; an epoch is taken from the latest parent that covers it. A parent folder that
    was moved or deleted is skipped (its curve is simply not drawn).
    """
    by_epoch: dict[float, dict[str, float]] = {}
    for parent in lineage:
        run_dir = parent.get("run_dir")
        if not run_dir:
            continue
        for row in read_metrics_csv(Path(run_dir) / metrics_file):
            if row["epoch"] <= parent.get("global_epoch", math.inf):
                by_epoch[row["epoch"]] = row
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def read_dumps(folder: str | Path) -> dict[int, dict[str, np.ndarray]]:
    """Every rollout dump ``epoch_XXXX.npz`` in `folder`, by global epoch."""
    dumps = {}
    for path in sorted(Path(folder).glob("epoch_*.npz")):
        match = ROLLOUT_PATTERN.search(path.name)
        if match:
            with np.load(path) as data:
                dumps[int(match.group(1))] = {key: data[key] for key in data.files}
    return dumps


# ------------------------------------------------------------------------- where a run writes
_CLAIMED: dict[str, str] = {}  # new run dir asked for -> the folder this process claimed


def claim_run_dir(new_run_dir: str) -> str:
    """Create `new_run_dir`, or `<new_run_dir>_2`, `_3`, ... when it exists: a folder no other
    run uses (two runs started in the same second with the same run_name get one each). The
    creation is the claim (atomic), and a process claims once per name.

    Runs while Hydra resolves the run dir: a name that climbs out of its folder (`..`), a
    read-only or full disk exit with one line (`errors.exit_with`)."""
    if ".." in Path(new_run_dir).parts:
        exit_with(
            RunDirError(
                f"the run folder {new_run_dir} leaves the runs folder through '..': set run_name "
                "to a plain name (letters, digits, - _ .), or hydra.run.dir to the folder you want."
            )
        )
    if new_run_dir not in _CLAIMED:
        for number in range(1, MAX_RUN_DIR_NUMBER + 1):
            candidate = new_run_dir if number == 1 else f"{new_run_dir}_{number}"
            try:
                Path(candidate).mkdir(parents=True, exist_ok=False)
            except FileExistsError:
                continue
            except OSError as error:
                if error.errno not in STORAGE_ERRNOS:
                    raise
                exit_with(RunDirError(storage_message(error)))
            _CLAIMED[new_run_dir] = candidate
            break
        else:
            exit_with(RunDirError(f"{new_run_dir}_1..{MAX_RUN_DIR_NUMBER} all exist: set run_name"))
    return _CLAIMED[new_run_dir]


def resume_run_dir(ckpt_path: str | None, new_run_dir: str) -> str:
    """The run dir of a train run: the run `ckpt_path` came from, else a new folder
    (`claim_run_dir(new_run_dir)`).

    `<run>/checkpoints/<name>.ckpt` resumes into `<run>`. A missing file, or one outside a
    `checkpoints/` folder, gets a new folder (and loading it then says what is wrong).
    """
    if ckpt_path:
        path = Path(str(ckpt_path)).expanduser()
        if path.is_file() and path.parent.name == CHECKPOINTS_DIR:
            run_dir = path.resolve().parents[1]
            if not os.access(run_dir, os.W_OK):
                exit_with(
                    RunDirError(
                        f"ckpt_path={ckpt_path}: its run folder {run_dir} is read-only, so the "
                        "resume cannot write into it: copy the run folder somewhere writable and "
                        "resume from the copy, or start a new run from it with finetune_from=."
                    )
                )
            return str(run_dir)
    return claim_run_dir(new_run_dir)


def run_dir_or_new(run_dir: str | None, new_run_dir: str) -> str:
    """`run_dir` when the task config sets one (train), else a new claimed folder (eval, ...)."""
    return str(run_dir) if run_dir else claim_run_dir(new_run_dir)


def hydra_subdir(run_dir: str, stamp: str) -> str:
    """`.hydra`, or `.hydra/resume_<stamp>` when `run_dir` already holds a run's config.

    A resumed run keeps the config and overrides it started with (the sweep report reads them).
    """
    existing = Path(str(run_dir)) / HYDRA_DIR / CONFIG_FILE
    return f"{HYDRA_DIR}/resume_{stamp}" if existing.is_file() else HYDRA_DIR


LOCK_FILE = ".run.lock"  # in a run dir while a process trains in it (train, resume, pretrain)


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold `<run_dir>/.run.lock` while a run writes into `run_dir`: a second process that
    resumes the same run is refused with one line. The lock is the OS's (`flock`), so a process
    that died (kill -9, power loss) holds nothing: its leftover file is taken over. The file
    is removed on exit."""
    path = Path(run_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunDirError(
            f"the run {run_dir} is in use by {holder} (lock file {path}): wait until it ends, "
            "or resume a copy of the run folder; two processes writing one run would mix their "
            "checkpoints and metrics."
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()  # releases the lock


def last_checkpoint_note(run_dir: str | Path | None) -> str:
    """Where the last good checkpoint of a run is, for messages: its path when one exists,
    else that none was written yet (a run that fails in its first epoch)."""
    last = Path(str(run_dir)) / CHECKPOINTS_DIR / LAST_CHECKPOINT if run_dir else None
    if last is not None and last.is_file():
        return f"The last good checkpoint is kept: {last}."
    return "No checkpoint had been written yet."


def recorded_split_csv(ckpt_path: str | Path | None) -> Path | None:
    """The split.csv of the run a checkpoint belongs to (`<run>/checkpoints/x.ckpt`), if any."""
    if not ckpt_path:
        return None
    path = Path(str(ckpt_path)).expanduser().resolve()
    found = path.parents[1] / SPLIT_CSV if path.parent.name == CHECKPOINTS_DIR else None
    return found if found is not None and found.is_file() else None


OmegaConf.register_new_resolver("avit.resume_run_dir", resume_run_dir, replace=True)
OmegaConf.register_new_resolver("avit.run_dir_or_new", run_dir_or_new, replace=True)
OmegaConf.register_new_resolver("avit.hydra_subdir", hydra_subdir, replace=True)

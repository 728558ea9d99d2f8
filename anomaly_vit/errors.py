"""Errors: the project's error classes, and one clear line instead of a traceback.

A `ProjectError` is something the user can fix (a config key, a data file, a checkpoint, the
run folder): `task_wrapper` prints its one-line message. Anything else is a bug: one line too,
and the full traceback in the run log (and on the console with `verbose=true` or
AVIT_TRACEBACK=1).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

if TYPE_CHECKING:  # the error classes import without hydra (the torch-free deploy package)
    from omegaconf import DictConfig

log = logging.getLogger(__name__)


class ProjectError(Exception):
    """An error the user can fix; its message names the file or key and what to do."""


class ConfigError(ProjectError, ValueError):
    """A config value that cannot work (names the key and the values that would)."""


class DataError(ProjectError, ValueError):
    """Data files or their layout: a bad image, manifest row, missing class or split."""


class CheckpointError(ProjectError, ValueError):
    """A checkpoint that cannot be used here (missing, corrupt, refused, another task)."""


class RunDirError(ProjectError, ValueError):
    """The run folder: taken, outside the output root, read-only, full or in use."""


class MissingFileError(ProjectError, FileNotFoundError):
    """A file or folder the config names does not exist."""


class DivergenceError(ProjectError, FloatingPointError):
    """Training diverged (non-finite loss or outputs): lower the learning rate."""


# OS errors of a full, read-only or forbidden disk: what the user can do about each
STORAGE_ERRNOS = {
    errno.ENOSPC: "the disk is full: free space",
    errno.EDQUOT: "the disk quota is exceeded: free space",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "permission denied: write elsewhere",
    errno.EPERM: "permission denied: write elsewhere",
}

# Errors a user causes: shown as one message, no traceback. Anything else is a bug.
USER_ERRORS = (ProjectError,)
# torch's message when a checkpoint's weights do not fit the model (another architecture)
STATE_DICT_MISMATCH = "Error(s) in loading state_dict"
MAX_MISMATCH_NAMES = 5  # parameter names of torch's mismatch details shown in the message
MAX_BUG_CHARS = 300  # of a bug's own message, shown on its one line

Mode = TypeVar("Mode", bound=Enum)


def enum_value(
    modes: type[Mode], value: object, key: str, error: type[Exception] = ConfigError
) -> Mode:
    """`value` as a member of the (str) Enum `modes`, or a one-line `error` naming the config
    `key` and the choices."""
    try:
        return modes(str(value.value if isinstance(value, Enum) else value))
    except ValueError:
        raise error(f"{key}={value!r}: use one of {[m.value for m in modes]}.") from None


class UserError(SystemExit):
    """Exit with a one-line message (exit code 1) instead of a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(1)
        self.message = message


def exit_with(error: ProjectError) -> NoReturn:
    """Print `error: <message>` and exit 1: for errors found while Hydra resolves the run dir,
    before `task_wrapper` runs (an exception raised there ends in Hydra's long traceback)."""
    message = " ".join(str(error).split())
    print(f"\nerror: {message}", file=sys.stderr)
    raise UserError(message) from error


def task_wrapper(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Check the config, run `task`; a user error prints `error: <message>` (one line) and exits
    1. Any other exception is a bug: one line too, and its traceback in the run log. With
    `verbose=true` or AVIT_TRACEBACK=1 the exception is re-raised with its traceback instead, as
    under pytest unless AVIT_TRACEBACK=0."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> Any:
        try:
            _check_config(cfg)
            return task(cfg)
        except Exception as error:
            message = user_message(error, cfg)
            if _show_traceback(cfg):
                raise
            if message is None:
                message = _bug_message(error, _log_traceback(error))
                hint = "(set verbose=true to show the traceback here)"
            else:
                log.error("%s", message)
                hint = "(set verbose=true or AVIT_TRACEBACK=1 for the full traceback)"
            print(f"\nerror: {message}\n{hint}", file=sys.stderr)
            raise UserError(message) from None

    return wrapped


def _show_traceback(cfg: DictConfig | None = None) -> bool:
    flag = os.environ.get("AVIT_TRACEBACK")
    verbose = bool(cfg is not None and cfg.get("verbose", False))
    return verbose or flag == "1" or (flag != "0" and "pytest" in sys.modules)


def _log_traceback(error: BaseException) -> list[str]:
    """Write `error` with its traceback to the log files only (the run log, `<task>.log`); the
    console keeps one line. Returns the files written; with none, the traceback goes to stderr."""
    record = log.makeRecord(
        log.name, logging.ERROR, __file__, 0, "internal error (a bug): %s: %s",
        (type(error).__name__, error), (type(error), error, error.__traceback__),
    )  # fmt: skip
    files = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and handler.baseFilename != os.devnull:
            handler.handle(record)
            files.append(handler.baseFilename)
    if not files:
        traceback.print_exception(error, file=sys.stderr)
    return files


def _bug_message(error: BaseException, log_files: list[str]) -> str:
    where = f"the traceback is in {log_files[0]}" if log_files else "the traceback is above"
    detail = " ".join(f"{type(error).__name__}: {error}".split())[:MAX_BUG_CHARS]
    return f"internal error, a bug in anomaly_vit, not in your input ({detail}); {where}"


def _check_config(cfg: DictConfig) -> None:
    """Config values Lightning would accept silently but that are mistakes."""
    from omegaconf import DictConfig

    for name, node in (cfg.get("callbacks") or {}).items():
        every = node.get("every_n_epochs") if isinstance(node, DictConfig) else None
        valid = isinstance(every, int) and not isinstance(every, bool) and every >= 1
        if every is not None and not valid:
            raise ConfigError(
                f"callbacks.{name}.every_n_epochs={every}: must be an integer >= 1 (the number "
                f"of epochs between two runs); to turn the callback off set callbacks.{name}=null"
            )


def user_message(error: BaseException, cfg: DictConfig | None = None) -> str | None:
    """The one-line message to show for `error`, or None when it is not a user error (a bug).

    Hydra wraps errors raised while instantiating (`full_key: data.sources.real`): the user
    error beneath is shown, with a source's `<name>` placeholder filled in from that key. A
    checkpoint whose weights do not fit the model is a user error too (wrong `ckpt_path`).
    """
    from hydra.errors import InstantiationException
    from omegaconf import OmegaConf

    full_key = None
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        found = re.search(r"full_key: (\S+)", str(error))
        full_key = found.group(1) if found else full_key
        error = error.__cause__
    if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
        output_dir = OmegaConf.select(cfg, "paths.output_dir", default=None) if cfg else None
        return storage_message(error, output_dir)
    if isinstance(error, USER_ERRORS):
        message = _root_message(error)
        if full_key and "<name>" in message:
            message = message.replace("<name>", full_key.rsplit(".", 1)[-1])
        return message
    if isinstance(error, RuntimeError) and STATE_DICT_MISMATCH in str(error):
        text = str(error)
        names = re.findall(r"size mismatch for ([\w.]+)", text)
        for kind in ("Missing", "Unexpected"):
            listed = re.search(rf"{kind} key\(s\) in state_dict: ([^\n]*)", text)
            if listed:
                names += re.findall(r'"([\w.]+)"', listed.group(1))
        more = ", ..." if len(names) > MAX_MISMATCH_NAMES else ""
        shown = ", ".join(names[:MAX_MISMATCH_NAMES]) + more
        ckpt_path = cfg.get("ckpt_path") if cfg is not None else None
        which = f"ckpt_path={ckpt_path}" if ckpt_path else "the checkpoint"
        return (
            f"the weights in {which} do not fit this model: it was trained with another "
            f"architecture ({len(names)} parameter(s) differ: {shown}); resume (ckpt_path) with "
            "the model config it was trained with, or start a new run from its weights with "
            "finetune_from and the same model.net settings"
        )
    return None


def storage_message(error: OSError, output_dir: str | Path | None = None) -> str:
    """One line for a disk that is full, read-only or forbidden: the file, what to do, and what
    the run kept (every file is written atomically, so files written before are intact)."""
    what = STORAGE_ERRNOS.get(error.errno, "the write failed: check the disk")
    target = error.filename or "a file of the run"
    message = f"could not write {target}: {what} (or set paths.log_dir to another disk)"
    if output_dir is None:
        return f"{message}; files written before are intact."
    from anomaly_vit.rundir import CHECKPOINTS_DIR  # rundir imports this module

    folder = Path(str(output_dir)) / CHECKPOINTS_DIR
    kept = sorted(p.name for p in folder.glob("*.ckpt")) if folder.is_dir() else []
    if not kept:
        return f"{message}; no checkpoint had been written yet in {output_dir}."
    return f"{message}; kept intact in {folder}: {', '.join(kept)}."


def _root_message(error: BaseException) -> str:
    """The message of a user error, on one line. It is the outermost user error beneath Hydra's
    wrappers: a user error raised `from` another one adds context (what to do) to it."""
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(message.split())

"""User errors: one clear line instead of a traceback (`task_wrapper`, `UserError`)."""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

from hydra.errors import InstantiationException
from omegaconf import DictConfig

log = logging.getLogger(__name__)

# Errors a user causes (bad path, bad config value, bad image): shown as one message, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, KeyError, FloatingPointError)
# torch's message when a checkpoint's weights do not fit the model (another architecture)
STATE_DICT_MISMATCH = "Error(s) in loading state_dict"
MAX_MISMATCH_NAMES = 5  # parameter names of torch's mismatch details shown in the message

Mode = TypeVar("Mode", bound=Enum)


def enum_value(
    modes: type[Mode], value: object, key: str, error: type[ValueError] = ValueError
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


def task_wrapper(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Check the config, run `task`; a user error prints `error: <message>` (one line) and exits
    1. AVIT_TRACEBACK=1 re-raises it with its traceback instead, as does running under pytest
    unless AVIT_TRACEBACK=0."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> Any:
        try:
            _check_config(cfg)
            return task(cfg)
        except Exception as error:
            message = user_message(error, cfg)
            if message is None or _show_traceback():
                raise
            log.error("%s", message)
            hint = "(set AVIT_TRACEBACK=1 for the full traceback)"
            print(f"\nerror: {message}\n{hint}", file=sys.stderr)
            raise UserError(message) from None

    return wrapped


def _show_traceback() -> bool:
    flag = os.environ.get("AVIT_TRACEBACK")
    return flag == "1" or (flag != "0" and "pytest" in sys.modules)


def _check_config(cfg: DictConfig) -> None:
    """Config values Lightning would accept silently but that are mistakes."""
    for name, node in (cfg.get("callbacks") or {}).items():
        every = node.get("every_n_epochs") if isinstance(node, DictConfig) else None
        valid = isinstance(every, int) and not isinstance(every, bool) and every >= 1
        if every is not None and not valid:
            raise ValueError(
                f"callbacks.{name}.every_n_epochs={every}: must be an integer >= 1 (the number "
                f"of epochs between two runs); to turn the callback off set callbacks.{name}=null"
            )


def user_message(error: BaseException, cfg: DictConfig | None = None) -> str | None:
    """The one-line message to show for `error`, or None when it is not a user error (a bug).

    Hydra wraps errors raised while instantiating (`full_key: data.sources.real`): the user
    error beneath is shown, with a source's `<name>` placeholder filled in from that key. A
    checkpoint whose weights do not fit the model is a user error too (wrong `ckpt_path`).
    """
    full_key = None
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        found = re.search(r"full_key: (\S+)", str(error))
        full_key = found.group(1) if found else full_key
        error = error.__cause__
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


def _root_message(error: BaseException) -> str:
    """The message of a user error, on one line. It is the outermost user error beneath Hydra's
    wrappers: a user error raised `from` another one adds context (what to do) to it."""
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(message.split())

"""What to do with an image file that cannot be used: `on_bad_image` and the list of skips.

With ``skip`` the file is left out, logged once and listed (the data report shows the list);
with ``error`` the run stops at the first one with a message naming the file.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from anomaly_vit.data.image_io import BadImageError
from anomaly_vit.data.records import Record
from anomaly_vit.errors import DataError, enum_value
from anomaly_vit.rundir import DATA_REPORT_JSON

log = logging.getLogger(__name__)

SKIP_HINT = (
    "fix or remove the file, or set data.on_bad_image=skip to leave such images out "
    f"(they are listed in {DATA_REPORT_JSON})"
)


class OnBadImage(StrEnum):
    """`data.on_bad_image`: leave bad files out (listed in the report), or stop the run."""

    SKIP = "skip"
    ERROR = "error"


def on_bad_image_policy(value: str) -> OnBadImage:
    """`value` as an `OnBadImage`, or a one-line error naming the config key."""
    return enum_value(OnBadImage, value, "data.on_bad_image")


class BadImages:
    """The `on_bad_image` policy and one entry per image left out (read by the data report)."""

    def __init__(self, policy: str) -> None:
        self.policy = on_bad_image_policy(policy)
        self.entries: list[dict[str, object]] = []

    def bad_file_of_scan(self, path: str, reason: str, source: str) -> None:
        """A file a scan found but could skip (a folder named like an image)."""
        if self.policy == OnBadImage.ERROR:
            raise BadImageError(path, f"{reason}; {SKIP_HINT}")
        self.entries.append({"path": path, "reason": reason, "source": source, "record": False})
        log.warning("skipping bad image file '%s': %s", path, reason)

    def bad_record(self, error: ValueError, record: Record, split: str) -> None:
        """A record whose decoding failed: raise under ``error``, else note it and go on."""
        if self.policy == OnBadImage.ERROR:
            if isinstance(error, BadImageError):
                raise BadImageError(error.path, f"{error.reason}; {SKIP_HINT}") from error
            raise DataError(f"{error} ({SKIP_HINT})") from error
        path = error.path if isinstance(error, BadImageError) else record.path
        reason = error.reason if isinstance(error, BadImageError) else str(error)
        if all(entry["path"] != path for entry in self.entries):
            log.warning("skipping bad image file '%s': %s", path, reason)
        self.entries.append(
            {"path": path, "reason": reason, "source": record.source, "split": split,
             "item_id": record.item_id, "record": True}
        )  # fmt: skip

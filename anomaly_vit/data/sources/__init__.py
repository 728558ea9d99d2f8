"""Image sources read from files: class folders, paired camera folders and CSV manifests.

Each source lists `Record`s cheaply (`scan`) and decodes one record to pixels (`load`).
"""

from anomaly_vit.data.sources.base import VIEW_SINGLE, BaseSource, SourceError, listing
from anomaly_vit.data.sources.folders import (
    FolderSource,
    OnUnpaired,
    PairedFolderSource,
    SingleFolderSource,
)
from anomaly_vit.data.sources.manifest import ManifestSource

__all__ = [
    "OnUnpaired",
    "VIEW_SINGLE",
    "BaseSource",
    "FolderSource",
    "ManifestSource",
    "PairedFolderSource",
    "SingleFolderSource",
    "SourceError",
    "listing",
]

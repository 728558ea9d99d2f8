"""Run an exported model without the training stack: numpy, pillow and onnxruntime only.

`Inferencer(bundle_dir).predict(images)` gives one `Prediction` per photo (defect score,
decision, label, map, mask and boxes at the photo's resolution); `save_threshold` writes a new
bundle version with another threshold. The bundle is written by `python -m anomaly_vit.export`
(`anomaly_vit.deploy.export`, which needs torch; it is not imported here).
"""

from anomaly_vit.deploy.bundle import FORMAT_VERSION, BundleError, read_bundle, save_threshold
from anomaly_vit.deploy.inferencer import Inferencer, Prediction

__all__ = [
    "FORMAT_VERSION",
    "BundleError",
    "Inferencer",
    "Prediction",
    "read_bundle",
    "save_threshold",
]

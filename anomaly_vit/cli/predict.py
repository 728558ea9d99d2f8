"""Predict entry point: `python -m anomaly_vit.predict bundle=<dir> input=<folder|csv|image>` (Hydra).

Streams the photos through `deploy.Inferencer` (a few at a time, never all in memory) and writes
into the run dir: ``predictions.csv`` (path, defect_score, decision, class, policy, threshold,
mask_area, boxes as "x0 y0 x1 y1" separated by ";", mask and overlay files), ``masks/<name>.png``
and ``overlays/<name>.png`` at each photo's resolution, and ``skipped.csv`` (path, error) for
files that could not be read (each also logged). A progress bar shows on a terminal; the last
line says how many photos were flagged.
"""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig
from tqdm import tqdm

from anomaly_vit import CONF_DIR
from anomaly_vit.errors import task_wrapper

log = logging.getLogger(__name__)

COLUMNS = (
    "path",
    "defect_score",
    "decision",
    "class",
    "policy",
    "threshold",
    "mask_area",
    "boxes",
    "mask",
    "overlay",
)
SKIPPED_CSV = "skipped.csv"
USAGE = (
    "python -m anomaly_vit.predict bundle=outputs/runs/<run>/export/onnx "
    "input=<image folder, manifest CSV or image>"
)


def _boxes_cell(boxes: list[tuple[int, int, int, int]]) -> str:
    return ";".join(" ".join(str(v) for v in box) for box in boxes)


class _StreamingCsv:
    """A CSV written row by row to a hidden file, renamed into place when complete."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path, self.tmp = path, path.with_name(f".{path.name}.tmp")
        self.handle = self.tmp.open("w", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.handle, fieldnames=list(columns))
        self.writer.writeheader()
        self.rows = 0

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow(row)
        self.rows += 1

    def close(self) -> None:
        self.handle.close()
        self.tmp.replace(self.path)


@task_wrapper
def predict(cfg: DictConfig) -> dict[str, Any]:
    """Predict every photo of `cfg.input` with the bundle `cfg.bundle` (module doc)."""
    from anomaly_vit.deploy import Inferencer
    from anomaly_vit.deploy.draw import mask_image, overlay_image
    from anomaly_vit.explain.inputs import find_inputs

    for key in ("bundle", "input"):
        if not cfg.get(key):
            raise ValueError(f"{key} is required: {USAGE}")
    if int(cfg.batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}.")
    inferencer = Inferencer(
        cfg.bundle,
        threshold_policy=cfg.get("threshold_policy"),
        threshold=cfg.get("threshold"),
        batch_size=int(cfg.batch_size),
        threads=cfg.get("threads"),
    )
    items = find_inputs(cfg.input, None, inferencer.bundle["classes"])
    names = {str(item.path): item.name for item in items}
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = _StreamingCsv(output_dir / "predictions.csv", COLUMNS)
    skipped = _StreamingCsv(output_dir / SKIPPED_CSV, ("path", "error"))
    flagged = 0
    progress = tqdm(total=len(items), unit="img", disable=not sys.stderr.isatty())
    try:
        for prediction, photo in inferencer.iter_with_photos([item.path for item in items]):
            progress.update(1)
            if prediction.error is not None:
                log.warning("skipping: %s", prediction.error)
                skipped.write({"path": prediction.path, "error": prediction.error})
                continue
            name = names[prediction.path]
            row = {
                "path": prediction.path,
                "defect_score": prediction.score,
                "decision": "defect" if prediction.is_defect else "good",
                "class": prediction.label,
                "policy": prediction.policy,
                "threshold": prediction.threshold,
                "mask_area": prediction.mask_area,
                "boxes": _boxes_cell(prediction.boxes),
                "mask": "",
                "overlay": "",
            }
            if cfg.masks:
                row["mask"] = _save(mask_image(prediction.mask), output_dir, "masks", name)
            if cfg.overlays:
                image = overlay_image(photo, prediction, float(cfg.overlay_alpha))
                row["overlay"] = _save(image, output_dir, "overlays", name)
            rows.write(row)
            flagged += prediction.is_defect
    finally:
        progress.close()
        rows.close()
        skipped.close()
    summary = {
        "n_images": rows.rows,
        "n_defect": flagged,
        "n_skipped": skipped.rows,
        "policy": inferencer.policy,
        "threshold": inferencer.threshold,
        "output_dir": str(output_dir),
    }
    print(
        f"\n{rows.rows} photo(s): {flagged} flagged as defect ({inferencer.policy}, threshold "
        f"{inferencer.threshold:.4f}), {skipped.rows} skipped (unreadable, see {SKIPPED_CSV}); "
        f"written to {output_dir}"
    )
    return summary


def _save(image, output_dir: Path, folder: str, name: str) -> str:
    path = output_dir / folder / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return str(path.relative_to(output_dir))


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()

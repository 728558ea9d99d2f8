"""`Inferencer`: run an exported bundle on photos with numpy, pillow and onnxruntime only.

    from anomaly_vit.deploy import Inferencer
    inferencer = Inferencer("outputs/runs/<run>/export/onnx", threshold_policy="recall:1.0")
    for p in inferencer.predict(["a.png", "b.jpg"]):
        print(p.path, p.score, p.is_defect, p.label, p.mask_area, p.boxes)

Each photo is decoded, fitted and normalised as training did (`deploy.preprocess`), run through
the bundle's network (class head, defect score per the model's decision rule, map), and its map
is taken back to the photo's own pixels; the mask is the map at or above the bundle's pixel
threshold, on images flagged as defective only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from anomaly_vit.data.regions import mask_boxes
from anomaly_vit.data.resize import ResizeMode
from anomaly_vit.deploy.bundle import read_bundle, resolve_bundle_threshold
from anomaly_vit.deploy.preprocess import map_to_original, model_input, to_rgb

ImageLike = str | Path | Image.Image | np.ndarray
DEFAULT_BATCH_SIZE = 8


@dataclass
class Prediction:
    """One photo's result; `error` is set (and the rest empty) when it could not be read."""

    path: str | None
    score: float = float("nan")
    is_defect: bool = False
    label: str = ""
    threshold: float = float("nan")
    policy: str = ""
    map: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32), repr=False)
    mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool), repr=False)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    mask_area: int = 0
    error: str | None = None


class _OnnxNetwork:
    def __init__(self, model_path: Path, threads: int | None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = onnxruntime.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch_bchw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits, score, maps = self.session.run(None, {self.input_name: batch_bchw})
        return logits, score, maps


class _TorchScriptNetwork:
    def __init__(self, model_path: Path, threads: int | None) -> None:
        import torch  # a torchscript bundle needs torch; an onnx bundle never imports it

        self.torch = torch
        self.module = torch.jit.load(str(model_path), map_location="cpu").eval()

    def __call__(self, batch_bchw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self.torch.no_grad():
            outputs = self.module(self.torch.from_numpy(batch_bchw))
        return tuple(o.numpy() for o in outputs)


NETWORKS = {"onnx": _OnnxNetwork, "torchscript": _TorchScriptNetwork}


class Inferencer:
    """A bundle ready to predict (see the module doc); `threshold` overrides any policy."""

    def __init__(
        self,
        bundle_dir: str | Path,
        threshold_policy: str | None = None,
        threshold: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
    ) -> None:
        self.bundle_dir = Path(bundle_dir).expanduser()
        self.bundle: dict[str, Any] = read_bundle(self.bundle_dir)
        self.threshold, self.policy = resolve_bundle_threshold(
            self.bundle, threshold_policy, threshold
        )
        spec = self.bundle["input"]
        self.input_hw = (int(spec["height"]), int(spec["width"]))
        self.resize = ResizeMode(spec["resize"])
        self.mean, self.std = spec["mean"], spec["std"]
        self.pixel_threshold = float(self.bundle["pixel_threshold"])
        self.batch_size = max(1, int(batch_size))
        self.network = NETWORKS[self.bundle["format"]](
            self.bundle_dir / self.bundle["model_file"], threads
        )

    def policies(self) -> dict[str, dict]:
        """The threshold policies stored in the bundle: name -> {threshold, val, test, ...}."""
        return dict(self.bundle["thresholds"])

    def predict(self, images: ImageLike | Iterable[ImageLike]) -> list[Prediction]:
        """Predictions for one image or a list of them (always a list, in order)."""
        return list(self.iter_predict(images))

    def iter_predict(self, images: ImageLike | Iterable[ImageLike]) -> Iterator[Prediction]:
        """`predict` as a stream: at most `batch_size` photos are held at a time."""
        for prediction, _ in self.iter_with_photos(images):
            yield prediction

    def iter_with_photos(
        self, images: ImageLike | Iterable[ImageLike]
    ) -> Iterator[tuple[Prediction, np.ndarray | None]]:
        """(prediction, the decoded uint8 RGB photo or None when unreadable), streamed."""
        if isinstance(images, (str, Path, Image.Image, np.ndarray)):
            images = [images]
        batch: list[tuple[str | None, np.ndarray]] = []
        for index, image in enumerate(images):
            path = str(image) if isinstance(image, (str, Path)) else None
            try:
                rgb = to_rgb(image, name=path or f"image {index}")
            except ValueError as error:  # BadImageError / ImageInputError: one clear line
                yield from self._run(batch)
                batch = []
                yield Prediction(path=path, error=str(error)), None
                continue
            batch.append((path, rgb))
            if len(batch) == self.batch_size:
                yield from self._run(batch)
                batch = []
        yield from self._run(batch)

    def _run(
        self, batch: list[tuple[str | None, np.ndarray]]
    ) -> Iterator[tuple[Prediction, np.ndarray]]:
        if not batch:
            return
        inputs, placements = zip(
            *(
                model_input(rgb, self.input_hw, self.resize, self.mean, self.std)
                for _, rgb in batch
            ),
            strict=True,
        )
        logits, scores, maps = self.network(np.stack(inputs).astype(np.float32))
        for (path, rgb), where, logits_k, score, map_hw in zip(
            batch, placements, logits, scores, maps, strict=True
        ):
            original = map_to_original(map_hw, where)
            yield self._prediction(path, logits_k, float(score), original), rgb

    def _label(self, logits_k: np.ndarray, is_defect: bool) -> str:
        """The good class, else the defect class (with several: the head's likeliest one)."""
        classes, good = self.bundle["classes"], self.bundle["good_class"]
        if not is_defect:
            return good
        if len(classes) <= 2:
            return self.bundle["defect_class"]
        defects = [k for k, name in enumerate(classes) if name != good]
        return classes[max(defects, key=lambda k: logits_k[k])]

    def _prediction(
        self, path: str | None, logits_k: np.ndarray, score: float, map_hw: np.ndarray
    ) -> Prediction:
        is_defect = score >= self.threshold
        mask = np.zeros(map_hw.shape, dtype=bool)
        if is_defect:
            with np.errstate(invalid="ignore"):
                mask = np.nan_to_num(map_hw, nan=-np.inf) >= self.pixel_threshold
        return Prediction(
            path=path,
            score=score,
            is_defect=bool(is_defect),
            label=self._label(logits_k, bool(is_defect)),
            threshold=self.threshold,
            policy=self.policy,
            map=map_hw,
            mask=mask,
            boxes=mask_boxes(mask),
            mask_area=int(mask.sum()),
        )

"""`MixedDataModule`: real and synthetic sources, split by item, mixed by weight, cached once.

Bad image files are skipped or stop the run (`on_bad_image`); either way `setup()` ends with the
data report (`anomaly_vit.data.report`): `data_report.json` in `output_dir`, a loud summary in
the log, and a text entry in TensorBoard when the trainer has a TensorBoard logger.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from tqdm.auto import tqdm

from anomaly_vit.data.image_io import BadImageError
from anomaly_vit.data.records import Record, Source, SourceContext
from anomaly_vit.data.report import (
    REPORT_FILE,
    build_report,
    labels_differing_by_case,
    problem_lines,
    report_markdown,
    write_report,
)
from anomaly_vit.data.sampler import MixSampler
from anomaly_vit.data.split import check_ratios, follow_recorded_split, split_items

log = logging.getLogger(__name__)

BAD_IMAGE_POLICIES = ("skip", "error")
MAX_ITEMS_LOGGED = 10  # item ids named in a split-change warning


class CachedImages(Dataset):
    """Decoded images held in memory as uint8 NCHW; transforms run on uint8 tensors."""

    def __init__(
        self,
        images_nchw: torch.Tensor,
        labels: torch.Tensor,
        source_ids: torch.Tensor,
        masks_nhw: torch.Tensor | None = None,
        transform: v2.Transform | None = None,
    ) -> None:
        self.images_nchw = images_nchw
        self.labels = labels
        self.source_ids = source_ids
        self.masks_nhw = masks_nhw
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        image = self.images_nchw[index]
        if self.transform is not None:
            image = self.transform(image)
        sample = {
            "image": image,
            "label": self.labels[index],
            "source": self.source_ids[index],
            "index": index,
        }
        if self.masks_nhw is not None:
            sample["mask"] = self.masks_nhw[index]
        return sample


class MixedDataModule(L.LightningDataModule):
    """Compose sources at mix weights; validate and test on real images of held-out items.

    `prepare()` scans sources and splits items (cheap, no decoding) so `classes` is known before
    the model is built; `setup()` decodes every image that will be read, once, into memory.
    """

    def __init__(
        self,
        sources: Mapping[str, Source],
        img_size: int,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        split: Mapping[str, float] | None = None,
        synthetic_fraction: float | None = None,
        samples_per_epoch: int | None = None,
        eval_sources: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
        good_class: str = "good",
        train_transforms: Mapping[str, v2.Transform] | Sequence[v2.Transform] = (),
        batch_augment: torch.nn.Module | None = None,
        demo: Mapping[str, object] | None = None,
        on_bad_image: str = "skip",
        seed: int = 0,
        output_dir: str | None = None,
        progress: bool = True,
        name: str = "data",
    ) -> None:
        super().__init__()
        if not sources:
            raise ValueError("data.sources is empty: configure at least one image source.")
        if synthetic_fraction is not None and not 0.0 <= float(synthetic_fraction) <= 1.0:
            raise ValueError(
                f"data.synthetic_fraction must be in [0, 1] (or null to use the raw weights), "
                f"got {synthetic_fraction}."
            )
        if on_bad_image not in BAD_IMAGE_POLICIES:
            raise ValueError(
                f"data.on_bad_image must be one of {list(BAD_IMAGE_POLICIES)}, got {on_bad_image!r}."
            )
        self.sources = dict(sources)
        _check_sources(self.sources, eval_sources)
        for source_name, source in self.sources.items():
            source.name = source_name
        self.img_size = int(img_size)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.split_ratios = check_ratios(split or {"train": 0.6, "val": 0.2, "test": 0.2})
        self.synthetic_fraction = synthetic_fraction
        self.requested_samples_per_epoch = samples_per_epoch
        self.eval_sources = list(eval_sources) if eval_sources else None
        self.requested_classes = list(classes) if classes else None
        self.good_class = good_class
        steps = (
            list(train_transforms.values())
            if isinstance(train_transforms, Mapping)
            else list(train_transforms)
        )
        self.train_transform = v2.Compose([t for t in steps if t is not None]) if steps else None
        self.batch_augment = batch_augment
        self.demo = dict(demo) if demo else None
        self.on_bad_image = on_bad_image
        self.seed = seed
        self.output_dir = output_dir
        self.progress = progress
        self.name = name
        self.records: dict[str, list[Record]] = {}
        self.split_of_item: dict[str, str] = {}
        self.classes: list[str] = []
        self.bad_images: list[dict[str, object]] = []  # one entry per image left out (see report)
        self.report: dict[str, object] = {}
        self.report_on_setup = True  # `setup()` ends with `write_report()` (check_data defers it)
        self.datasets: dict[str, CachedImages] = {}
        self.records_of_split: dict[str, list[Record]] = {}
        # item_id -> split a run recorded (eval, resume): followed instead of re-deriving it
        self.recorded_split: dict[str, str] | None = None
        self.split_changes: dict[str, list[str]] = {}  # items that appeared / disappeared since
        self._prepared = False

    # ----------------------------------------------------------------------------- index & split
    def prepare_data(self) -> None:
        """Generate the built-in demo data set if `data.demo` is configured and it is missing."""
        if self.demo:
            from anomaly_vit.data.demo import ensure_demo

            ensure_demo(**self.demo, progress=self.progress)

    def prepare(self) -> None:
        """Scan all sources, split by item and fix the class list. Idempotent, no decoding."""
        if self._prepared:
            return
        context = SourceContext(
            records=self.records, split_of_item={}, sources=self.sources, seed=self.seed
        )
        primary = [n for n, s in self.sources.items() if not getattr(s, "base", None)]
        derived = [n for n in self.sources if n not in primary]
        for source_name in derived:
            base = self.sources[source_name].base
            if base not in self.sources:
                raise ValueError(
                    f"data.sources.{source_name}.base={base!r} names no source; "
                    f"known sources: {sorted(self.sources)}."
                )
        for source_name in primary:
            self.records[source_name] = self.sources[source_name].scan(context)
            self._bad_files_of_scan(source_name)
        label_of_item: dict[str, str] = {}
        for source_name in primary:
            source = self.sources[source_name]
            for record in self.records[source_name]:
                if source.synthetic:
                    self.split_of_item.setdefault(record.item_id, "train")
                elif record.item_id not in label_of_item or record.label != self.good_class:
                    label_of_item[record.item_id] = record.label
        derived_split = split_items(label_of_item, self.split_ratios, self.seed)
        if self.recorded_split is not None:
            derived_split = self._follow_recorded_split(derived_split)
        self.split_of_item.update(derived_split)
        context.split_of_item = self.split_of_item
        for source_name in derived:
            self.records[source_name] = self.sources[source_name].scan(context)
        self.classes = self._resolve_classes()
        self._prepared = True

    def _follow_recorded_split(self, derived_split: dict[str, str]) -> dict[str, str]:
        """The recorded split for the items it knows; new items unused; changes logged."""
        split, appeared, disappeared = follow_recorded_split(derived_split, self.recorded_split)
        self.split_changes = {"appeared": appeared, "disappeared": disappeared}
        for what, items, effect in (
            ("appeared", appeared, "left out (not in the run's split)"),
            ("disappeared", disappeared, "no longer in the data"),
        ):
            if items:
                shown = ", ".join(items[:MAX_ITEMS_LOGGED]) + (
                    " ..." if len(items) > MAX_ITEMS_LOGGED else ""
                )
                log.warning(
                    "split: %d item(s) %s since the run: %s: %s", len(items), what, effect, shown
                )
        return split

    def _bad_files_of_scan(self, source_name: str) -> None:
        """Apply `on_bad_image` to what a scan found but could skip (a folder named like an image)."""
        for path, reason in getattr(self.sources[source_name], "bad_files", []):
            if self.on_bad_image == "error":
                raise BadImageError(path, f"{reason}; {_SKIP_HINT}")
            self.bad_images.append(
                {"path": path, "reason": reason, "source": source_name, "record": False}
            )
            log.warning("skipping bad image file '%s': %s", path, reason)

    def _resolve_classes(self) -> list[str]:
        labels = {r.label for recs in self.records.values() for r in recs}
        if self.requested_classes:
            unknown = labels - set(self.requested_classes)
            if unknown:
                raise ValueError(
                    f"labels {sorted(unknown)} are not in data.classes={self.requested_classes}; "
                    "add them to data.classes or remove those images."
                )
            return list(self.requested_classes)
        real_labels = {
            r.label
            for n, recs in self.records.items()
            if not self.sources[n].synthetic
            for r in recs
        }
        extra = labels - real_labels
        if extra:
            log.warning("labels %s appear only in synthetic sources", sorted(extra))
        ordered = sorted(labels - {self.good_class})
        for group in labels_differing_by_case(sorted(labels)):
            log.warning(
                "labels %s differ only by case, so they are %d different classes (good_class "
                "is %r): rename them to one spelling if they are one class",
                group, len(group), self.good_class,
            )  # fmt: skip
        return ([self.good_class] if self.good_class in labels else []) + ordered

    @property
    def mix_weights(self) -> dict[str, float]:
        """Effective weight of each source: `synthetic_fraction` splits real vs synthetic share."""
        weights = {name: float(source.weight) for name, source in self.sources.items()}
        for name, weight in weights.items():
            if weight < 0:
                raise ValueError(f"data.sources.{name}.weight must be >= 0, got {weight}.")
        if weights and sum(weights.values()) <= 0:
            raise ValueError(
                f"every mix weight is 0 ({', '.join(f'data.sources.{n}.weight' for n in weights)}"
                "): give at least one source a weight > 0."
            )
        if self.synthetic_fraction is None:
            return weights
        fraction = float(self.synthetic_fraction)
        effective = {}
        for synthetic, share in ((False, 1.0 - fraction), (True, fraction)):
            group = {n: w for n, w in weights.items() if self.sources[n].synthetic == synthetic}
            total = sum(group.values())
            if share > 0 and total <= 0:
                kind = "synthetic" if synthetic else "real"
                raise ValueError(
                    f"data.synthetic_fraction={fraction} asks for {kind} images but no {kind} "
                    f"source has a weight > 0 (sources: {sorted(weights)})."
                )
            effective.update(
                {n: (share * w / total if total > 0 else 0.0) for n, w in group.items()}
            )
        return effective

    # ------------------------------------------------------------------------------- decoding
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.prepare()
        weights = self.mix_weights
        eval_names = self.eval_sources or [n for n, s in self.sources.items() if not s.synthetic]
        for split in ("train", "val", "test"):
            names = [n for n in self.sources if weights[n] > 0] if split == "train" else eval_names
            self.records_of_split[split] = [
                r
                for n in names
                for r in self.records[n]
                if self.split_of_item.get(r.item_id) == split
            ]
        if not self.records_of_split["train"]:
            raise ValueError("no training images: check data.sources and data.split.")
        for split in ("train", "val", "test"):
            self.datasets[split] = self._decode(split)
        self._write_split_csv()
        if self.report_on_setup:
            self.write_report()

    def _decode(self, split: str) -> CachedImages:
        records = self.records_of_split[split]
        class_index = {c: i for i, c in enumerate(self.classes)}
        source_index = {n: i for i, n in enumerate(self.sources)}
        size = (self.img_size, self.img_size)
        images, masks, kept = [], [], []
        for record in tqdm(records, desc=f"decode {split}", disable=not self.progress, leave=False):
            loaded = self._load_or_skip(record, split)
            if loaded is None:
                continue
            image, mask = loaded
            images.append(np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR)))
            if mask is None:
                masks.append(np.zeros(size, dtype=bool))
            else:
                masks.append(
                    np.asarray(
                        Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)
                    )
                    > 0
                )
            kept.append(record)
        self.records_of_split[split] = kept
        if not kept:
            images_nchw = torch.zeros((0, 3, *size), dtype=torch.uint8)
            masks_nhw = torch.zeros((0, *size), dtype=torch.bool)
        else:
            images_nchw = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
            masks_nhw = torch.from_numpy(np.stack(masks))
        labels = torch.tensor([class_index[r.label] for r in kept], dtype=torch.long)
        source_ids = torch.tensor([source_index[r.source] for r in kept], dtype=torch.long)
        if split == "train":
            return CachedImages(images_nchw, labels, source_ids, None, self.train_transform)
        return CachedImages(images_nchw, labels, source_ids, masks_nhw, None)

    def _load_or_skip(
        self, record: Record, split: str
    ) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Decode one record; a bad file raises (`on_bad_image=error`) or is noted and skipped."""
        try:
            return self.sources[record.source].load(record)
        except ValueError as error:  # BadImageError and friends: named file, clear reason
            if self.on_bad_image == "error":
                if isinstance(error, BadImageError):
                    raise BadImageError(error.path, f"{error.reason}; {_SKIP_HINT}") from error
                raise ValueError(f"{error} ({_SKIP_HINT})") from error
            path = error.path if isinstance(error, BadImageError) else record.path
            reason = error.reason if isinstance(error, BadImageError) else str(error)
            if all(entry["path"] != path for entry in self.bad_images):
                log.warning("skipping bad image file '%s': %s", path, reason)
            self.bad_images.append(
                {"path": path, "reason": reason, "source": record.source, "split": split,
                 "item_id": record.item_id, "record": True}
            )  # fmt: skip
            return None

    def inspect_unread(self) -> None:
        """Decode (to check, not to keep) the files `setup()` did not read: records of weight-0
        sources and of splits a source is not used in. Derived sources read no files of their own."""
        for source_name, source in self.sources.items():
            if getattr(source, "base", None):
                continue
            seen = set(getattr(source, "file_info", {})) | {e["path"] for e in self.bad_images}
            for record in self.records.get(source_name, []):
                if record.path not in seen:
                    self._load_or_skip(record, self.split_of_item.get(record.item_id, "unused"))
                    seen.add(record.path)

    def write_report(self) -> dict[str, object]:
        """Build the data report; on rank 0 write data_report.json, log the problems loudly and
        add a text summary to TensorBoard (when the trainer has a TensorBoard logger)."""
        self.report = build_report(self)
        if not _is_rank_zero(self):
            return self.report
        lines = problem_lines(self.report)
        where = Path(self.output_dir) / REPORT_FILE if self.output_dir else "the data report"
        for line in lines:
            log.warning("data check: %s", line)
        if lines:
            log.warning("data check: %d kind(s) of problem, details in %s", len(lines), where)
        if self.output_dir:
            write_report(self.report, Path(self.output_dir) / REPORT_FILE)
        trainer = getattr(self, "trainer", None)
        for logger in getattr(trainer, "loggers", None) or []:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_text"):
                experiment.add_text("data/report", report_markdown(self.report), global_step=0)
        return self.report

    def _write_split_csv(self) -> None:
        if not self.output_dir or not _is_rank_zero(self):
            return
        path = Path(self.output_dir) / "split.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["item_id", "split", "source", "view", "label", "path", "mask_path"])
            for source_name, records in self.records.items():
                for r in records:
                    split = self.split_of_item.get(r.item_id, "unused")
                    writer.writerow(
                        [r.item_id, split, source_name, r.view, r.label, r.path, r.mask_path or ""]
                    )

    # ------------------------------------------------------------------------------ loaders
    @property
    def samples_per_epoch(self) -> int:
        if self.requested_samples_per_epoch:
            return int(self.requested_samples_per_epoch)
        real = [r for r in self.records_of_split["train"] if not self.sources[r.source].synthetic]
        return len(real) or len(self.records_of_split["train"])

    def train_sampler(self) -> MixSampler:
        indices: dict[str, list[int]] = {n: [] for n in self.sources}
        for i, record in enumerate(self.records_of_split["train"]):
            indices[record.source].append(i)
        return MixSampler(indices, self.mix_weights, self.samples_per_epoch, seed=self.seed)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Batched augmentation of training batches (per-image parameters, on the device)."""
        trainer = getattr(self, "trainer", None)
        if self.batch_augment is not None and trainer is not None and trainer.training:
            batch["image"] = self.batch_augment(batch["image"])
        return batch

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.datasets["train"],
            batch_size=self.batch_size,
            sampler=self.train_sampler(),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(self.datasets[split], batch_size=self.eval_batch_size, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def summary(self) -> dict[str, object]:
        """Counts per split/source/class, for logs and summary.json."""
        return {
            split: dict(Counter(f"{r.source}/{r.label}" for r in records))
            for split, records in self.records_of_split.items()
        } | {
            "mix_weights": self.mix_weights,
            "samples_per_epoch": self.samples_per_epoch,
            **({"split_changes": self.split_changes} if self.split_changes else {}),
        }


_SKIP_HINT = (
    "fix or remove the file, or set data.on_bad_image=skip to leave such images out "
    f"(they are listed in {REPORT_FILE})"
)


def _check_sources(sources: Mapping[str, object], eval_sources: Sequence[str] | None) -> None:
    """Every `data.sources` entry must be a source (a `_target_` was instantiated), and
    `eval_sources` must name sources: a typo in an override names a source that does not exist."""
    real = sorted(n for n, s in sources.items() if callable(getattr(s, "scan", None)))
    for name, source in sources.items():
        if name not in real:
            raise ValueError(
                f"data.sources.{name} is not an image source (no _target_, got {source!r}): a "
                f"weight or option must name one of the configured sources {real}; to add a "
                f"source give data.sources.{name}._target_."
            )
    unknown = [n for n in eval_sources or [] if n not in sources]
    if unknown:
        raise ValueError(
            f"data.eval_sources names unknown source(s) {unknown}; configured sources: {real}."
        )


def _is_rank_zero(datamodule: L.LightningDataModule) -> bool:
    trainer = getattr(datamodule, "trainer", None)
    if trainer is None:  # before a trainer is attached: the rank Lightning read from the env
        return getattr(rank_zero_only, "rank", 0) == 0
    return trainer.is_global_zero

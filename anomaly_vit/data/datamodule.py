"""`MixedDataModule`: real and synthetic sources, split by item, mixed by weight, cached once.

`prepare()` builds the item index (`data.index`: scan, split, classes; no decoding) so
`classes` is known before the model is built; `setup()` decodes every image that will be read,
once, into memory (`data.cache`). Bad image files are skipped or stop the run (`on_bad_image`,
`data.bad_images`); either way `setup()` ends with the data report (`data.report`):
`data_report.json` in `output_dir`, a loud summary in the log, and a text entry in TensorBoard
when the trainer has a TensorBoard logger.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader

from anomaly_vit.data.bad_images import BadImages, on_bad_image_policy
from anomaly_vit.data.cache import CachedImages, ProbePool, decode_split, probe_pool
from anomaly_vit.data.index import DataIndex, check_sources, is_derived, mix_weights
from anomaly_vit.data.labels import (
    Balance,
    Task,
    inverse_frequency_weights,
    label_counts,
    resolve_balance,
)
from anomaly_vit.data.records import Record, Source
from anomaly_vit.data.report import (
    REPORT_FILE,
    build_report,
    problem_lines,
    report_markdown,
    write_report,
)
from anomaly_vit.data.resize import auto_size_hw, resize_mode, size_hw
from anomaly_vit.data.sampler import MixSampler
from anomaly_vit.data.scarce import check_mix_mode, check_real_fraction, epoch_length
from anomaly_vit.data.split import SPLITS, check_ratios
from anomaly_vit.errors import ConfigError, DataError, enum_value
from anomaly_vit.rundir import SPLIT_CSV

log = logging.getLogger(__name__)


class MixedDataModule(L.LightningDataModule):
    """Compose sources at mix weights; validate and test on real images of held-out items."""

    def __init__(
        self,
        sources: Mapping[str, Source],
        img_size: int | Sequence[int] | str,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        split: Mapping[str, float] | None = None,
        synthetic_fraction: float | None = None,
        samples_per_epoch: int | None = None,
        real_fraction: float | None = 1.0,
        mix_mode: str = "replace",
        eval_sources: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
        good_class: str = "good",
        batch_augment: torch.nn.Module | None = None,
        demo: Mapping[str, object] | None = None,
        on_bad_image: str = "skip",
        seed: int = 0,
        output_dir: str | None = None,
        progress: bool = True,
        name: str = "data",
        resize: str = "squash",
        task: str = "multiclass",
        defect_class: str = "defect",
        balance: str = "none",
        imbalance_ratio: float = 1.5,
        allow_synthetic_only_classes: bool = False,
        train_masks: bool = False,
        manifest: str | None = None,
        root: str | None = None,
        masks_root: str | None = None,
        pixel_budget: int = 40960,
        size_multiple: int = 16,
    ) -> None:
        super().__init__()
        if not sources:
            raise ConfigError("data.sources is empty: configure at least one image source.")
        if synthetic_fraction is not None and not 0.0 <= float(synthetic_fraction) <= 1.0:
            raise ConfigError(
                f"data.synthetic_fraction must be in [0, 1] (or null to use the raw weights), "
                f"got {synthetic_fraction}."
            )
        self.on_bad_image = on_bad_image_policy(on_bad_image)
        self.sources = dict(sources)
        check_sources(self.sources, eval_sources)
        for source_name, source in self.sources.items():
            source.name = source_name
        # img_size=auto: (height, width) from the real training images' median aspect ratio and
        # `pixel_budget`, sides multiples of `size_multiple` (the patch size); set by prepare()
        self.auto_size = str(img_size) == "auto"
        self.pixel_budget, self.size_multiple = int(pixel_budget), int(size_multiple)
        self.input_hw = None if self.auto_size else size_hw(img_size)
        self.resize = resize_mode(resize)
        self.task = enum_value(Task, task, "data.task")
        self.defect_class = str(defect_class)
        self.balance_requested = enum_value(Balance, balance, "data.balance")
        self.imbalance_ratio = float(imbalance_ratio)
        self.allow_synthetic_only_classes = bool(allow_synthetic_only_classes)
        self.train_masks = bool(train_masks)
        # where the data lives (data=manifest|folder|paired), for the report and summary
        self.location = {
            k: v
            for k, v in {"manifest": manifest, "root": root, "masks_root": masks_root}.items()
            if v is not None
        }
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.split_ratios = check_ratios(split or {"train": 0.6, "val": 0.2, "test": 0.2})
        self.synthetic_fraction = synthetic_fraction
        # real training items kept, synthetic replacing or added to real (see data.scarce)
        self.real_fraction = check_real_fraction(real_fraction)
        self.mix_mode = check_mix_mode(mix_mode, synthetic_fraction)
        self.requested_samples_per_epoch = samples_per_epoch
        self.eval_sources = list(eval_sources) if eval_sources else None
        self.requested_classes = list(classes) if classes else None
        self.good_class = good_class
        self.batch_augment = batch_augment
        self.demo = dict(demo) if demo else None
        self.seed = seed
        self.output_dir = output_dir
        self.progress = progress
        self.name = name
        self.bad = BadImages(self.on_bad_image)
        self.index: DataIndex | None = None
        self.report: dict[str, object] = {}
        self.report_on_setup = True  # `setup()` ends with `write_report()` (check_data defers it)
        self.datasets: dict[str, CachedImages] = {}
        self.records_of_split: dict[str, list[Record]] = {}
        # item_id -> split a run recorded (eval, resume): followed instead of re-deriving it
        self.recorded_split: dict[str, str] | None = None
        self._demo_ready = False

    # ----------------------------------------------------------------------------- index & split
    def prepare_data(self) -> None:
        """Generate the built-in demo data set if `data.demo` is configured and it is missing.
        Runs once per datamodule: `prepare()` calls it, and so does Lightning."""
        if self.demo and not self._demo_ready:
            from anomaly_vit.data.demo import ensure_demo

            ensure_demo(**self.demo, progress=self.progress)
        self._demo_ready = True

    def prepare(self) -> DataIndex:
        """Demo data if configured, scan all sources, split by item, fix the classes (once)."""
        if self.index is None:
            self.prepare_data()
            self.index = DataIndex(
                self.sources,
                self.split_ratios,
                self.seed,
                self.good_class,
                self.requested_classes,
                self.bad,
                task=self.task,
                defect_class=self.defect_class,
                synthetic_fraction=self.synthetic_fraction,
                allow_synthetic_only_classes=self.allow_synthetic_only_classes,
                recorded_split=self.recorded_split,
                real_fraction=self.real_fraction,
            )
            if self.auto_size:
                self.input_hw = auto_size_hw(
                    self._train_aspects(), self.pixel_budget, self.size_multiple
                )
                log.info("data.img_size=auto: input %s (height x width)", self.input_hw)
        return self.index

    def _train_aspects(self, limit: int = 256) -> list[float]:
        """Height / width of (up to `limit`, evenly spaced) real training images, from headers."""
        from PIL import Image

        paths = [
            r.path
            for name, records in self.index.records.items()
            if not self.sources[name].synthetic and not is_derived(self.sources[name])
            for r in records
            if self.index.split_of_item.get(r.item_id) == "train"
        ]
        step = max(1, len(paths) // limit)
        aspects = []
        for path in paths[::step]:
            try:
                with Image.open(path) as image:
                    aspects.append(image.height / image.width)
            except (OSError, ValueError):  # a bad file is reported when decoded; skip it here
                continue
        return aspects

    @property
    def records(self) -> dict[str, list[Record]]:
        """Every scanned record, by source."""
        return self.prepare().records

    @property
    def split_of_item(self) -> dict[str, str]:
        """item_id -> "train" | "val" | "test"."""
        return self.prepare().split_of_item

    @property
    def classes(self) -> list[str]:
        return self.prepare().classes

    @property
    def bad_images(self) -> list[dict[str, object]]:
        """One entry per image left out (see `data.bad_images`)."""
        return self.bad.entries

    @property
    def mix_weights(self) -> dict[str, float]:
        """Effective weight of each source: `synthetic_fraction` splits real vs synthetic share."""
        return mix_weights(self.sources, self.synthetic_fraction)

    # ------------------------------------------------------------------------------- decoding
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        index = self.prepare()
        self.records_of_split = index.records_of_splits(self.mix_weights, self.eval_sources)
        if not self.records_of_split["train"]:
            raise DataError("no training images: check data.sources and data.split.")
        for split in SPLITS:
            self.datasets[split], self.records_of_split[split] = decode_split(
                self.records_of_split[split],
                lambda record, split=split: self._load_or_skip(record, split),
                self.classes,
                list(self.sources),
                self.input_hw,
                keep_masks=split != "train" or self.train_masks,
                resize=self.resize,
                good_class=self.good_class,
                synthetic_sources=[n for n, src in self.sources.items() if src.synthetic],
                desc=f"decode {split}",
                progress=self.progress,
            )
        if self.output_dir and _is_rank_zero(self):
            index.write_split_csv(Path(self.output_dir) / SPLIT_CSV)
        if self.report_on_setup:
            self.write_report()

    def _load_or_skip(self, record: Record, split: str):
        """Decode one record; a bad file raises (`on_bad_image=error`) or is noted and skipped."""
        try:
            return self.sources[record.source].load(record)
        except ValueError as error:  # BadImageError and friends: named file, clear reason
            self.bad.bad_record(error, record, split)
            return None

    def inspect_unread(self) -> None:
        """Decode (to check, not to keep) the files `setup()` did not read: records of weight-0
        sources and of splits a source is not used in. Derived sources read no files of their own."""
        for source_name, source in self.sources.items():
            if is_derived(source):
                continue
            seen = set(getattr(source, "file_info", {})) | {e["path"] for e in self.bad_images}
            for record in self.records.get(source_name, []):
                if record.path not in seen:
                    self._load_or_skip(record, self.split_of_item.get(record.item_id, "unused"))
                    seen.add(record.path)

    def probe_pool(self, split: str, synthetic: bool) -> ProbePool | None:
        """The cached real (or synthetic) images of `split`, for probes; None before `setup()`."""
        dataset = self.datasets.get(split)
        if dataset is None:
            return None
        records = self.records_of_split.get(split)
        return probe_pool(dataset, records, self.sources, synthetic, split, self.resize)

    def write_report(self) -> dict[str, object]:
        """Build the data report; on rank 0 write data_report.json, log the problems loudly and
        add a text summary to TensorBoard (when the trainer has a TensorBoard logger)."""
        self.report = build_report(self)
        if not _is_rank_zero(self):
            return self.report
        log.info("data: task %s; %s", self.task.value, self.report["balance"]["reason"])
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

    # ------------------------------------------------------------------------------ loaders
    @property
    def samples_per_epoch(self) -> int:
        """`data.samples_per_epoch` (default: the real training images), longer in add mode."""
        real = [r for r in self.records_of_split["train"] if not self.sources[r.source].synthetic]
        base = self.requested_samples_per_epoch or len(real) or len(self.records_of_split["train"])
        return epoch_length(int(base), self.synthetic_fraction, self.mix_mode)

    @property
    def real_train_counts(self) -> dict[str, int]:
        """Training images per class, real sources only (what balance decisions look at); known
        after `prepare()`, before any decoding."""
        index = self.prepare()
        train = [
            r
            for name, records in index.records.items()
            if not self.sources[name].synthetic
            for r in records
            if index.split_of_item.get(r.item_id) == "train"
        ]
        counts = label_counts(train)
        return {c: counts.get(c, 0) for c in self.classes}

    @property
    def balance(self) -> tuple[Balance, str]:
        """The class balance in force after `setup()` and the reason (`data.balance`)."""
        return resolve_balance(self.balance_requested, self.real_train_counts, self.imbalance_ratio)

    def loss_balance(self) -> dict[str, list[float]]:
        """`{"class_weights": [...]}` (inverse class frequency) for the model when `data.balance`
        resolves to `loss`, else {}."""
        if self.balance[0] is not Balance.LOSS:
            return {}
        return {"class_weights": inverse_frequency_weights(self.classes, self.real_train_counts)}

    def train_sampler(self) -> MixSampler:
        indices: dict[str, list[int]] = {n: [] for n in self.sources}
        for i, record in enumerate(self.records_of_split["train"]):
            indices[record.source].append(i)
        labels = None
        if self.balance[0] is Balance.SAMPLER:
            labels = dict(enumerate(self.datasets["train"].labels.tolist()))
        return MixSampler(
            indices, self.mix_weights, self.samples_per_epoch, seed=self.seed, label_of_index=labels
        )

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Batched augmentation of training batches (per-image parameters, on the device)."""
        trainer = getattr(self, "trainer", None)
        if self.batch_augment is not None and trainer is not None and trainer.training:
            if "mask" in batch:
                batch["image"], batch["mask"] = self.batch_augment(batch["image"], batch["mask"])
            else:
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
            "task": self.task.value,
            "balance": self.balance[0].value,
            **({"split_changes": self.index.split_changes} if self.index.split_changes else {}),
        }


def _is_rank_zero(datamodule: L.LightningDataModule) -> bool:
    trainer = getattr(datamodule, "trainer", None)
    if trainer is None:  # before a trainer is attached: the rank Lightning read from the env
        return getattr(rank_zero_only, "rank", 0) == 0
    return trainer.is_global_zero

"""Training throughput of the project pipeline against a plain PyTorch loop, interleaved in one fit.

`run_throughput` runs the project's own `train(cfg)` on the default config (datamodule,
augmentation, `ViTClassifier`, default callbacks and logger) for 1 warm-up + 1 profiled + N
measured epochs, with two additions put into that config:

- `BenchTimer`, the first callback. At the start of every measured epoch it first runs one epoch
  of the plain loop on the same model config, batch size and batches (timed on its own), then
  starts the pipeline epoch's clock, which stops at the start of the next epoch (or at the end
  of training). Validation is timed and subtracted, so a pipeline epoch is its training steps
  plus all its epoch-end work (checkpoints, curves, metrics, loggers). It also times the gap
  between one step's end and the next step's start.
- `HookTimer` as `trainer.profiler`: the seconds of every action Lightning profiles (each
  callback hook, the dataloader's `next`, training_step, optimizer_step...), per epoch.

The plain loop: uint8 batch -> the model's `normalize` -> forward -> cross-entropy -> backward ->
AdamW step; nothing else. Pipeline and plain epochs alternate (plain, pipeline, plain, ...), so a
change of load on a shared machine hits both alike; each measured epoch is one pair.
"""

from __future__ import annotations

import cProfile
import io
import math
import pstats
import re
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.profilers import Profiler
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig, OmegaConf, open_dict

from anomaly_vit.bench.flops import matmul_flops_per_second, training_step_flops
from anomaly_vit.bench.report import median, safe_ratio

_SESSIONS: dict[str, ThroughputSession] = {}  # the running measurement, found by its key
FETCH_ACTION = "[_TrainingEpochLoop].train_dataloader_next"
OWN_NAME = "BenchTimer"  # the bench's own hooks are left out of the action times
VALIDATION_PREFIX = "(validation) "
# an epoch slower than this factor x the fastest of its kind was disturbed by other work
NOISY_SPREAD = 1.25


@dataclass
class EpochTiming:
    """One epoch of the pipeline fit (perf_counter seconds) and the plain epoch run before it."""

    epoch: int  # 0-based epoch of this fit
    global_epoch: int
    role: str  # warmup, profile or measure
    start: float
    end: float = math.nan
    validation_seconds: float = 0.0
    images: int = 0
    steps: int = 0
    gap_seconds: float = 0.0  # from one step's end (or the epoch's start) to the next step's start
    plain_seconds: float = math.nan
    plain_images: int = 0
    actions: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def train_seconds(self) -> float:
        """The epoch without its validation: steps, data, epoch-end work."""
        return self.end - self.start - self.validation_seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "global_epoch": self.global_epoch, "role": self.role,
            "train_seconds": self.train_seconds, "validation_seconds": self.validation_seconds,
            "images": self.images, "steps": self.steps, "gap_seconds": self.gap_seconds,
            "fetch_seconds": self.actions.get(FETCH_ACTION, 0.0),
            "data_seconds": data_seconds(self.actions),
            "plain_seconds": self.plain_seconds, "plain_images": self.plain_images,
        }  # fmt: skip


class PlainLoop:
    """The reference: the same model config, batches and optimizer family, no framework."""

    def __init__(
        self,
        module: torch.nn.Module,
        batches: list[tuple[torch.Tensor, torch.Tensor]],
        lr: float,
        weight_decay: float,
        label_smoothing: float = 0.0,
    ) -> None:
        self.module = module.train()
        self.batches = batches
        self.label_smoothing = float(label_smoothing)
        self.optimizer = torch.optim.AdamW(
            module.net.parameters(), lr=lr, weight_decay=weight_decay
        )

    @property
    def images_per_epoch(self) -> int:
        return sum(len(labels) for _, labels in self.batches)

    def step(self, images_u8: torch.Tensor, labels: torch.Tensor) -> None:
        logits = self.module.net(self.module.normalize(images_u8))
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def run(self, steps: int | None = None) -> float:
        """Run `steps` batches (default: one epoch); return the seconds it took."""
        batches = (
            self.batches
            if steps is None
            else [self.batches[i % len(self.batches)] for i in range(steps)]
        )
        start = time.perf_counter()
        for images, labels in batches:
            self.step(images, labels)
        return time.perf_counter() - start


def plain_batches(datamodule: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of training batches as the pipeline draws them (its sampler, its batch size),
    gathered up front from the decoded uint8 images, without augmentation."""
    dataset = datamodule.datasets["train"]
    order = list(datamodule.train_sampler())
    size = int(datamodule.batch_size)
    chunks = [order[i : i + size] for i in range(0, len(order), size)]
    return [
        (dataset.images_nchw[chunk].contiguous(), dataset.labels[chunk].clone()) for chunk in chunks
    ]


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict):
        batch = batch.get("label", next(iter(batch.values())))
    if isinstance(batch, list | tuple):
        batch = batch[0]
    return len(batch)


@dataclass
class ThroughputSession:
    """Settings and results of one interleaved measurement (see the module doc)."""

    measured_epochs: int = 5
    profile_epoch: bool = True
    profile_top: int = 15
    plain_warmup_steps: int = 2
    extra_rollout_dumps: int = 0
    matmul_size: int = 2048
    cfg: DictConfig | None = None
    epochs: list[EpochTiming] = field(default_factory=list)
    current: EpochTiming | None = None
    plain: PlainLoop | None = None
    profiler: cProfile.Profile | None = None
    profile_text: str = ""
    flops_per_image: float = math.nan
    peak_flops: list[float] = field(default_factory=list)
    rollouts: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    _val_start: float = math.nan
    _last_step_end: float = math.nan

    @property
    def max_epochs(self) -> int:
        return 1 + int(self.profile_epoch) + int(self.measured_epochs)

    def role(self, epoch: int) -> str:
        if epoch == 0:
            return "warmup"
        if self.profile_epoch and epoch == 1:
            return "profile"
        return "measure"

    @property
    def measured(self) -> list[EpochTiming]:
        return [e for e in self.epochs if e.role == "measure"]

    # ----------------------------------------------------------------------- from the hooks
    def begin(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Build the plain loop (same model config, batches of the pipeline's sampler), count
        the model FLOPs of a training step, warm the plain loop up."""
        datamodule = trainer.datamodule
        batches = plain_batches(datamodule)
        module = hydra.utils.instantiate(
            self.cfg.model, classes=list(pl_module.classes), _convert_="all"
        )
        optimizer = dict(self.cfg.model.get("optimizer") or {})
        self.plain = PlainLoop(
            module,
            batches,
            lr=float(optimizer.get("lr", 1e-3)),
            weight_decay=float(optimizer.get("weight_decay", 0.0)),
            label_smoothing=float(self.cfg.model.get("label_smoothing", 0.0) or 0.0),
        )
        images, labels = batches[0]
        self.flops_per_image = training_step_flops(
            module.net, images, labels, module.normalize
        ) / len(labels)
        self.plain.run(self.plain_warmup_steps)
        self.data = {
            "batch_size": int(datamodule.batch_size),
            "num_workers": int(datamodule.num_workers),
            "samples_per_epoch": int(datamodule.samples_per_epoch),
            "steps_per_epoch": len(batches),
            "augmentation": repr(datamodule.batch_augment),
            "torch_threads": torch.get_num_threads(),
        }

    def epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close(time.perf_counter())
        epoch = int(trainer.current_epoch)
        role = self.role(epoch)
        plain_seconds = math.nan
        if role == "measure":
            self.peak_flops += matmul_flops_per_second(self.matmul_size, repeats=1, warmup=1)
            plain_seconds = self.plain.run()
        if role == "profile":
            self.profiler = cProfile.Profile()
            self.profiler.enable()
        self.current = EpochTiming(
            epoch,
            int(getattr(pl_module, "global_epoch", epoch + 1)),
            role,
            start=time.perf_counter(),
            plain_seconds=plain_seconds,
            plain_images=self.plain.images_per_epoch if role == "measure" else 0,
        )
        self._last_step_end = self.current.start

    def _close(self, now: float) -> None:
        if self.current is None:
            return
        if self.profiler is not None:
            self.profiler.disable()
            self.profile_text = profile_summary(self.profiler, self.profile_top)
            self.profiler = None
        self.current.end = now
        self.epochs.append(self.current)
        self.current = None

    def step_start(self, batch: Any) -> None:
        if self.current is not None:
            self.current.gap_seconds += time.perf_counter() - self._last_step_end
            self.current.steps += 1
            self.current.images += _batch_size(batch)

    def step_end(self) -> None:
        self._last_step_end = time.perf_counter()

    def validation_start(self) -> None:
        self._val_start = time.perf_counter()

    def validation_end(self) -> None:
        if self.current is not None and math.isfinite(self._val_start):
            self.current.validation_seconds += time.perf_counter() - self._val_start
        self._val_start = math.nan

    def add_action(self, name: str, seconds: float) -> None:
        if self.current is None or OWN_NAME in name:
            return
        name = re.sub(r"\{.*\}", "", name)  # a checkpoint callback's state key holds its settings
        if math.isfinite(self._val_start) or "_EvaluationLoop" in name:
            name = VALIDATION_PREFIX + name  # inside validation: not part of the pipeline epoch
        self.current.actions[name] += seconds

    def end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close(time.perf_counter())
        self.rollouts = time_rollout_dumps(trainer, pl_module, self.extra_rollout_dumps)

    # ---------------------------------------------------------------------------- results
    def summary(self) -> dict[str, Any]:
        """Medians over the measured epochs (see `summarize`)."""
        return summarize(self.measured, self.flops_per_image)


def undisturbed(measured: list[EpochTiming]) -> list[EpochTiming]:
    """The pairs whose pipeline epoch AND plain epoch both ran within `NOISY_SPREAD` of the
    fastest epoch of their kind. Another process on a shared machine only ever adds time, and
    it hits one epoch of a pair, not both: such a pair says how busy the machine was, not how
    fast the pipeline is."""
    fastest_pipe = min((e.train_seconds for e in measured if e.train_seconds > 0), default=math.nan)
    fastest_plain = min(
        (e.plain_seconds for e in measured if e.plain_seconds > 0), default=math.nan
    )
    return [e for e in measured
            if 0 < e.train_seconds <= NOISY_SPREAD * fastest_pipe
            and 0 < e.plain_seconds <= NOISY_SPREAD * fastest_plain]  # fmt: skip


def summarize(measured: list[EpochTiming], flops_per_image: float) -> dict[str, Any]:
    """Throughputs, ratios and shares as medians over the undisturbed pairs of epochs (over all
    measured epochs when none is); the all-epochs ratios are kept beside them."""
    clean = undisturbed(measured)
    used = clean or measured

    def rates(epochs: list[EpochTiming]) -> tuple[list[float], list[float], list[float]]:
        pipe = [e.images / e.train_seconds for e in epochs if e.train_seconds > 0]
        plain = [e.plain_images / e.plain_seconds for e in epochs if e.plain_seconds > 0]
        paired = [
            safe_ratio(e.images / e.train_seconds, e.plain_images / e.plain_seconds)
            for e in epochs
            if e.train_seconds > 0 and e.plain_seconds > 0
        ]
        return pipe, plain, paired

    pipe, plain, paired = rates(used)
    all_pipe, all_plain, all_paired = rates(measured)
    epoch_end = [
        sum(v for k, v in e.actions.items() if k.endswith(".on_train_epoch_end")) for e in used
    ]
    return {
        "pipeline_img_per_s": median(pipe),
        "plain_img_per_s": median(plain),
        "ratio_paired_median": median(paired),
        "ratio_of_medians": safe_ratio(median(pipe), median(plain)),
        "pairs_used": len(used),
        "pairs_measured": len(measured),
        "noisy": len(clean) < min(2, len(measured)),
        "paired_ratios": all_paired,
        "undisturbed": [e.global_epoch for e in clean],
        "ratio_paired_median_all": median(all_paired),
        # noise on a shared machine only ever adds time: the fastest epochs are the least disturbed
        "ratio_of_best": safe_ratio(max(all_pipe, default=math.nan), max(all_plain, default=math.nan)),
        "pipeline_epoch_seconds": median(e.train_seconds for e in used),
        "plain_epoch_seconds": median(e.plain_seconds for e in used),
        "validation_seconds": median(e.validation_seconds for e in used),
        "fetch_share": median(safe_ratio(data_seconds(e.actions), e.train_seconds) for e in used),
        "gap_share": median(safe_ratio(e.gap_seconds, e.train_seconds) for e in used),
        "epoch_end_seconds": median(epoch_end),
        "pipeline_flops_per_s": median(p * flops_per_image for p in pipe),
        "plain_flops_per_s": median(p * flops_per_image for p in plain),
    }  # fmt: skip


def data_seconds(actions: dict[str, float]) -> float:
    """Seconds of getting batches ready: the dataloader's `next` (decoding, per-image
    transforms) plus moving the batch to the device with its hooks (`on_after_batch_transfer`
    holds batched augmentation). `batch_to_device` holds the transfer hooks, so they are
    counted on their own only when it was not profiled."""
    transfer = [
        v
        for k, v in actions.items()
        if k.endswith(".batch_to_device") and k.startswith("[Strategy]")
    ]
    if not transfer:
        transfer = [
            v
            for k, v in actions.items()
            if k.endswith(("batch_transfer", ".transfer_batch_to_device"))
        ]
    return actions.get(FETCH_ACTION, 0.0) + sum(transfer)


def action_table(
    measured: list[EpochTiming], top: int = 15, validation: bool = False
) -> list[tuple[str, float, float]]:
    """(action, median seconds per epoch, share of the median pipeline epoch), largest first:
    the actions of the pipeline epoch, or with `validation` those of validation (which is not
    part of it). The whole-epoch and whole-batch actions are left out (they hold the others)."""
    names = {
        name
        for e in measured
        for name in e.actions
        if name.startswith(VALIDATION_PREFIX) == validation
    }
    names -= {"run_training_epoch", "run_training_batch"}
    epoch_seconds = median(e.train_seconds for e in measured)
    rows = [(name, median(e.actions.get(name, 0.0) for e in measured)) for name in names]
    rows.sort(key=lambda row: -row[1])
    return [
        (name.removeprefix(VALIDATION_PREFIX), seconds, safe_ratio(seconds, epoch_seconds))
        for name, seconds in rows[:top]
    ]


def profile_summary(profiler: cProfile.Profile, top: int) -> str:
    """cProfile's top functions by cumulative and by own time (directories stripped)."""
    text = []
    for key in ("cumulative", "tottime"):
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats(key)
        stats.print_stats(top)
        body = stream.getvalue()
        start = body.find("   ncalls")
        text.append(
            f"sorted by {key} time, top {top}:\n" + (body[start:] if start >= 0 else body).rstrip()
        )
    return "\n\n".join(text)


def time_rollout_dumps(
    trainer: L.Trainer, pl_module: L.LightningModule, extra: int
) -> dict[str, Any]:
    """The rollout callback's dumps of this fit (training waited `dump_seconds`; the grid was drawn
    in `render_seconds`, in the background or not), plus `extra` dumps timed now."""
    from anomaly_vit.callbacks.rollouts import RolloutDumper

    dumpers = [cb for cb in trainer.callbacks if isinstance(cb, RolloutDumper)]
    if not dumpers or dumpers[0].probes is None:
        return {}
    dumper = dumpers[0]
    dumper.wait_for_drawings()
    fit_dumps, fit_renders = dict(dumper.dump_seconds), dict(dumper.render_seconds)
    dumps, renders = list(fit_dumps.values()), list(fit_renders.values())
    was_training = pl_module.training
    for _ in range(int(extra)):
        pl_module.eval()
        try:
            scalars = dumper.dump(trainer, pl_module)
        finally:
            pl_module.train(was_training)
        dumper.wait_for_drawings()
        dumps.append(float(scalars["attn/dump_seconds"]))
        renders.append(float(dumper.render_seconds.get(int(pl_module.global_epoch), math.nan)))
    # timing.json (written after this) keeps the fit's own dumps
    dumper.dump_seconds, dumper.render_seconds = fit_dumps, fit_renders
    return {
        "every_n_epochs": int(dumper.every_n_epochs),
        "render_in_background": bool(dumper.render_in_background),
        "dump_epochs": sorted(fit_dumps),
        "dump_seconds": dumps,
        "render_seconds": renders,
        "probes": len(dumper.probes),
        "kinds": list(dumper.kinds),
    }


# ------------------------------------------------------------------------ Lightning parts
class BenchTimer(L.Callback):
    """Clocks, the plain-loop epochs and the profiled epoch of a `ThroughputSession`."""

    def __init__(self, session: str) -> None:
        self.session = _SESSIONS[session]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.session.begin(trainer, pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.session.epoch_start(trainer, pl_module)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.session.step_start(batch)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.session.step_end()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self.session.validation_start()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self.session.validation_end()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.session.end(trainer, pl_module)


class HookTimer(Profiler):
    """A Lightning profiler that only sums seconds per action into the session's current epoch."""

    def __init__(self, session: str) -> None:
        super().__init__()
        self.session = _SESSIONS[session]
        self._starts: dict[str, float] = {}

    def start(self, action_name: str) -> None:
        self._starts[action_name] = time.perf_counter()

    def stop(self, action_name: str) -> None:
        start = self._starts.pop(action_name, None)
        if start is not None:
            self.session.add_action(action_name, time.perf_counter() - start)

    def summary(self) -> str:
        return ""


def run_throughput(
    train_overrides: list[str], run_dir: Path, session: ThroughputSession
) -> ThroughputSession:
    """Run the pipeline fit with the bench's timer and profiler put into the default config."""
    from anomaly_vit.bench.settings import compose_train_config
    from anomaly_vit.train import train

    overrides = [*train_overrides, f"trainer.max_epochs={session.max_epochs}", "test=false"]
    cfg = compose_train_config(overrides, run_dir)
    key = uuid.uuid4().hex
    _SESSIONS[key] = session
    timer = {"_target_": f"{__name__}.BenchTimer", "session": key}
    with open_dict(cfg):
        callbacks = OmegaConf.to_container(cfg.get("callbacks") or {}, resolve=False)
        cfg.callbacks = {"bench_timer": timer, **callbacks}
        cfg.trainer.profiler = {"_target_": f"{__name__}.HookTimer", "session": key}
    session.cfg = cfg
    try:
        train(cfg)
    finally:
        _SESSIONS.pop(key, None)
    return session

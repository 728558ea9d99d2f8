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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from lightning.pytorch.profilers import Profiler
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig, OmegaConf, open_dict

from anomaly_vit.bench.epochs import VALIDATION_PREFIX, EpochTiming, summarize
from anomaly_vit.bench.flops import matmul_flops_per_second, training_step_flops
from anomaly_vit.bench.plain_loop import PlainLoop, plain_batches

_SESSIONS: dict[str, ThroughputSession] = {}  # the running measurement, found by its key
OWN_NAME = "BenchTimer"  # the bench's own hooks are left out of the action times


def _batch_size(batch: Any) -> int:
    """Images in a batch (a dict with `label`, a tuple, or a tensor)."""
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
    from anomaly_vit.callbacks.maps import PREFIX, MapDumper
    from anomaly_vit.maps.scorer import SplitScorer

    dumpers = [cb for cb in trainer.callbacks if isinstance(cb, MapDumper)]
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
        dumps.append(float(scalars[f"{PREFIX}/dump_seconds"]))
        renders.append(float(dumper.render_seconds.get(int(pl_module.global_epoch), math.nan)))
    score_seconds = list(dumper.score_seconds.values())  # the fit's and the extra dumps'
    scorer = dumper.split_scorer or SplitScorer(
        "val", dumper.kinds, tolerance_px=dumper.scorer.tolerance_px, seed=dumper.seed
    )
    if not score_seconds:  # score_split is off: time one scoring of the validation split now
        pl_module.eval()
        try:
            score_seconds = [scorer(pl_module, trainer.datamodule)["seconds"]]
        finally:
            pl_module.train(was_training)
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
        "score_split": dumper.split_scorer.split if dumper.split_scorer else None,
        "scored_split": scorer.split,
        "score_seconds": score_seconds,
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
    from anomaly_vit.compose import compose
    from anomaly_vit.train import train

    overrides = [*train_overrides, f"trainer.max_epochs={session.max_epochs}", "test=false"]
    cfg = compose("train", overrides, output_dir=run_dir)
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

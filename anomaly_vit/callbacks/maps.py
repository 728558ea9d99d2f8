"""`MapDumper` (`callbacks.maps`): maps of fixed validation probes every N epochs (PNG, npz, TB, metrics).

Thin: probes, maps and scores come from `anomaly_vit.maps` (its ONE scorer, `maps.scorer`),
pictures from `anomaly_vit.viz`, the files' names and writers from `anomaly_vit.rundir`.

- Probes: `probes_per_class` images per class from the REAL validation split with their masks
  (defective ones with a non-empty mask first), picked once at fit start by a seeded shuffle
  (`maps.probes.select_probes`); with `include_synthetic` the same number per class from the
  synthetic training sources too.
- Kinds: `kinds` from the config (conf/callbacks/default.yaml), plus a token head's own map
  (`maps.kinds.kinds_for`).
- When: at the end-of-epoch validation of every global epoch divisible by `every_n_epochs` and of
  the last epoch (`trainer.max_epochs`); never in the sanity check. Files are numbered by the
  GLOBAL epoch: `rollouts/epoch_XXXX.png` (the probe grid) and `epoch_XXXX.npz` (raw maps, probe
  images, labels, masks, predictions, probabilities).
- Scores: the real probes' maps and the baselines scored against their masks (`MapScorer`),
  logged as `maps/<map>/<score>` (maps, `baseline_random`, `baseline_centre`) through the
  `EpochMetricsWriter` into metrics.csv and the loggers, on the same row as the epoch's other
  metrics; the grid goes to TensorBoard as the image `maps/probes`, each panel labelled with its
  `peak_share` (the share of the map in its top 5 % of pixels).
- Whole split (`score_split`, e.g. "val"; null: off): the same scores on EVERY defective real
  image with a mask of that split (`maps.scorer.SplitScorer`), logged as
  `maps_<split>/<map>/<score>` with `maps_<split>/n_scored`, `maps_<split>/n_misclassified` and
  its cost `maps/score_seconds` (part of `maps/dump_seconds`).
- Cost: the maps, scores and npz are computed while training waits (`maps/dump_seconds`); the
  grid is drawn by one background thread (`render_in_background`; matplotlib takes ~1-2 s for
  8 probes x 4 panels on a CPU), which training only waits for at its end.
- At the end of training: `rollouts/evolution.png` (the probes across every dump, read back from
  the npz files) and `rollouts/timing.json` (seconds per dump, drawing seconds, training seconds
  and the dumps' share of them).

Only rank 0 computes and writes; no collective operation runs here, so other ranks never wait.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn

from anomaly_vit.callbacks.metrics_writer import EpochMetricsWriter
from anomaly_vit.maps.kinds import Explanation
from anomaly_vit.maps.probes import Probes, dump_arrays, select_probes
from anomaly_vit.maps.rollout import HeadFusion
from anomaly_vit.maps.scorer import MapScorer, ScoreTable, SplitScorer, tensorboard_metrics
from anomaly_vit.maps.scores import (
    CENTRE_BASELINE,
    PEAK_LABEL,
    PEAK_PIXELS,
    RANDOM_BASELINE,
    peak_share,
)
from anomaly_vit.rundir import (
    EVOLUTION_PNG,
    ROLLOUT_PATTERN,
    ROLLOUTS_DIR,
    TIMING_JSON,
    read_dumps,
    rollout_file,
    write_dump,
    write_json,
)
from anomaly_vit.viz.evolution import evolution_from_dumps
from anomaly_vit.viz.overlays import figure_to_array, probe_grid_figure, save_png

log = logging.getLogger(__name__)

KEY = "callbacks.maps"
PREFIX = "maps"  # the metrics' prefix: maps/<kind>/<score>, maps_<split>/...


def is_due(global_epoch: int, every_n_epochs: int, is_last: bool) -> bool:
    """Dump at global epochs N, 2N, ... and at the last epoch."""
    return is_last or global_epoch % every_n_epochs == 0


class MapDumper(L.Callback):
    """Dump the maps of a fixed probe set every `every_n_epochs` (see the module doc); `kinds`
    come from the config (`callbacks.maps.kinds`)."""

    def __init__(
        self,
        kinds: Sequence[str],
        every_n_epochs: int = 10,
        probes_per_class: int = 2,
        include_synthetic: bool = False,
        tolerance_px: int | None = None,
        patch_positive_share: float = 0.1,
        head_fusion: str = HeadFusion.MEAN,
        discard_ratio: float = 0.0,
        evolution_kind: str | None = None,
        evolution_max_columns: int = 12,
        panel_in: float = 2.0,
        dpi: int = 100,
        render_in_background: bool = True,
        score_split: str | None = None,
        score_batch_size: int = 32,
        dirname: str = ROLLOUTS_DIR,
        seed: int = 0,
    ) -> None:
        for key, value in (
            ("every_n_epochs", every_n_epochs),
            ("probes_per_class", probes_per_class),
            ("evolution_max_columns", evolution_max_columns),
        ):
            if int(value) < 1:
                raise ValueError(f"{KEY}.{key} must be >= 1, got {value}.")
        self.scorer = MapScorer(
            kinds, tolerance_px, patch_positive_share, head_fusion, discard_ratio, seed, key=KEY
        )
        self.kinds = list(self.scorer.kinds)  # as configured; `scorer.kinds_for`: for the model
        self.evolution_kind = evolution_kind or self.kinds[0]
        if self.evolution_kind not in self.kinds:
            raise ValueError(
                f"{KEY}.evolution_kind={evolution_kind!r} is not among {KEY}.kinds={self.kinds}."
            )
        self.every_n_epochs = int(every_n_epochs)
        self.probes_per_class = int(probes_per_class)
        self.include_synthetic = bool(include_synthetic)
        self.evolution_max_columns = int(evolution_max_columns)
        self.panel_in = float(panel_in)
        self.dpi = int(dpi)
        self.dirname = dirname
        self.seed = int(seed)
        self.probes: Probes | None = None
        self.render_in_background = bool(render_in_background)
        self.split_scorer = None  # scores the whole `score_split` at each dump (same kinds)
        if score_split:
            self.split_scorer = SplitScorer(
                score_split,
                self.kinds,
                score_batch_size,
                tolerance_px,
                patch_positive_share,
                head_fusion,
                discard_ratio,
                seed=self.seed,
                key=KEY,
            )
        self.score_seconds: dict[int, float] = {}  # scoring the whole split, part of the dump
        self.dump_seconds: dict[int, float] = {}  # what training waited for, per global epoch
        self.render_seconds: dict[int, float] = {}  # drawing the grid (in the background or not)
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._train_start = 0.0

    # ------------------------------------------------------------------------------- hooks
    def folder(self, trainer: L.Trainer) -> Path:
        return Path(trainer.default_root_dir) / self.dirname

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.kinds = self.scorer.kinds_for(pl_module)  # a token head adds its own map
        if not trainer.is_global_zero:
            return
        self.probes = select_probes(
            trainer.datamodule, self.probes_per_class, self.include_synthetic, self.seed
        )
        if self.probes is None:
            log.warning(
                "map dumps disabled: the datamodule has no cached validation split with masks "
                "(datasets['val'].masks_nhw); %s needs a MixedDataModule.",
                KEY,
            )
        check_every = int(getattr(trainer, "check_val_every_n_epoch", 1) or 1)
        if self.every_n_epochs % check_every:
            log.warning(
                "%s.every_n_epochs=%d is not a multiple of trainer.check_val_every_n_epoch=%d: "
                "dumps happen only at epochs that validate.",
                KEY,
                self.every_n_epochs,
                check_every,
            )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._train_start = time.perf_counter()
        if trainer.is_global_zero:
            self._drop_stale(trainer, pl_module.global_epoch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking:
            return
        if not trainer.is_global_zero or self.probes is None:
            return
        if not getattr(trainer.fit_loop.epoch_loop.batch_progress, "is_last_batch", True):
            return  # a mid-epoch validation (val_check_interval < 1): wait for the epoch's end
        max_epochs = trainer.max_epochs or -1  # -1: no limit
        is_last = 0 < max_epochs <= trainer.current_epoch + 1
        if is_due(pl_module.global_epoch, self.every_n_epochs, is_last):
            self.dump(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or self.probes is None:
            return
        self.wait_for_drawings()
        train_seconds = time.perf_counter() - self._train_start
        self.write_evolution(trainer)
        total = sum(self.dump_seconds.values())
        write_json(
            self.folder(trainer) / TIMING_JSON,
            {
                "dumps": len(self.dump_seconds),
                "dump_seconds": {str(k): v for k, v in self.dump_seconds.items()},
                "render_seconds": {str(k): v for k, v in self.render_seconds.items()},
                "render_in_background": self.render_in_background,
                "score_split": self.split_scorer.split if self.split_scorer else None,
                "score_seconds": {str(k): v for k, v in self.score_seconds.items()},
                "dump_seconds_total": total,
                "train_seconds": train_seconds,
                "dump_share": total / train_seconds if train_seconds > 0 else None,
            },
        )

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.wait_for_drawings()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.wait_for_drawings()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # -------------------------------------------------------------------------------- dump
    def dump(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Compute maps and scores, write the npz, hand the scalars to the metrics writer; draw
        the probe grid (PNG + TensorBoard) in the background when `render_in_background`."""
        start = time.perf_counter()
        epoch = int(pl_module.global_epoch)
        explanation = self.scorer.predict(pl_module, self.probes.images.to(pl_module.device))
        scalars = self._scores(pl_module, explanation.maps)
        if self.split_scorer is not None:
            scalars |= self._split_scores(trainer, pl_module, epoch)
        folder = self.folder(trainer)
        arrays = dump_arrays(epoch, self.kinds, pl_module.classes, self.probes, explanation)
        write_dump(folder / rollout_file(epoch, "npz"), arrays)
        job = functools.partial(
            self._draw_grid, trainer, list(pl_module.classes), explanation, epoch, scalars.copy()
        )
        if self.render_in_background:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maps")
            self._pending.append(self._executor.submit(job))
        else:
            job()
        seconds = time.perf_counter() - start
        self.dump_seconds[epoch] = seconds
        scalars[f"{PREFIX}/dump_seconds"] = seconds
        self._hand_over(trainer, scalars, epoch)
        log.info("maps: epoch %d computed in %.2f s", epoch, seconds)
        return scalars

    def _draw_grid(
        self,
        trainer: L.Trainer,
        classes: list[str],
        explanation: Explanation,
        epoch: int,
        scalars: dict[str, float],
    ) -> None:
        start = time.perf_counter()
        grid = self._render(self._grid_figure(classes, explanation, epoch, scalars))
        save_png(grid, self.folder(trainer) / rollout_file(epoch, "png"))
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(
                    f"{PREFIX}/probes", grid, global_step=epoch, dataformats="HWC"
                )
        self.render_seconds[epoch] = time.perf_counter() - start

    def wait_for_drawings(self) -> None:
        """Finish the probe grids still being drawn in the background; log any that failed."""
        pending, self._pending = self._pending, []
        for future in pending:
            try:
                future.result()
            except Exception:  # a failed picture must not end the training
                log.exception("maps: drawing a probe grid failed")

    def _render(self, figure) -> np.ndarray:
        figure.set_dpi(self.dpi)
        return figure_to_array(figure)

    def _scores(
        self, pl_module: L.LightningModule, maps: dict[str, torch.Tensor]
    ) -> dict[str, float]:
        """The real probes' scores, averaged over those with a defect mask."""
        real = ~self.probes.synthetic
        masks = self.probes.masks[real]
        per_image = self.scorer.score_images(
            pl_module, {kind: maps_bhw[real] for kind, maps_bhw in maps.items()}, masks, self.seed
        )
        table = ScoreTable(list(maps))
        table.add(per_image, None, keep_b=masks.flatten(1).any(dim=1))
        scalars = {
            f"{PREFIX}/{kind}/{name}": value
            for kind, values in table.means().items()
            for name, value in values.items()
        }
        scalars[f"{PREFIX}/n_defect_probes"] = float(table.n_images)
        return scalars

    def _split_scores(
        self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int
    ) -> dict[str, float]:
        block = self.split_scorer(pl_module, trainer.datamodule)
        if block is None:
            return {}
        self.score_seconds[epoch] = block["seconds"]
        scalars = tensorboard_metrics(block, prefix=f"{PREFIX}_{self.split_scorer.split}")
        return scalars | {f"{PREFIX}/score_seconds": block["seconds"]}

    def _grid_figure(
        self, classes: list[str], explanation: Explanation, epoch: int, scalars: dict[str, float]
    ):
        true = [
            classes[int(label)] + (" (synthetic)" if synthetic else "")
            for label, synthetic in zip(self.probes.labels, self.probes.synthetic, strict=True)
        ]
        energy = ", ".join(
            f"{kind.removeprefix('baseline_')} {scalars[f'{PREFIX}/{kind}/energy']:.2f}"
            for kind in (*self.kinds, RANDOM_BASELINE, CENTRE_BASELINE)
        )
        peaks = {kind: peak_share(maps_bhw).tolist() for kind, maps_bhw in explanation.maps.items()}
        return probe_grid_figure(
            self.probes.images,
            explanation.maps,
            masks=self.probes.masks,
            true_labels=true,
            pred_labels=explanation.preds,
            probs=explanation.probs,
            class_names=classes,
            panel_in=self.panel_in,
            title=f"global epoch {epoch}\nshare of the map in the defect mask: {energy}\n"
            f"on each map, {PEAK_LABEL}: its share in its top {PEAK_PIXELS:.0%} of pixels "
            f"({PEAK_PIXELS:.2f}: flat, 1: one spot)",
            panel_scores=peaks,
            panel_score_name=PEAK_LABEL,
        )

    @staticmethod
    def _hand_over(trainer: L.Trainer, scalars: dict[str, float], epoch: int) -> None:
        writers = [cb for cb in trainer.callbacks if isinstance(cb, EpochMetricsWriter)]
        if writers:
            writers[0].add_scalars(scalars)
            return
        finite = {k: v for k, v in scalars.items() if np.isfinite(v)}
        for logger in trainer.loggers:
            logger.log_metrics(finite, step=epoch)

    # ---------------------------------------------------------------------------- the end
    def write_evolution(self, trainer: L.Trainer) -> Path | None:
        """`evolution.png`: the latest probes' `evolution_kind` map at every dump (spread out)."""
        dumps = read_dumps(self.folder(trainer))
        key = f"maps_{self.evolution_kind}"  # the npz array of that kind
        peaks = {
            e: peak_share(torch.from_numpy(d[key])).tolist() for e, d in dumps.items() if key in d
        }
        figure = evolution_from_dumps(
            dumps,
            self.evolution_kind,
            self.evolution_max_columns,
            self.panel_in,
            panel_scores=peaks,
            panel_score_name=PEAK_LABEL,
        )
        if figure is None:
            return None
        array = self._render(figure)
        path = save_png(array, self.folder(trainer) / EVOLUTION_PNG)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(
                    f"{PREFIX}/evolution", array, global_step=max(dumps), dataformats="HWC"
                )
        return path

    def _drop_stale(self, trainer: L.Trainer, first_epoch: int) -> None:
        """Remove dumps numbered from `first_epoch` on, left by an earlier run into this folder."""
        folder = self.folder(trainer)
        if not folder.is_dir():
            return
        for path in folder.iterdir():
            match = ROLLOUT_PATTERN.search(path.name)
            if match and int(match.group(1)) >= first_epoch:
                path.unlink()

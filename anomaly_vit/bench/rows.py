"""The rows of the benchmark table, built from the results of the bench's steps (runner.py)."""

from __future__ import annotations

import math
from typing import Any

from anomaly_vit.bench.epochs import NOISY_SPREAD
from anomaly_vit.bench.real_cv import HEADER
from anomaly_vit.bench.report import Row, median, safe_ratio


class Rows:
    """One `Row` per benchmark; a step that failed or did not run gives a `skipped` row."""

    def __init__(
        self, settings: dict[str, Any], results: dict[str, Any], errors: dict[str, str]
    ) -> None:
        self.settings = settings
        self.results = results
        self.errors = errors

    def all(self) -> list[Row]:
        """The rows of the steps that were asked for (`steps`; all when empty)."""
        builders = [
            ("throughput", self._throughput_row),
            ("throughput", self._data_row),
            ("throughput", self._rollout_row),
            ("throughput", self._split_score_row),
            ("throughput", self._flops_row),
            ("convergence", self._convergence_row),
            ("memory", self._memory_row),
            ("startup", self._startup_row),
            ("deploy", self._deploy_rows),
            ("real_data", self._real_data_rows),
            ("real_cv", self._real_cv_rows),
            ("app_latency", self._app_latency_row),
        ]
        wanted = self.settings.get("steps") or [step for step, _ in builders]
        rows: list[Row] = []
        for step, build in builders:
            if step in wanted:
                built = build()
                rows += built if isinstance(built, list) else [built]
        return rows

    def _real_data_rows(self) -> list[Row]:
        titles = [
            ("7a", "real_data_auroc", "real data: test defect AUROC, ViT recipe vs ResNet-18 peer"),
            ("7b", "real_data_balanced_acc", "real data: test balanced accuracy, ViT vs peer"),
        ]
        if not self.settings["real_data"].get("manifest"):
            note = "give real_data.manifest=PATH (a real defect set's manifest CSV)"
            return [
                Row(n, key, title, None, status="skipped", shown="not run", note=note)
                for n, key, title in titles
            ]
        failed = [self._failed(n, key, title, "real_data") for n, key, title in titles]
        if failed[0]:
            return failed
        result = self.results["real_data"]
        goals = self.settings["real_data"]["targets"]
        rows = []
        for (n, key, title), metric in zip(
            titles, ("test/auroc", "test/balanced_acc"), strict=True
        ):
            vit, peer = result["summary"]["vit"], result["summary"]["peer"]
            (mean, std), (peer_mean, peer_std) = vit[metric], peer[metric]
            seeds = [r["seed"] for r in result["per_seed"]["vit"]]
            rows.append(
                Row(
                    n,
                    key,
                    title,
                    mean,
                    "",
                    target=(">=", float(goals[metric.split("/")[1]])),
                    shown=f"{mean:.3f} ± {std:.3f} vs peer {peer_mean:.3f} ± {peer_std:.3f}",
                    note=(
                        f"seeds {seeds}; per seed ViT "
                        f"{', '.join(f'{r[metric]:.3f}' for r in result['per_seed']['vit'])}, peer "
                        f"{', '.join(f'{r[metric]:.3f}' for r in result['per_seed']['peer'])}; "
                        f"wall a seed: ViT {vit['wall_s'][0] / 60:.1f} min (whole CLI run), peer "
                        f"{peer['wall_s'][0] / 60:.1f} min (capped at the ViT's); "
                        f"{result['manifest']}"
                    ),
                    details=result,
                )  # fmt: skip
            )
        return rows

    def _real_cv_rows(self) -> list[Row]:
        """One row per cv folder: pooled AUROC (value), AP and balanced accuracy with their
        intervals; a ViT row's target is the pooled AUROC of the strongest peer on the same
        folds (the one it is paired with)."""
        title = "cross-validated: pooled defect AUROC over every photo"
        settings = self.settings.get("real_cv") or {}
        if not (settings.get("manifest") or settings.get("cv_dirs")):
            note = "give real_cv.manifest=PATH (run both arms) or real_cv.cv_dirs=[...] (compare)"
            return [Row("8", "real_cv", title, None, status="skipped", shown="not run", note=note)]
        failed = self._failed("8", "real_cv", title, "real_cv")
        if failed:
            return [failed]
        result = self.results["real_cv"]
        auroc_of = {r["dir"]: r["auroc"] for r in result["rows"]}
        rows = []
        for i, r in enumerate(result["rows"]):
            cells = dict(zip(HEADER, r["cells"], strict=True))
            beside = auroc_of[r["minus_peer"]["peer_dir"]] if r["minus_peer"] else None
            rows.append(
                Row(
                    f"8{chr(ord('a') + i)}" if i < 26 else f"8.{i}",
                    f"real_cv_{i}",
                    f"cv {r['data']}, {r['arm']} ({r['model']}): pooled AUROC",
                    r["auroc"],
                    target=(">=", beside) if beside is not None else None,
                    shown=cells["AUROC"],
                    note=(
                        f"{cells['photos (defective)']} photos; AP {cells['AP']}; balanced acc "
                        f"{cells['balanced acc']}; minus the peer (paired) "
                        f"{cells['minus the peer, paired: AUROC; balanced acc']} "
                        f"({cells['peer']}); "
                        f"{cells['wall a fold']} a fold; "
                        f"folds {cells['folds']}; {r['dir']}"
                    ),
                    details=r,
                )
            )
        return rows

    def _app_latency_row(self) -> Row:
        from anomaly_vit.bench.app_latency import latency_row

        app = self.settings["app_latency"]
        wanted = self.settings.get("steps") or ["deploy"]
        if not app.get("bundle") and "deploy" not in wanted:
            return latency_row(None, app["goal_ms"], "give app_latency.bundle=<export dir>")
        failed = self._failed("10a", "app_latency", "operator page latency", "app_latency")
        return failed or latency_row(self.results["app_latency"], app["goal_ms"])

    def _failed(self, number: str, key: str, title: str, step: str) -> Row | None:
        """A `skipped` row when `step` failed or did not run; None when it has results."""
        if step in self.errors:
            reason = self.errors[step].strip().splitlines()[-1]
            return Row(
                number,
                key,
                title,
                None,
                status="skipped",
                shown="failed",
                note=f"{step} failed: {reason}",
            )
        if step not in self.results:
            return Row(
                number,
                key,
                title,
                None,
                status="skipped",
                shown="not run",
                note="not run: the bench was interrupted before it",
            )
        return None

    def _tp(self) -> dict[str, Any]:
        session = self.results.get("throughput")
        return session.summary() if session is not None else {}

    def _throughput_row(self) -> Row:
        title = "training throughput: pipeline / plain loop"
        failed = self._failed("1", "throughput_ratio", title, "throughput")
        if failed:
            return failed
        s, session = self._tp(), self.results["throughput"]
        n = len(session.measured)
        return Row(
            "1", "throughput_ratio", title, s["ratio_paired_median"], "",
            target=(">=", float(self.settings["targets"]["throughput_ratio"])),
            shown=(f"{'noisy: ' if s['noisy'] else ''}{s['ratio_paired_median']:.3f} "
                   f"({s['pipeline_img_per_s']:.1f} vs {s['plain_img_per_s']:.1f} img/s)"),
            note=(f"median over {s['pairs_used']} of {n} paired epochs (a plain-loop epoch, then a train(cfg) "
                  f"epoch, one process; first epoch skipped), the pairs where neither epoch ran over "
                  f"{NOISY_SPREAD}x the fastest of its kind (busy machine); all pairs: "
                  f"{', '.join(f'{r:.2f}' for r in s['paired_ratios'])}"
                  f"{' (too few undisturbed pairs: rerun on a quieter machine)' if s['noisy'] else ''}; "
                  f"pipeline epoch {s['pipeline_epoch_seconds']:.2f} s incl. epoch-end work "
                  f"{s['epoch_end_seconds']:.2f} s, excl. validation {s['validation_seconds']:.2f} s; plain epoch "
                  f"{s['plain_epoch_seconds']:.2f} s; batch {session.data.get('batch_size')}, "
                  f"{session.data.get('steps_per_epoch')} steps/epoch"),
            details={k: v for k, v in s.items()} | {"data": session.data,
                                                   "epochs": [e.as_dict() for e in session.epochs]},
        )  # fmt: skip

    def _data_row(self) -> Row:
        title = "data loading + augmentation share of a step"
        failed = self._failed("2", "data_share", title, "throughput")
        if failed:
            return failed
        s, session = self._tp(), self.results["throughput"]
        return Row(
            "2",
            "data_share",
            title,
            s["fetch_share"],
            "share",
            target=("<=", float(self.settings["targets"]["data_share"])),
            note=(
                f"Lightning's train_dataloader_next + batch_to_device (its on_after_batch_transfer holds the batched augmentation) / pipeline epoch, median of {self._tp()['pairs_used']} "
                f"epochs, data.num_workers={session.data.get('num_workers')}; the whole gap between "
                f"steps (data + loop + callbacks' batch hooks): {100 * s['gap_share']:.1f} %"
            ),
            details={"fetch_share": s["fetch_share"], "gap_share": s["gap_share"]},
        )

    def _rollout_row(self) -> Row:
        title = "rollout dumps share of training time"
        failed = self._failed("3", "rollout_share", title, "throughput")
        if failed:
            return failed
        session = self.results["throughput"]
        info = session.rollouts
        if not info:
            return Row(
                "3",
                "rollout_share",
                title,
                None,
                "share",
                status="skipped",
                note="no map dumps: the config has no MapDumper (callbacks.maps is null)",
            )
        dump_epochs = set(info["dump_epochs"])
        plain_val = [
            e.validation_seconds for e in session.measured if e.global_epoch not in dump_epochs
        ]
        validation = median(plain_val) if plain_val else self._tp()["validation_seconds"]
        epoch_seconds = self._tp()["pipeline_epoch_seconds"] + validation
        every = info["every_n_epochs"]
        dump, render = median(info["dump_seconds"]), median(info["render_seconds"])
        share = safe_ratio(dump, every * epoch_seconds)
        with_render = safe_ratio(
            dump + (render if math.isfinite(render) else 0.0), every * epoch_seconds
        )
        where = "background thread" if info["render_in_background"] else "in the dump"
        return Row(
            "3",
            "rollout_share",
            title,
            share,
            "share",
            target=("<=", float(self.settings["targets"]["rollout_share"])),
            note=(
                f"dump {dump:.2f} s (training waits; median of {len(info['dump_seconds'])}) / "
                f"({every} epochs x {epoch_seconds:.2f} s, validation incl.); drawing the grid "
                f"({where}) {render:.2f} s more: {100 * with_render:.1f} % with it; "
                f"{info['probes']} probes, maps {', '.join(info['kinds'])}"
            ),
            details=info | {"epoch_seconds": epoch_seconds, "share_with_render": with_render},
        )

    def _split_score_row(self) -> Row:
        title = "maps scored on the whole validation split at each dump, share of training"
        failed = self._failed("3b", "split_score_share", title, "throughput")
        if failed:
            return failed
        info = self.results["throughput"].rollouts
        if not info or not info.get("score_seconds"):
            note = "no map dumps: the config has no MapDumper (callbacks.maps is null)"
            return Row("3b", "split_score_share", title, None, "share", status="skipped", note=note)
        seconds = median(info["score_seconds"])
        period = info["every_n_epochs"] * self._rollout_row().details["epoch_seconds"]
        state = f"on (score_split={info['score_split']})" if info["score_split"] else "off"
        return Row(
            "3b",
            "split_score_share",
            title,
            safe_ratio(seconds, period),
            "share",
            target=("<=", float(self.settings["targets"]["split_score_share"])),
            note=(
                f"{seconds:.2f} s to score every defective {info['scored_split']} image with a "
                f"mask (median of {len(info['score_seconds'])}) / ({period:.1f} s of training "
                f"between dumps); callbacks.maps.score_split is {state}: turn it on when "
                "this row passes"
            ),
            details={"score_seconds": info["score_seconds"], "period_seconds": period},
        )

    def _flops_row(self) -> Row:
        title = "training FLOP/s / fp32 matmul peak"
        failed = self._failed("4", "flops_share", title, "throughput")
        if failed:
            return failed
        s, session = self._tp(), self.results["throughput"]
        peaks = [
            *self.results.get("peak_before", []),
            *session.peak_flops,
            *self.results.get("peak_after", []),
        ]
        peak = max(peaks) if peaks else math.nan
        share = safe_ratio(s["pipeline_flops_per_s"], peak)
        size = self.settings["peak"]["matmul_size"]
        return Row(
            "4", "flops_share", title, share, "share",
            shown=f"{100 * share:.1f} % ({s['pipeline_flops_per_s'] / 1e9:.1f} of {peak / 1e9:.1f} GFLOP/s)",
            note=(f"model FLOPs {session.flops_per_image / 1e9:.3f} GFLOP/image per training step "
                  f"(FlopCounterMode, fwd+bwd) x pipeline img/s; peak = best of {len(peaks)} fp32 "
                  f"{size}x{size} matmuls (before, between and after the epochs), "
                  f"{session.data.get('torch_threads')} threads; plain loop: "
                  f"{100 * safe_ratio(s['plain_flops_per_s'], peak):.1f} %"),
            details={"flops_per_image": session.flops_per_image, "peak_flops": peak, "peak_samples": peaks,
                     "pipeline_flops_per_s": s["pipeline_flops_per_s"], "plain_flops_per_s": s["plain_flops_per_s"]},
        )  # fmt: skip

    def _convergence_row(self) -> Row:
        title = "convergence: seed recipe epochs / default epochs"
        target = (">=", float(self.settings["targets"]["convergence_ratio"]))
        if not self.settings["convergence"]["enabled"]:
            return Row(
                "5",
                "convergence_ratio",
                title,
                None,
                "x",
                target=target,
                status="skipped",
                note=(
                    "quick mode skips it (run bench=full, or convergence.enabled=true)"
                    if self.settings["mode"] == "quick"
                    else "not run: convergence.enabled is false"
                ),
            )
        failed = self._failed("5", "convergence_ratio", title, "convergence")
        if failed:
            return failed
        conv = self.results["convergence"]
        runs = conv["per_seed"]
        statuses = {r["status"] for r in runs}
        values = [r["ratio"] for r in runs if r["ratio"] is not None]
        if statuses == {"measured"}:
            value, status = median(values), "measured"
        elif statuses <= {"measured", "lower_bound"}:
            value, status = min(values), "lower_bound"
        elif statuses <= {"measured", "upper_bound"}:
            value, status = max(values), "upper_bound"
        else:
            value, status = None, "not_reached"
        notes = []
        for r in runs:
            d, sr = r["default"], r["seed_recipe"]
            notes.append(
                f"seed {r['seed']}: default {_reached(d, conv)}; seed recipe {_reached(sr, conv)}"
            )
        wall = [r["wall_ratio"] for r in runs if r["wall_ratio"] is not None]
        notes.append(f"wall-time ratio {median(wall):.1f}x" if wall else "no wall-time ratio")
        return Row(
            "5",
            "convergence_ratio",
            title,
            value,
            "x",
            target=target,
            status=status,
            note=f"{conv['metric']} >= {conv['target']}: " + "; ".join(notes),
            details=conv,
        )

    def _memory_row(self) -> Row:
        title = "peak memory (RSS) of a default training run"
        failed = self._failed("6a", "peak_rss", title, "memory")
        if failed:
            return failed
        m = self.results["memory"]
        return Row(
            "6a",
            "peak_rss",
            title,
            float(m["peak_rss_bytes"]),
            "bytes",
            note=(
                f"python -m anomaly_vit.train trainer.max_epochs={m['max_epochs']} (then its "
                f"test), ru_maxrss of that process; the run took {m['wall_seconds']:.0f} s"
            ),
            details=m,
        )

    def _startup_row(self) -> Row:
        title = "CLI start-up (python -m anomaly_vit.train --help)"
        failed = self._failed("6b", "startup", title, "startup")
        if failed:
            return failed
        seconds = self.results["startup"]
        return Row(
            "6b",
            "startup",
            title,
            median(seconds),
            "s",
            note=f"median of {len(seconds)}: " + ", ".join(f"{s:.2f}" for s in seconds),
            details={"seconds": seconds},
        )

    def _deploy_rows(self) -> list[Row]:
        titles = [
            ("9a", "deploy_speedup", "deploy: ONNX bundle / torch eager throughput, batch 32"),
            ("9b", "deploy_latency", "deploy: ONNX bundle single-image latency (median)"),
            ("9c", "deploy_bundle_size", "deploy: bundle size on disk"),
            ("9d", "deploy_peak_rss", "deploy: peak memory of the torch-free inferencer"),
        ]
        failed = [self._failed(n, key, title, "deploy") for n, key, title in titles]
        if failed[0]:
            return failed
        d, targets = self.results["deploy"], self.settings["targets"]
        onnx, eager = d["onnx"], d["eager"]
        where = (
            f"{d['input_hw'][0]}x{d['input_hw'][1]} input, {d['params'] / 1e6:.1f} M parameters, "
            f"{d['threads']} threads, same inputs"
        )
        return [
            Row(
                "9a", "deploy_speedup", titles[0][2],
                safe_ratio(onnx["img_per_s"], eager["img_per_s"]), "x",
                target=(">=", float(targets["deploy_speedup"])),
                shown=(f"{safe_ratio(onnx['img_per_s'], eager['img_per_s']):.2f}x "
                       f"({onnx['img_per_s']:.1f} vs {eager['img_per_s']:.1f} img/s)"),
                note=f"median batch time of onnxruntime vs torch.inference_mode on DeployNet; {where}",
                details=d,
            ),
            Row(
                "9b", "deploy_latency", titles[1][2], onnx["latency_median_ms"], "ms",
                target=("<=", float(targets["deploy_latency_ms"])),
                shown=(f"{onnx['latency_median_ms']:.1f} ms (p95 {onnx['latency_p95_ms']:.1f}; "
                       f"eager {eager['latency_median_ms']:.1f}, p95 {eager['latency_p95_ms']:.1f})"),
                note=(f"one normalised image through the network; the Inferencer end to end on a "
                      f"{d['photo_hw'][0]}x{d['photo_hw'][1]} photo (decode, letterbox, map back, mask): "
                      f"{d['inferencer_latency_median_ms']:.1f} ms median, p95 "
                      f"{d['inferencer_latency_p95_ms']:.1f}; {where}"),
            ),
            Row(
                "9c", "deploy_bundle_size", titles[2][2], float(d["bundle_bytes"]), "bytes",
                shown=f"{d['bundle_bytes'] / 2**20:.1f} MiB",
                note="model.onnx + bundle.json (fp32 weights)",
            ),
            Row(
                "9d", "deploy_peak_rss", titles[3][2], float(d["inferencer_peak_rss_bytes"]), "bytes",
                note=(f"VmHWM of a fresh process that imports anomaly_vit.deploy and predicts "
                      f"{d['photo_hw'][0]}x{d['photo_hw'][1]} photos; torch loaded: "
                      f"{d['inferencer_torch_loaded']}"),
            ),
        ]  # fmt: skip


def _reached(run: dict[str, Any], conv: dict[str, Any]) -> str:
    if run["epochs_to_target"] is not None:
        return f"epoch {run['epochs_to_target']} ({run['seconds_to_target']:.0f} s)"
    return f"not reached in {run['epochs_run']} epochs (best {run['best']:.3f}, {run['wall_seconds']:.0f} s)"

"""`python -m anomaly_vit.bench [--quick] [train overrides]`: the benchmark table (console, markdown, JSON).

Rows, each measured in this one run (settings: conf/bench.yaml):
1. training throughput of the project pipeline / a plain PyTorch loop (interleaved epochs);
2. share of a training step spent waiting for data (loading + augmentation);
3. share of training time spent in rollout dumps at the default `every_n_epochs`;
4. achieved training FLOP/s as a share of this machine's fp32 matmul peak;
5. convergence: epochs to the target score, seed recipe / default recipe (full mode);
6. peak memory of a default training run, and start-up time of the CLI.
The report goes to `outputs/bench/<time>/bench.md` and `bench.json`, with the per-epoch
samples, the Lightning hook times and a cProfile summary of one epoch.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from anomaly_vit.bench.report import (
    Row,
    markdown_table,
    median,
    print_table,
    safe_ratio,
    write_report,
)
from anomaly_vit.bench.settings import BENCH_FILE, compose_train_config, load_settings
from anomaly_vit.bench.throughput import NOISY_SPREAD

log = logging.getLogger("anomaly_vit.bench")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m anomaly_vit.bench",
        description="Benchmarks of the training pipeline on the default config (settings: conf/bench.yaml).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small data, few epochs, no convergence (< 3 min)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="report folder (default: <out_dir>/<time>)"
    )
    parser.add_argument(
        "--set",
        dest="dotlist",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"change a setting of {BENCH_FILE.name} (e.g. convergence.seed_max_epochs=60)",
    )
    parser.add_argument(
        "--convergence",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run (or skip) the convergence benchmark whatever the mode says",
    )
    parser.add_argument(
        "--target", type=float, default=None, help="target validation score (convergence.target)"
    )
    parser.add_argument(
        "--seed-max-epochs", type=int, default=None, help="cap of the seed recipe's run"
    )
    parser.add_argument(
        "--measured-epochs", type=int, default=None, help="throughput.measured_epochs"
    )
    parser.add_argument(
        "overrides", nargs="*", help="training config overrides, e.g. data.num_workers=2"
    )
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    dotlist = list(args.dotlist)
    for key, value in (
        ("convergence.enabled", args.convergence),
        ("convergence.target", args.target),
        ("convergence.seed_max_epochs", args.seed_max_epochs),
        ("throughput.measured_epochs", args.measured_epochs),
    ):
        if value is not None:
            dotlist.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    settings = load_settings(quick=args.quick, dotlist=dotlist)
    settings["train_overrides"] = [*settings.get("train_overrides", []), *args.overrides]
    settings["mode"] = "quick" if args.quick else "full"
    return settings


class Bench:
    """Runs the benchmarks one after the other; a failing one is reported, the others go on."""

    def __init__(self, settings: dict[str, Any], out_dir: Path) -> None:
        self.settings = settings
        self.out_dir = out_dir
        self.overrides = list(settings["train_overrides"])
        self.results: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.interrupted = False

    def step(self, name: str, fn) -> Any:
        if self.interrupted:
            return None
        print(f"\n[bench] {name} ...", flush=True)
        started = time.perf_counter()
        try:
            self.results[name] = fn()
        except Exception as error:  # noqa: BLE001 - one broken benchmark must not hide the others
            self.errors[name] = "".join(traceback.format_exception(error))[-4000:]
            print(f"[bench] {name} FAILED: {error}", file=sys.stderr, flush=True)
        except KeyboardInterrupt:  # Ctrl-C: stop here, still write what was measured
            self.errors[name] = "interrupted (Ctrl-C)"
            self.interrupted = True
            print(f"[bench] {name} interrupted: writing the report", file=sys.stderr, flush=True)
        print(f"[bench] {name}: {time.perf_counter() - started:.1f} s", flush=True)
        return self.results.get(name)

    # ------------------------------------------------------------------------- the steps
    def peak(self) -> list[float]:
        from anomaly_vit.bench.flops import matmul_flops_per_second

        peak = self.settings["peak"]
        return matmul_flops_per_second(
            int(peak["matmul_size"]), repeats=int(peak["repeats"]), warmup=1
        )

    def startup(self) -> list[float]:
        from anomaly_vit.bench.system import startup_seconds

        return startup_seconds(int(self.settings["startup"]["repeats"]), cwd=Path.cwd())

    def throughput(self):
        from anomaly_vit.bench.throughput import ThroughputSession, run_throughput

        tp, peak = self.settings["throughput"], self.settings["peak"]
        session = ThroughputSession(
            measured_epochs=int(tp["measured_epochs"]), profile_epoch=bool(tp["profile_epoch"]),
            profile_top=int(tp["profile_top"]), plain_warmup_steps=int(tp["plain_warmup_steps"]),
            extra_rollout_dumps=int(tp["extra_rollout_dumps"]), matmul_size=int(peak["matmul_size"]),
        )  # fmt: skip
        return run_throughput(self.overrides, self.out_dir / "runs" / "throughput", session)

    def memory(self) -> dict[str, Any]:
        from anomaly_vit.bench.system import run_with_peak_rss

        run_dir = self.out_dir / "runs" / "memory"
        epochs = int(self.settings["memory"]["max_epochs"])
        command = [
            sys.executable,
            "-m",
            "anomaly_vit.train",
            *self.overrides,
            f"trainer.max_epochs={epochs}",
            f"hydra.run.dir={run_dir}",
        ]
        result = run_with_peak_rss(command, run_dir / "bench_stdout.log", cwd=Path.cwd())
        if result["returncode"] != 0:
            tail = Path(result["log"]).read_text()[-2000:]
            raise RuntimeError(f"the training run exited with {result['returncode']}:\n{tail}")
        return result | {"max_epochs": epochs}

    def convergence(self) -> dict[str, Any]:
        from anomaly_vit.bench.convergence import convergence_ratio, run_recipe

        conv, targets = self.settings["convergence"], self.settings["targets"]
        runs_dir = self.out_dir / "runs"
        cfg = compose_train_config(self.overrides, runs_dir / "convergence_config")
        seeds = [int(s) for s in (conv.get("seeds") or [cfg.seed])]
        default_cap = int(conv.get("default_max_epochs") or cfg.trainer.max_epochs)
        metric, target = str(conv["metric"]), float(conv["target"])
        per_seed = []
        for seed in seeds:
            default = run_recipe(
                "default",
                seed,
                default_cap,
                self.overrides,
                runs_dir / f"default_seed{seed}",
                metric,
                target,
                cwd=Path.cwd(),
            )
            _check_run(default)
            seed_cap = conv.get("seed_max_epochs")
            if not seed_cap:
                basis = default.epochs_to_target or default_cap
                seed_cap = min(
                    int(conv["seed_max_epochs_limit"]),
                    math.ceil(float(targets["convergence_ratio"]) * basis),
                )
            recipe = run_recipe(
                "seed",
                seed,
                int(seed_cap),
                [f"experiment={conv['experiment']}", *self.overrides],
                runs_dir / f"seed_recipe_seed{seed}",
                metric,
                target,
                cwd=Path.cwd(),
            )
            _check_run(recipe)
            ratio, status = convergence_ratio(
                default.epochs_to_target, default_cap, recipe.epochs_to_target, int(seed_cap)
            )
            wall_ratio, _ = convergence_ratio(
                default.seconds_to_target,
                default.wall_seconds,
                recipe.seconds_to_target,
                recipe.wall_seconds,
            )
            per_seed.append(
                {
                    "seed": seed,
                    "ratio": ratio,
                    "status": status,
                    "wall_ratio": wall_ratio,
                    "default": default.as_dict(),
                    "seed_recipe": recipe.as_dict(),
                }
            )
        return {
            "metric": metric,
            "target": target,
            "default_cap": default_cap,
            "per_seed": per_seed,
        }

    def clean(self) -> None:
        if self.settings.get("keep_checkpoints"):
            return
        for folder in (self.out_dir / "runs").glob("*/checkpoints"):
            shutil.rmtree(folder, ignore_errors=True)

    # ---------------------------------------------------------------------------- report
    def rows(self) -> list[Row]:
        return [
            self._throughput_row(),
            self._data_row(),
            self._rollout_row(),
            self._flops_row(),
            self._convergence_row(),
            self._memory_row(),
            self._startup_row(),
        ]

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
                note="no rollout dumps: the config has no RolloutDumper (callbacks.rollouts is null)",
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
                    "quick mode skips it (run without --quick, or with --convergence)"
                    if self.settings["mode"] == "quick"
                    else "not run: convergence.enabled is false (--no-convergence)"
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

    def sections(self) -> list[tuple[str, str]]:
        from anomaly_vit.bench.throughput import action_table, data_seconds

        sections = []
        session = self.results.get("throughput")
        if session is not None:
            header = [
                "global epoch",
                "role",
                "pipeline img/s",
                "plain img/s",
                "ratio",
                "pipeline s",
                "plain s",
                "validation s",
                "data + augment s",
                "step gaps s",
                "epoch-end hooks s",
            ]
            cells = []
            for e in session.epochs:
                pipe = e.images / e.train_seconds if e.train_seconds > 0 else math.nan
                plain = e.plain_images / e.plain_seconds if e.plain_seconds > 0 else math.nan
                end_hooks = sum(
                    v for k, v in e.actions.items() if k.endswith(".on_train_epoch_end")
                )
                cells.append(
                    [
                        e.global_epoch,
                        e.role,
                        f"{pipe:.1f}",
                        f"{plain:.1f}",
                        f"{safe_ratio(pipe, plain):.3f}",
                        f"{e.train_seconds:.2f}",
                        f"{e.plain_seconds:.2f}",
                        f"{e.validation_seconds:.2f}",
                        f"{data_seconds(e.actions):.2f}",
                        f"{e.gap_seconds:.2f}",
                        f"{end_hooks:.2f}",
                    ]
                )
            sections.append(
                (
                    "Pipeline and plain loop, epoch by epoch",
                    "Plain-loop epoch `k` ran right before pipeline epoch `k`. Warm-up and profiled "
                    "epochs are not in the medians.\n\n" + markdown_table(header, cells),
                )
            )
            header = ["Lightning action", "median s / epoch", "share of a pipeline epoch"]
            tables = []
            for validation in (False, True):
                actions = action_table(session.measured, validation=validation)
                tables.append(
                    markdown_table(
                        header,
                        [[f"`{n}`", f"{s:.3f}", f"{100 * share:.1f} %"] for n, s, share in actions],
                    )
                )
            sections.append((
                "Where a pipeline epoch goes",
                "Seconds per measured epoch of each action Lightning profiles (they nest: "
                "`optimizer_step` holds `training_step` and `backward`).\n\n" + tables[0]
                + "\n\nValidation, not part of a pipeline epoch (a rollout dump falls in some "
                "epochs only):\n\n" + tables[1],
            ))  # fmt: skip
            if session.rollouts:
                r = session.rollouts
                sections.append(
                    (
                        "Rollout dumps",
                        (
                            f"every {r['every_n_epochs']} epochs; dumps at global epochs {r['dump_epochs']} of the fit and "
                            f"{len(r['dump_seconds']) - len(r['dump_epochs'])} more after it.\n\n"
                            f"- training waited (s): {', '.join(f'{x:.2f}' for x in r['dump_seconds'])}\n"
                            f"- drawing the grid (s): {', '.join(f'{x:.2f}' for x in r['render_seconds'])}"
                        ),
                    )
                )
            if session.profile_text:
                sections.append(
                    (
                        "Profile of one training epoch (cProfile, profiled epoch)",
                        "The epoch after the warm-up, validation included.\n\n```\n"
                        + session.profile_text
                        + "\n```",
                    )
                )
        conv = self.results.get("convergence")
        if conv:
            header = [
                "seed",
                "recipe",
                "epochs run (cap)",
                f"epochs to {conv['target']}",
                "s to target",
                "s / epoch",
                f"best {conv['metric']}",
                "run",
            ]
            cells = []
            for r in conv["per_seed"]:
                for name, run in (("default", r["default"]), ("seed recipe", r["seed_recipe"])):
                    cells.append(
                        [
                            r["seed"],
                            name,
                            f"{run['epochs_run']} ({run['max_epochs']})",
                            run["epochs_to_target"] or "not reached",
                            f"{run['seconds_to_target']:.0f}" if run["seconds_to_target"] else "—",
                            f"{run['seconds_per_epoch']:.1f}",
                            f"{run['best']:.3f}",
                            run["run_dir"],
                        ]
                    )
            curves = [
                f"- seed {r['seed']} {name}: "
                + " ".join(f"{v:.2f}" for v in run["metric_by_epoch"])
                for r in conv["per_seed"]
                for name, run in (("default", r["default"]), ("seed recipe", r["seed_recipe"]))
            ]
            sections.append(
                (
                    "Convergence runs",
                    markdown_table(header, cells)
                    + f"\n\n{conv['metric']} by epoch:\n\n"
                    + "\n".join(curves),
                )
            )
        for name, error in self.errors.items():
            sections.append((f"Error in {name}", f"```\n{error}\n```"))
        return sections


def _reached(run: dict[str, Any], conv: dict[str, Any]) -> str:
    if run["epochs_to_target"] is not None:
        return f"epoch {run['epochs_to_target']} ({run['seconds_to_target']:.0f} s)"
    return f"not reached in {run['epochs_run']} epochs (best {run['best']:.3f}, {run['wall_seconds']:.0f} s)"


def _check_run(run) -> None:
    if run.returncode != 0:
        raise RuntimeError(
            f"the {run.recipe} recipe's run exited with {run.returncode}:\n{run.log_tail}"
        )


def main(argv: list[str] | None = None) -> int:
    from anomaly_vit.bench.system import load_average, machine_info

    args = parse_args(argv)
    try:
        settings = settings_from_args(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started, wall_start = datetime.now(), time.perf_counter()
    out_dir = args.out or Path(settings["out_dir"]) / started.strftime("%Y-%m-%d_%H-%M-%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    print(
        f"[bench] {settings['mode']} mode -> {out_dir}; {machine['cpu_count']} CPUs, "
        f"{machine['torch_threads']} torch threads, load {machine['load_average']}",
        flush=True,
    )
    bench = Bench(settings, out_dir)
    bench.step("peak_before", bench.peak)
    bench.step("startup", bench.startup)
    bench.step("throughput", bench.throughput)
    bench.step("peak_after", bench.peak)
    bench.step("memory", bench.memory)
    if settings["convergence"]["enabled"]:
        bench.step("convergence", bench.convergence)
    bench.clean()
    rows = bench.rows()
    wall = time.perf_counter() - wall_start
    machine["load_average_end"] = load_average()
    meta = {
        "mode": settings["mode"],
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": wall,
        "machine": (
            f"{machine['cpu']}, {machine['cpu_count']} CPUs, {machine['torch_threads']} torch threads, "
            f"load average {machine['load_average']} at start, {machine['load_average_end']} at end; "
            f"torch {machine['torch']}, lightning {machine['lightning']}, timm {machine['timm']}"
        ),
        "machine_info": machine,
        "settings": settings,
        "errors": sorted(bench.errors),
    }
    details = {row.key: row.details for row in rows}
    md_path, json_path = write_report(out_dir, rows, meta, bench.sections(), details)
    print_table(
        rows,
        f"anomaly-vit benchmarks ({settings['mode']}, {wall:.0f} s, load {machine['load_average']}"
        f" -> {machine['load_average_end']})",
    )
    print(f"\nreport: {md_path}\n        {json_path}")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())

"""The bench's steps run one after the other, then the table and the report.

Each step measures one thing (settings: conf/bench.yaml); a step that fails is reported in its
row and the report, and the others go on. Ctrl-C stops the steps and still writes the report.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from anomaly_vit.bench.report import print_table, write_report
from anomaly_vit.bench.rows import Rows
from anomaly_vit.bench.sections import sections
from anomaly_vit.compose import compose


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

    def deploy(self) -> dict[str, Any]:
        from anomaly_vit.bench.deploy import run_deploy

        return run_deploy(self.settings["deploy"], self.overrides, self.out_dir / "runs" / "deploy")

    def convergence(self) -> dict[str, Any]:
        from anomaly_vit.bench.convergence import convergence_ratio, run_recipe

        conv, targets = self.settings["convergence"], self.settings["targets"]
        runs_dir = self.out_dir / "runs"
        cfg = compose("train", self.overrides, output_dir=runs_dir / "convergence_config")
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

    def real_data(self) -> dict[str, Any]:
        from anomaly_vit.bench.real_data import run_real_data

        real = dict(self.settings["real_data"])
        real["train_overrides"] = [*real.get("train_overrides", []), *self.overrides]
        return run_real_data(real, self.out_dir / "runs" / "real_data")

    def real_cv(self) -> dict[str, Any]:
        from anomaly_vit.bench.real_cv import run_real_cv

        return run_real_cv(
            dict(self.settings["real_cv"]), self.overrides, self.out_dir / "runs" / "real_cv"
        )

    def app_latency(self) -> dict[str, Any]:
        from anomaly_vit.bench.app_latency import page_latency

        app = self.settings["app_latency"]
        bundle = app.get("bundle") or self.out_dir / "runs" / "deploy" / "bundle"
        if not (Path(bundle) / "bundle.json").is_file():
            raise RuntimeError(
                f"no bundle at {bundle}: the deploy step failed; give app_latency.bundle=<dir>"
            )
        overrides = [f"bundle={bundle}", *app.get("app_overrides", [])]
        return page_latency(
            overrides, int(app["photo_px"]), int(app["warmup"]), int(app["repeats"])
        )

    def clean(self) -> None:
        if self.settings.get("keep_checkpoints"):
            return
        for folder in (self.out_dir / "runs").glob("*/checkpoints"):
            shutil.rmtree(folder, ignore_errors=True)


def _check_run(run) -> None:
    if run.returncode != 0:
        raise RuntimeError(
            f"the {run.recipe} recipe's run exited with {run.returncode}:\n{run.log_tail}"
        )


def run_bench(settings: dict[str, Any], out_dir: Path) -> int:
    """Run every step into `out_dir`, print the table, write bench.md and bench.json; 1 when a
    step failed."""
    from anomaly_vit.bench.system import load_average, machine_info

    started, wall_start = datetime.now(), time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    print(
        f"[bench] {settings['mode']} mode -> {out_dir}; {machine['cpu_count']} CPUs, "
        f"{machine['torch_threads']} torch threads, load {machine['load_average']}",
        flush=True,
    )
    bench = Bench(settings, out_dir)
    steps = {
        "peak_before": bench.peak,
        "startup": bench.startup,
        "throughput": bench.throughput,
        "peak_after": bench.peak,
        "memory": bench.memory,
        "deploy": bench.deploy,
        "convergence": bench.convergence,
        "real_data": bench.real_data,
        "real_cv": bench.real_cv,
        "app_latency": bench.app_latency,
    }
    wanted = settings.get("steps") or list(steps)
    if not settings["convergence"]["enabled"]:
        wanted = [s for s in wanted if s != "convergence"]
    if not settings["real_data"].get("manifest"):
        wanted = [s for s in wanted if s != "real_data"]
    real_cv = settings.get("real_cv") or {}
    if not (real_cv.get("manifest") or real_cv.get("cv_dirs")):
        wanted = [s for s in wanted if s != "real_cv"]
    if not settings["app_latency"].get("bundle") and "deploy" not in wanted:
        wanted = [s for s in wanted if s != "app_latency"]
    for name in wanted:
        bench.step(name, steps[name])
    bench.clean()
    rows = Rows(settings, bench.results, bench.errors).all()
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
    md_path, json_path = write_report(
        out_dir, rows, meta, sections(bench.results, bench.errors), details
    )
    print_table(
        rows,
        f"anomaly-vit benchmarks ({settings['mode']}, {wall:.0f} s, load {machine['load_average']}"
        f" -> {machine['load_average_end']})",
    )
    print(f"\nreport: {md_path}\n        {json_path}")
    return 1 if bench.errors else 0

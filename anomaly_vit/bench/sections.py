"""The markdown sections of the bench report under its table."""

from __future__ import annotations

import math
from typing import Any

from anomaly_vit.bench.epochs import action_table, data_seconds
from anomaly_vit.bench.report import markdown_table, safe_ratio


def sections(results: dict[str, Any], errors: dict[str, str]) -> list[tuple[str, str]]:
    """(title, markdown body) of the report's sections under the table: the epochs, the
    Lightning actions, the rollout dumps, the profile, the convergence runs, the errors."""

    parts = []
    session = results.get("throughput")
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
            end_hooks = sum(v for k, v in e.actions.items() if k.endswith(".on_train_epoch_end"))
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
        parts.append(
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
        parts.append((
            "Where a pipeline epoch goes",
            "Seconds per measured epoch of each action Lightning profiles (they nest: "
            "`optimizer_step` holds `training_step` and `backward`).\n\n" + tables[0]
            + "\n\nValidation, not part of a pipeline epoch (a rollout dump falls in some "
            "epochs only):\n\n" + tables[1],
        ))  # fmt: skip
        if session.rollouts:
            r = session.rollouts
            parts.append(
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
            parts.append(
                (
                    "Profile of one training epoch (cProfile, profiled epoch)",
                    "The epoch after the warm-up, validation included.\n\n```\n"
                    + session.profile_text
                    + "\n```",
                )
            )
    conv = results.get("convergence")
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
            f"- seed {r['seed']} {name}: " + " ".join(f"{v:.2f}" for v in run["metric_by_epoch"])
            for r in conv["per_seed"]
            for name, run in (("default", r["default"]), ("seed recipe", r["seed_recipe"]))
        ]
        parts.append(
            (
                "Convergence runs",
                markdown_table(header, cells)
                + f"\n\n{conv['metric']} by epoch:\n\n"
                + "\n".join(curves),
            )
        )
    deploy = results.get("deploy")
    if deploy is not None:
        header = ["engine", f"img/s at batch {deploy['batch_size']}", "latency median ms", "p95 ms"]
        cells = [
            [name, f"{e['img_per_s']:.1f}", f"{e['latency_median_ms']:.1f}", f"{e['latency_p95_ms']:.1f}"]
            for name, e in (("ONNX bundle (onnxruntime)", deploy["onnx"]), ("torch eager", deploy["eager"]))
        ]  # fmt: skip
        cells.append(
            [
                "Inferencer end to end (one photo)",
                "",
                f"{deploy['inferencer_latency_median_ms']:.1f}",
                f"{deploy['inferencer_latency_p95_ms']:.1f}",
            ]
        )
        parts.append(
            (
                "Deploy: the ONNX bundle vs torch eager",
                f"Input {deploy['input_hw'][0]}x{deploy['input_hw'][1]}, {deploy['threads']} "
                "threads, the same normalised inputs through the same graph (class head, defect "
                "score, map).\n\n" + markdown_table(header, cells),
            )
        )
    if "real_cv" in results:
        from anomaly_vit.bench.real_cv import table

        level = int(round(float(results["real_cv"]["level"]) * 100))
        parts.append(
            (
                "Cross-validated comparison (pooled over every photo)",
                f"Out-of-fold scores of every photo, pooled; {level} % bootstrap intervals "
                "(photos resampled within each class); balanced accuracy at each fold's own "
                "validation threshold (docs/cv.md).\n\n" + table(results["real_cv"], markdown=True),
            )
        )
    for name, error in errors.items():
        parts.append((f"Error in {name}", f"```\n{error}\n```"))
    return parts

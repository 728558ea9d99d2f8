"""The benchmarks' own arithmetic and parts (fast), and one quick bench run end to end (slow).

Speed itself is measured by `python -m anomaly_vit.bench`, never asserted here.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import hydra
import pytest
import torch
import torch.nn.functional as F

from anomaly_vit.bench.convergence import (
    CLOCK_FILE,
    TargetProbe,
    convergence_ratio,
    epochs_to_target,
    probe_override,
    read_clock,
)
from anomaly_vit.bench.epochs import (
    FETCH_ACTION,
    VALIDATION_PREFIX,
    EpochTiming,
    action_table,
    data_seconds,
    summarize,
)
from anomaly_vit.bench.flops import count_flops, matmul_flops_per_second, training_step_flops
from anomaly_vit.bench.plain_loop import plain_batches
from anomaly_vit.bench.report import Row, median, plain_table, safe_ratio, table_cells, write_report
from anomaly_vit.bench.settings import bench_settings
from anomaly_vit.callbacks.metrics_writer import write_metrics_csv
from anomaly_vit.compose import compose
from anomaly_vit.rundir import read_metrics_csv
from tests.helpers import ROOT, compose_config, run_cli

ROW_KEYS = ["throughput_ratio", "data_share", "rollout_share", "split_score_share", "flops_share",
            "convergence_ratio",
            "peak_rss", "startup", "deploy_speedup", "deploy_latency", "deploy_bundle_size",
            "deploy_peak_rss", "real_data_auroc", "real_data_balanced_acc", "real_cv",
            "app_latency"]  # fmt: skip


# --------------------------------------------------------------------------- convergence
def test_epochs_to_target_reads_the_first_epoch_at_or_above_the_target(tmp_path):
    path = tmp_path / "metrics.csv"
    values = [0.25, math.nan, 0.5, 0.9, 0.88, 0.95]
    write_metrics_csv(
        path,
        [{"epoch": e + 1, "val/balanced_acc": v, "train/loss": 1.0} for e, v in enumerate(values)],
    )
    rows = read_metrics_csv(path)
    assert epochs_to_target(rows, "val/balanced_acc", 0.9) == 4  # >=, not >
    assert epochs_to_target(rows, "val/balanced_acc", 0.92) == 6
    assert epochs_to_target(rows, "val/balanced_acc", 0.99) is None
    assert epochs_to_target(rows, "val/missing", 0.1) is None
    assert (
        epochs_to_target(list(reversed(rows)), "val/balanced_acc", 0.5) == 3
    )  # by epoch, not file order


def test_convergence_ratio_is_honest_about_runs_that_did_not_reach_the_target():
    assert convergence_ratio(5, 40, 60, 800) == (12.0, "measured")
    assert convergence_ratio(5, 40, None, 120) == (24.0, "lower_bound")  # seed capped at 120
    assert convergence_ratio(None, 40, 30, 120) == (0.75, "upper_bound")
    assert convergence_ratio(None, 40, None, 120) == (None, "not_reached")


def test_target_probe_writes_the_clock_and_stops_at_the_target(tmp_path):
    probe = TargetProbe(metric="val/balanced_acc", target=0.9)
    trainer = SimpleNamespace(
        sanity_checking=False,
        is_global_zero=True,
        default_root_dir=str(tmp_path),
        should_stop=False,
        current_epoch=0,
        callback_metrics={},
    )
    for epoch, value in ((1, 0.5), (2, 0.9)):
        trainer.callback_metrics = {"val/balanced_acc": torch.tensor(value)}
        probe.on_train_epoch_end(trainer, SimpleNamespace(global_epoch=epoch))
        assert trainer.should_stop == (value >= 0.9)
    clock = read_clock(tmp_path / CLOCK_FILE)
    assert sorted(clock) == [1, 2] and clock[1] <= clock[2]


def test_probe_override_adds_the_probe_to_the_training_config(tmp_path):
    cfg = compose_config(
        "train", ["debug=smoke", probe_override("val/balanced_acc", 0.85)], tmp_path / "run"
    )
    probe = hydra.utils.instantiate(cfg.callbacks.bench_target_probe)
    assert isinstance(probe, TargetProbe)
    assert (probe.metric, probe.target, probe.stop) == ("val/balanced_acc", 0.85, True)


# ---------------------------------------------------------------------------- the recipe
def test_seed_recipe_composes_to_what_the_seed_did(tmp_path):
    default = compose_config("train", [], tmp_path / "default")
    cfg = compose_config("train", ["experiment=seed_recipe"], tmp_path / "seed")
    net = cfg.model.net
    assert (net.stem, net.global_pool, net.class_token) == ("patch", "token", True)
    assert net.pretrained is False and net.weights_path is None
    assert net.drop_path_rate == 0.0
    for key in ("model_name", "img_size", "patch_size", "embed_dim", "depth", "num_heads"):
        assert net[key] == default.model.net[key], key  # the same network size as the default
    assert cfg.model.optimizer._target_ == "torch.optim.Adam"
    assert cfg.model.optimizer.weight_decay == 0.0 and cfg.model.scheduler is None
    assert cfg.model.label_smoothing == 0.0 and cfg.model.class_weights is None
    assert cfg.data.get("batch_augment") is None
    assert cfg.data.sources.painted.weight == 0.0 and cfg.data.sources.composite.weight > 0
    assert cfg.data.sources.real.weight > 0 and cfg.data.synthetic_fraction is None
    assert cfg.trainer.max_epochs == 800


def test_seed_recipe_builds_a_plain_timm_vit_with_adam(tmp_path):
    cfg = compose_config("train", ["experiment=seed_recipe"], tmp_path / "seed")
    model = hydra.utils.instantiate(cfg.model, classes=["good", "crack"], _convert_="all")
    assert type(model.net.patch_embed).__name__ == "PatchEmbed"  # timm's patchify stem
    assert model.net.global_pool == "token" and model.net.cls_token is not None
    optimizer = model.build_optimizer()
    assert type(optimizer) is torch.optim.Adam
    assert all(group["weight_decay"] == 0.0 for group in optimizer.param_groups)


# ------------------------------------------------------------------------------- FLOPs
def test_flop_counter_gives_the_analytic_count_of_a_linear_layer():
    batch, n_in, n_out = 16, 8, 4
    layer = torch.nn.Linear(n_in, n_out)
    x, labels = torch.randn(batch, n_in), torch.randint(0, n_out, (batch,))
    assert count_flops(lambda: layer(x)) == 2 * batch * n_in * n_out
    # forward + the weight's gradient (the input needs none): twice the forward
    assert training_step_flops(layer, x, labels) == 4 * batch * n_in * n_out
    assert layer.weight.grad is None  # cleared after counting


def test_flop_counter_counts_attention_on_the_cpu():
    b, h, t, d = 2, 3, 5, 4
    q, k, v = (torch.randn(b, h, t, d) for _ in range(3))
    # q @ k^T and attn @ v: 2 matmuls of 2*b*h*t*t*d each
    assert count_flops(lambda: F.scaled_dot_product_attention(q, k, v)) == 4 * b * h * t * t * d


def test_matmul_peak_gives_one_rate_per_repeat():
    rates = matmul_flops_per_second(64, repeats=3, warmup=1)
    assert len(rates) == 3 and all(r > 0 and math.isfinite(r) for r in rates)


# -------------------------------------------------------------------------- throughput
def _epoch(role, train_s, val_s, images, plain_s, fetch_s=0.0, gap_s=0.0, epoch=0):
    timing = EpochTiming(
        epoch,
        epoch + 1,
        role,
        start=0.0,
        end=train_s + val_s,
        validation_seconds=val_s,
        images=images,
        steps=4,
        gap_seconds=gap_s,
        plain_seconds=plain_s,
        plain_images=images,
    )
    timing.actions[FETCH_ACTION] = fetch_s
    timing.actions["[Callback]CurvesPlotter.on_train_epoch_end"] = 0.1
    timing.actions[VALIDATION_PREFIX + "[Callback]MapDumper.on_validation_epoch_end"] = 5.0
    return timing


def test_summarize_pairs_each_pipeline_epoch_with_its_plain_epoch():
    measured = [
        _epoch("measure", 2.0, 1.0, 100, 1.0, fetch_s=0.2, gap_s=0.3, epoch=1),  # 50 vs 100 img/s
        _epoch("measure", 2.2, 9.0, 100, 1.2, fetch_s=0.22, gap_s=0.4, epoch=2),  # 45.5 vs 83.3
        _epoch("measure", 2.4, 1.0, 100, 1.0, fetch_s=0.6, gap_s=0.6, epoch=3),  # 41.7 vs 100
        _epoch("measure", 8.0, 1.0, 100, 1.0, fetch_s=0.8, gap_s=0.8, epoch=4),  # busy machine
    ]
    s = summarize(measured, flops_per_image=1e9)
    assert (s["pairs_used"], s["pairs_measured"], s["undisturbed"]) == (3, 4, [2, 3, 4])
    assert not s["noisy"]
    assert s["pipeline_img_per_s"] == pytest.approx(100 / 2.2)  # validation is not in the epoch
    assert s["plain_img_per_s"] == pytest.approx(100.0)
    assert s["ratio_paired_median"] == pytest.approx(0.5)  # median of 0.5, 0.545, 0.417
    assert s["ratio_paired_median_all"] == pytest.approx((0.5 + 100 / 2.4 / 100) / 2)
    assert s["ratio_of_best"] == pytest.approx(0.5)
    assert s["fetch_share"] == pytest.approx(0.1)  # median of 0.1, 0.1, 0.25
    assert s["gap_share"] == pytest.approx(0.4 / 2.2)
    assert s["epoch_end_seconds"] == pytest.approx(0.1)
    assert s["pipeline_flops_per_s"] == pytest.approx(1e9 * 100 / 2.2)
    busy = summarize([measured[0], measured[3]], flops_per_image=1.0)
    assert busy["noisy"] and busy["pairs_used"] == 1


def test_action_table_keeps_validation_apart():
    measured = [_epoch("measure", 2.0, 1.0, 100, 1.0, fetch_s=0.5)]
    names = [name for name, _, _ in action_table(measured)]
    assert names == [FETCH_ACTION, "[Callback]CurvesPlotter.on_train_epoch_end"]
    ((name, seconds, share),) = action_table(measured, validation=True)
    assert name == "[Callback]MapDumper.on_validation_epoch_end" and seconds == 5.0 and share == 2.5


def test_plain_batches_follow_the_pipeline_sampler_and_batch_size():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2)
    order = [3, 1, 4, 0, 9, 2, 6]
    datamodule = SimpleNamespace(
        datasets={"train": SimpleNamespace(images_nchw=images, labels=torch.arange(10) % 2)},
        train_sampler=lambda: iter(order),
        batch_size=3,
    )
    batches = plain_batches(datamodule)
    assert [len(labels) for _, labels in batches] == [3, 3, 1]
    assert torch.cat([x[:, 0, 0, 0] for x, _ in batches]).tolist() == order
    assert all(x.dtype == torch.uint8 for x, _ in batches)


# ------------------------------------------------------------------------------- report
def test_median_and_ratio_skip_missing_values():
    assert median([3.0, 1.0, math.nan, 2.0]) == 2.0
    assert math.isnan(median([]))
    assert safe_ratio(1.0, 4.0) == 0.25
    assert math.isnan(safe_ratio(1.0, 0.0)) and math.isnan(safe_ratio(math.nan, 1.0))


def test_row_verdicts_follow_target_and_bound():
    assert Row("1", "a", "a", 0.97, target=(">=", 0.95)).passed is True
    assert Row("1", "a", "a", 0.90, target=(">=", 0.95)).passed is False
    assert Row("2", "b", "b", 0.06, "share", target=("<=", 0.05)).passed is False
    assert Row("5", "c", "c", 12.0, "x", target=(">=", 10), status="lower_bound").passed is True
    assert Row("5", "c", "c", 4.0, "x", target=(">=", 10), status="lower_bound").passed is None
    assert Row("5", "c", "c", 4.0, "x", target=(">=", 10), status="upper_bound").passed is False
    assert Row("5", "c", "c", None, "x", target=(">=", 10), status="skipped").passed is None
    assert Row("4", "d", "d", 0.5, "share").passed is None  # no target: reported only
    with pytest.raises(ValueError):
        Row("9", "e", "e", 1.0, status="guessed")


def test_report_renders_every_row_as_table_markdown_and_json(tmp_path):
    rows = [
        Row("1", "throughput_ratio", "throughput", 0.97, target=(">=", 0.95), note="a|b"),
        Row("2", "data_share", "data", 0.042, "share", target=("<=", 0.05)),
        Row(
            "5",
            "convergence_ratio",
            "convergence",
            24.0,
            "x",
            target=(">=", 10),
            status="lower_bound",
        ),
        Row("6a", "peak_rss", "memory", 1.5 * 2**30, "bytes"),
        Row("6b", "startup", "start-up", math.nan, "s", details={"seconds": [math.nan, 2.0]}),
    ]
    cells = table_cells(rows)
    assert [c[2] for c in cells] == ["0.97", "4.2 %", "≥ 24.00x", "1.50 GiB", "not reached"]
    assert [c[4] for c in cells] == ["yes", "yes", "yes", "—", "—"]
    assert "throughput" in plain_table(["#", "benchmark", "value", "target", "ok", "how"], cells)
    md_path, json_path = write_report(
        tmp_path,
        rows,
        {"mode": "quick", "wall_seconds": 1.0, "settings": {}},
        sections=[("Profile", "```\ntop\n```")],
    )
    markdown = md_path.read_text()
    assert (
        "| 1 | throughput | 0.97 | ≥ 0.95 | yes | a\\|b |" in markdown and "## Profile" in markdown
    )
    payload = json.loads(json_path.read_text())  # NaN written as null: strict JSON
    assert [r["key"] for r in payload["rows"]] == [r.key for r in rows]
    assert payload["rows"][2]["status"] == "lower_bound" and payload["rows"][2]["passed"] is True
    assert payload["rows"][4]["value"] is None and payload["rows"][4]["details"]["seconds"] == [
        None,
        2.0,
    ]


def test_settings_merge_the_quick_mode_over_bench_yaml_and_check_keys():
    full = bench_settings(compose("bench"))
    quick = bench_settings(
        compose("bench", ["bench=quick", "convergence.target=0.8", "train_overrides=['seed=3']"])
    )
    assert (full["mode"], quick["mode"]) == ("full", "quick")
    assert full["convergence"]["enabled"] and not quick["convergence"]["enabled"]
    assert quick["throughput"]["measured_epochs"] < full["throughput"]["measured_epochs"]
    assert quick["convergence"]["target"] == 0.8 and full["convergence"]["target"] == 0.9
    assert full["train_overrides"] == []
    # the mode's overrides first, the user's after; ${...} is left for the training config
    assert quick["train_overrides"] == [
        "data.demo.out_dir=${paths.data_dir}/demo_bench_quick",
        "data.demo.n_items=100",
        "seed=3",
    ]
    assert "hydra" not in quick and "paths" not in quick
    with pytest.raises(Exception, match=r"Could not override 'throughput.epochs'"):
        compose("bench", ["throughput.epochs=3"])


# -------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_quick_bench_writes_every_row_with_finite_numbers(tmp_path):
    out = tmp_path / "bench"
    result = run_cli(
        "anomaly_vit.bench",
        "bench=quick",
        f"hydra.run.dir={out}",
        "throughput.measured_epochs=1",
        "startup.repeats=1",
        "peak.repeats=1",
        "peak.matmul_size=512",
        f"train_overrides=['debug=smoke','data.demo.n_items=48','paths.root_dir={tmp_path}',"
        "'explain_scores=null']",
        cwd=ROOT,
    )
    assert "anomaly-vit benchmarks (quick" in result.stdout  # the table, on the console
    payload = json.loads((out / "bench.json").read_text())
    rows = {row["key"]: row for row in payload["rows"]}
    assert list(rows) == ROW_KEYS
    for key, row in rows.items():
        if key == "convergence_ratio":
            assert row["status"] == "skipped"  # quick mode
            continue
        if key.startswith("real_data"):  # no real set given: the row says how to give one
            assert row["status"] == "skipped" and "real_data.manifest=PATH" in row["note"], row
            continue
        if key == "real_cv":  # no real set given: the row says how to give one
            assert row["status"] == "skipped" and "real_cv.manifest=PATH" in row["note"], row
            continue
        assert row["status"] == "measured", row
        assert (
            isinstance(row["value"], float) and math.isfinite(row["value"]) and row["value"] > 0
        ), row
    assert 0 < rows["data_share"]["value"] < 1 and 0 < rows["flops_share"]["value"] < 1
    assert payload["details"]["throughput_ratio"]["epochs"][0]["role"] == "warmup"
    markdown = (out / "bench.md").read_text()
    assert "| # | benchmark | value | target | ok |" in markdown
    assert "## Profile of one training epoch" in markdown and "cumulative" in markdown
    assert not list((out / "runs").glob("*/checkpoints"))  # cleaned up
    settings = payload["meta"]["settings"]
    assert settings["mode"] == "quick" and settings["throughput"]["measured_epochs"] == 1
    assert (out / ".hydra" / "config.yaml").is_file()  # the bench's own config, as Hydra writes it
    # the quick mode's data folder, resolved in the training config under the user's root_dir
    assert (tmp_path / "data" / "demo_bench_quick").is_dir()


def test_data_seconds_count_fetching_and_batch_transfer_once():
    actions = {FETCH_ACTION: 0.1, "[Strategy]SingleDeviceStrategy.batch_to_device": 0.3,
               "[LightningDataModule]MixedDataModule.on_after_batch_transfer": 0.29,
               "[Strategy]SingleDeviceStrategy.training_step": 5.0}  # fmt: skip
    assert data_seconds(actions) == pytest.approx(0.4)  # the hook runs inside batch_to_device
    del actions["[Strategy]SingleDeviceStrategy.batch_to_device"]
    assert data_seconds(actions) == pytest.approx(0.39)


@pytest.mark.slow
def test_real_data_rows_compare_the_recipe_and_the_peer_on_one_split(tmp_path):
    from tests.helpers.real_set import make_real_set

    manifest = make_real_set(tmp_path / "set", n_items=24, per_item=3) / "manifest.csv"
    tiny = ["model.net.img_size=[48,24]", "model.net.patch_size=8", "model.net.embed_dim=32",
            "model.net.depth=1",
            "model.net.num_heads=2", "trainer.max_epochs=2", "callbacks.maps=null",
            "explain_scores=null"]  # fmt: skip
    out = tmp_path / "bench"
    run_cli(
        "anomaly_vit.bench", "bench=real", f"real_data.manifest={manifest}", "real_data.seeds=[1]",
        f"real_data.train_overrides={json.dumps(tiny)}", "real_data.peer.epochs=1",
        f"hydra.run.dir={out}",
    )  # fmt: skip
    payload = json.loads((out / "bench.json").read_text())
    rows = {row["key"]: row for row in payload["rows"]}
    assert list(rows) == ["real_data_auroc", "real_data_balanced_acc"]  # bench=real: only these
    result = payload["details"]["real_data_auroc"]
    vit, peer = result["per_seed"]["vit"][0], result["per_seed"]["peer"][0]
    for run in (vit, peer):
        assert 0.0 <= run["test/auroc"] <= 1.0 and 0.0 <= run["test/balanced_acc"] <= 1.0
    assert peer["wall_s"] <= vit["wall_s"] + 60  # the peer's budget is the ViT's wall time
    # both were tested on the same real test images: the split the ViT run wrote
    split = (out / "runs" / "real_data" / "vit_seed1" / "split.csv").read_text()
    peer_split = (out / "runs" / "real_data" / "peer_seed1" / "split.csv").read_text()
    assert split == peer_split
    assert rows["real_data_auroc"]["value"] == pytest.approx(vit["test/auroc"])

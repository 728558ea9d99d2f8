"""notebooks/explore_runs.ipynb: committed without outputs; runs top to bottom on a run folder
(and a multirun) and shows that run's numbers, with a note for each section whose input is absent."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "explore_runs.ipynb"
SECTIONS = ("parameters", "curves", "confusion", "rollouts", "lineage", "sweep")
# appended to the executed copy only: the kernel's variables, for the numbers checks
PROBE = """
import json, sys
print("PROBE " + json.dumps({
    "python": sys.executable,
    "run_dir": str(run_dir),
    "source": source,
    "curves": {str(k): v for k, v in curves.reset_index().to_dict("list").items()},
    "probes": None if not dumps else [len(predictions), len(predictions.columns)],
}, default=float))
"""


def _strip_module():
    spec = importlib.util.spec_from_file_location(
        "strip_notebook", ROOT / "scripts" / "strip_notebook.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tagged(nb) -> dict[str, nbformat.NotebookNode]:
    return {tag: cell for cell in nb.cells for tag in cell.metadata.get("tags", [])}


def _text(cell) -> str:
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        else:
            parts += [
                output.get("data", {}).get(kind, "")
                for kind in ("text/plain", "text/markdown", "text/html")
            ]
    return "\n".join(parts)


def _images(cell) -> int:
    return sum("image/png" in output.get("data", {}) for output in cell.outputs)


def execute(monkeypatch, run_dir: Path, multirun_dir: Path | None = None):
    """Run the notebook like a user pointing it at `run_dir`; returns (cells by tag, probe dict)."""
    from nbclient import NotebookClient

    monkeypatch.setenv("AVIT_RUN_DIR", str(run_dir))
    if multirun_dir is None:
        monkeypatch.delenv("AVIT_MULTIRUN_DIR", raising=False)
    else:
        monkeypatch.setenv("AVIT_MULTIRUN_DIR", str(multirun_dir))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError (with the traceback) if any cell fails
    for cell in nb.cells:
        assert not [o for o in cell.get("outputs", []) if o.output_type == "error"]
    probe = next(line for line in _text(nb.cells[-1]).splitlines() if line.startswith("PROBE "))
    return _tagged(nb), json.loads(probe.removeprefix("PROBE "))


def test_committed_notebook_has_no_outputs_and_takes_its_run_from_the_environment():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert _strip_module().is_stripped(nb), "run: make strip-notebook"
    cells = _tagged(nb)
    assert set(SECTIONS) <= set(cells)
    assert nb.cells.index(cells["parameters"]) == 1  # right after the title
    for name in ("RUN_DIR", "MULTIRUN_DIR", "AVIT_RUN_DIR", "AVIT_MULTIRUN_DIR"):
        assert name in cells["parameters"].source
    assert nb.metadata.kernelspec.name == "python3"


def test_strip_removes_outputs_and_counts(tmp_path):
    strip = _strip_module()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = nb.cells[2]
    cell.outputs = [nbformat.v4.new_output("stream", text="hello\n")]
    cell.execution_count = 3
    cell.metadata["execution"] = {"iopub.status.busy": "2025-01-01"}
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, path)
    assert strip.main(["--check", str(path)]) == 1
    assert strip.main([str(path)]) == 0
    cleaned = nbformat.read(path, as_version=4)
    assert strip.is_stripped(cleaned)
    assert [c.source for c in cleaned.cells] == [c.source for c in nb.cells]
    assert strip.main(["--check", str(path)]) == 0


@pytest.mark.slow
def test_notebook_tells_the_story_of_the_smoke_run(smoke_run, monkeypatch):
    summary = json.loads((smoke_run / "summary.json").read_text())
    with (smoke_run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    epochs = summary["global_epoch"]
    cells, probe = execute(monkeypatch, smoke_run)

    assert Path(probe["python"]).parent == Path(sys.executable).parent  # the venv
    assert probe["run_dir"] == str(smoke_run)
    # curves: read from the TensorBoard events, one point per global epoch, as in metrics.csv
    assert probe["source"].startswith("TensorBoard")
    assert f"global epochs 1..{epochs}" in _text(cells["curves"])
    assert _images(cells["curves"]) == 1
    curves = probe["curves"]
    assert curves["epoch"] == list(range(1, epochs + 1))
    for key in ("train/loss", "train/acc", "val/loss", "val/balanced_acc"):
        assert curves[key] == pytest.approx([float(r[key]) for r in rows], rel=1e-6), key
    # confusion: summary.json's matrix, printed and drawn
    confusion = _text(cells["confusion"])
    assert f"test/confusion = {json.dumps(summary['test']['test/confusion'])}" in confusion
    assert all(name in confusion for name in summary["classes"])
    assert _images(cells["confusion"]) == 1
    # rollouts: every dump found, the evolution drawn, predictions and scores tabled
    dumped = sorted(int(p.stem.split("_")[1]) for p in (smoke_run / "rollouts").glob("epoch_*.npz"))
    assert dumped == list(range(1, epochs + 1))
    rollouts = _text(cells["rollouts"])
    assert f"dumps at global epochs {dumped}" in rollouts
    assert _images(cells["rollouts"]) == 1
    assert probe["probes"] == [4, len(dumped)]  # MAX_PROBES probes x dumps
    assert "maps/<kind>/energy" in rollouts and "baseline_random" in rollouts
    # absent inputs: a note, not a failure
    assert "no lineage" in _text(cells["lineage"])
    assert _images(cells["lineage"]) == 0
    assert "no multirun" in _text(cells["sweep"])


def _child_of(parent: Path, child: Path) -> Path:
    """A copy of `parent` made to look like its fine-tune: epochs continue from the parent's last,
    no TensorBoard events and no rollouts (so the fallbacks run too)."""
    shutil.copytree(
        parent, child, ignore=shutil.ignore_patterns("tensorboard", "rollouts", "*.ckpt")
    )
    summary = json.loads((child / "summary.json").read_text())
    offset = summary["global_epoch"]
    summary["lineage"] = [
        {"ckpt_path": str(parent / "checkpoints" / "last.ckpt"), "global_epoch": offset,
         "run_dir": str(parent), "head_reinitialised": False},
    ]  # fmt: skip
    summary["global_epoch"] = 2 * offset
    (child / "summary.json").write_text(json.dumps(summary))
    with (parent / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    with (child / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "epoch": int(row["epoch"]) + offset} for row in rows)
    return child


def _multirun(folder: Path, summary: dict, accs: dict[str, float]) -> Path:
    """Job folders as a `-m` sweep over data.synthetic_fraction leaves them (no report yet)."""
    for n, (ratio, acc) in enumerate(accs.items()):
        job = folder / str(n)
        (job / ".hydra").mkdir(parents=True)
        overrides = ["debug=smoke", f"data.synthetic_fraction={ratio}", "seed=1"]
        (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        (job / "summary.json").write_text(
            json.dumps({**summary, "test": {**summary["test"], "test/balanced_acc": acc}})
        )
    (folder / "multirun.yaml").write_text("hydra: {}\n")
    return folder


@pytest.mark.slow
def test_notebook_shows_lineage_and_sweep(smoke_run, tmp_path, monkeypatch):
    child = _child_of(smoke_run, tmp_path / "runs" / "child")
    summary = json.loads((smoke_run / "summary.json").read_text())
    epochs = summary["global_epoch"]
    sweep = _multirun(tmp_path / "multiruns" / "sweep", summary, {"0": 0.6, "0.5": 0.8, "1": 0.7})
    cells, probe = execute(monkeypatch, child, sweep)

    # curves from metrics.csv (no events), on the global epochs after the parent's
    assert probe["source"] == "metrics.csv"
    assert probe["curves"]["epoch"] == list(range(epochs + 1, 2 * epochs + 1))
    assert _images(cells["curves"]) == 1
    assert "no rollouts" in _text(cells["rollouts"]) and probe["probes"] is None
    # lineage: the parent, where it forked, and the curves with the parent's epochs
    lineage = _text(cells["lineage"])
    assert str(smoke_run) in lineage and "last.ckpt" in lineage
    assert f"this run's epoch 1 is global epoch {epochs + 1}" in lineage
    assert f"ends at global epoch {2 * epochs}" in lineage
    assert _images(cells["lineage"]) == 1
    # sweep: the report is built from the job folders and shown (table, best value, plot)
    text = _text(cells["sweep"])
    assert f"sweep: {sweep} (3 jobs, 0 failed)" in text
    assert "Best `test/balanced_acc`: `data.synthetic_fraction=0.5`: 0.800" in text
    assert _images(cells["sweep"]) == 1
    with (sweep / "sweep_summary.csv").open() as handle:
        assert [r["data.synthetic_fraction"] for r in csv.DictReader(handle)] == ["0", "0.5", "1"]
    assert (sweep / "sweep.png").is_file()

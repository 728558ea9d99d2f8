"""The Gradio page: photos in, verdicts, outlined defects, the table; the operating point; the
model card. Handlers are methods of `Page` (plain Python, callable without a browser)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# offline: no telemetry or version check (read by gradio when it is imported)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from anomaly_vit.deploy.draw import map_overlay, map_range, outline  # noqa: E402
from anomaly_vit.model.thresholds import MANUAL_POLICY  # noqa: E402
from anomaly_vit.ui.counts import Confusion, confusion_at, roc_points  # noqa: E402
from anomaly_vit.ui.inspector import Inspector, Shown  # noqa: E402
from anomaly_vit.ui.model_card import model_card  # noqa: E402
from anomaly_vit.ui.photos import Photo, PhotoSetError, folder_photos, labelled_photos  # noqa: E402
from anomaly_vit.ui.policies import policy_choices  # noqa: E402
from anomaly_vit.ui.render import confusion_html, roc_svg, verdict_text  # noqa: E402
from anomaly_vit.ui.results import (  # noqa: E402
    TABLE_COLUMNS,
    PhotoResult,
    Verdicts,
    table_rows,
    verdicts_html,
    write_csv,
)

CSV_NAME = "inspection.csv"
# the table's text columns (the others are numbers, so a click on the header sorts by value)
COLUMN_TYPES = {"photo": "str", "verdict": "str", "problem": "str"}


@dataclass(frozen=True)
class Look:
    """How the pictures are drawn (conf/app.yaml `look`)."""

    outline_px_per_1000: float = 4.0  # outline thickness per 1000 px of the photo's short side
    overlay_alpha: float = 0.5
    roc_px: int = 260
    picture_px: int = 360  # height of the two pictures on the page (the files keep the photo's)


@dataclass
class Labelled:
    """The scored labelled set: scores and truths of its readable photos."""

    scores: list[float]
    truth: list[bool]
    problems: int
    roc: list[tuple[float, float]]


class Page:
    """What the page does; `build_page` wires it to Gradio components."""

    def __init__(
        self,
        inspector: Inspector,
        bundle_dir: str | Path,
        threshold: float,
        policy: str,
        save_threshold: Callable[..., Path],
        look: Look,
        work_dir: Path | None = None,
    ) -> None:
        self.inspector = inspector
        self.bundle_dir = Path(bundle_dir)
        self.bundle = inspector.inferencer.bundle
        self.policies = inspector.inferencer.policies()
        self.threshold = float(threshold)
        self.policy = policy
        self.save = save_threshold
        self.look = look
        self.verdicts = Verdicts(str(self.bundle["good_class"]), str(self.bundle["defect_class"]))
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="avit-app-"))

    # --------------------------------------------------------------------------- photos
    def inspect(
        self, files: Sequence[str] | None, folder: str | None, threshold: float
    ) -> tuple[Any, ...]:
        """Drop or folder -> (results, shown, message, verdicts, table, csv, choices, viewer)."""
        photos = [Photo(str(f), Path(f).name) for f in files or []]
        problems: list[str] = []
        if folder and folder.strip():
            try:
                photos += folder_photos(folder.strip())
            except PhotoSetError as err:
                problems.append(str(err))
        if not photos and not problems:
            problems.append("Nothing to inspect: drop photos above, or give a folder of photos.")
        results, shown = self.inspector.inspect(photos)
        problems += [r.problem for r in results if r.problem]
        message = _message(problems, len(results))
        names = [r.name for r in results if r.score is not None]
        return (
            results,
            shown,
            message,
            *self._answers(results, threshold),
            gr.update(choices=names, value=names[0] if names else None),
            *self._viewer(results, shown, threshold),
        )

    def pick(self, name: str | None, results: list[PhotoResult], threshold: float):
        """The viewer on another photo: (shown, verdict, outlined, overlay)."""
        chosen = [r for r in results if r.name == name and r.score is not None]
        shown = self.inspector.show(chosen[0]) if chosen else None
        return (shown, *self._viewer(results, shown, threshold))

    def pick_row(self, results: list[PhotoResult], threshold: float, evt: gr.SelectData):
        """A click on the table's row: that photo in the viewer (photo, shown, viewer)."""
        name = evt.row_value[0] if evt.row_value else None
        return (name, *self.pick(name, results, threshold))

    def _answers(self, results: list[PhotoResult], threshold: float) -> tuple[Any, Any, Any]:
        rows = table_rows(results, threshold, self.verdicts)
        csv_path = None
        if results:
            csv_path = str(write_csv(rows, Path(tempfile.mkdtemp(dir=self.work_dir)) / CSV_NAME))
        return verdicts_html(results, threshold, self.verdicts), rows, csv_path

    def _viewer(self, results: list[PhotoResult], shown: Shown | None, threshold: float):
        """(verdict line, outlined photo, map overlay) of the photo in the viewer."""
        if shown is None:
            return "", None, None
        lo_hi = map_range(shown.map_hw, self.bundle.get("map_kind"))
        overlaid = map_overlay(shown.rgb_hw3, shown.map_hw, lo_hi, self.look.overlay_alpha)
        return (*self._outlined(results, shown, threshold), overlaid)

    def _outlined(self, results: list[PhotoResult], shown: Shown, threshold: float):
        """(verdict line, photo with the mask outlined when it is called a defect)."""
        result = next(r for r in results if r.name == shown.name)
        called = bool(result.is_defect(threshold))
        text = verdict_text(result.score, threshold, self.verdicts.of(result, threshold), called)
        width = max(1, round(min(shown.mask_hw.shape) * self.look.outline_px_per_1000 / 1000))
        mask = shown.mask_hw if called else np.zeros_like(shown.mask_hw)
        line = f"**{result.name}**: {text}; {result.width} x {result.height} px"
        return line, outline(shown.rgb_hw3, mask, width)

    # -------------------------------------------------------------------- operating point
    def choose_policy(self, name: str | None) -> Any:
        """The slider's value for a stored policy."""
        if name in self.policies:
            return float(self.policies[name]["threshold"])
        return gr.skip()

    def move(
        self,
        threshold: float,
        results: list[PhotoResult],
        shown: Shown | None,
        labelled: Labelled | None,
    ) -> tuple[Any, ...]:
        """The threshold moved: verdicts, table, CSV, viewer, counts and ROC point again (the
        map overlay does not depend on it)."""
        verdict, outlined = self._outlined(results, shown, threshold) if shown else ("", gr.skip())
        return (
            *self._answers(results, threshold),
            verdict,
            outlined,
            *self._counts(labelled, threshold),
        )

    def score_labelled(self, source: str | None, threshold: float):
        """Score a labelled set once: (labelled, message, counts html, ROC svg)."""
        if not source or not source.strip():
            return None, "Give a labelled set: a folder with class sub-folders, or a manifest CSV.", *self._counts(None, threshold)  # fmt: skip
        try:
            photos = labelled_photos(source.strip(), [str(c) for c in self.bundle["classes"]])
        except PhotoSetError as err:
            return None, str(err), *self._counts(None, threshold)
        results, _ = self.inspector.inspect(photos)
        scored = [r for r in results if r.score is not None]
        scores = [r.score for r in scored]
        truth = [r.label != self.verdicts.good for r in scored]
        labelled = Labelled(scores, truth, len(results) - len(scored), roc_points(scores, truth))
        problems = [r.problem for r in results if r.problem]
        return labelled, _message(problems, len(results)), *self._counts(labelled, threshold)

    def _counts(self, labelled: Labelled | None, threshold: float) -> tuple[str, str]:
        if labelled is None:
            return confusion_html(None, 0, 0), ""
        counts: Confusion = confusion_at(labelled.scores, labelled.truth, threshold)
        html = confusion_html(counts, len(labelled.scores), labelled.problems)
        return html, roc_svg(labelled.roc, counts, self.look.roc_px)

    def save_current(self, threshold: float) -> str:
        """Write a new bundle version with the slider's threshold; the bundle in use is kept."""
        try:
            new_dir = self.save(self.bundle_dir, float(threshold), name=MANUAL_POLICY)
        except (ValueError, OSError) as err:  # BundleError, a read-only folder, a full disk
            return f"Could not save the threshold next to `{self.bundle_dir}`: {err}"
        return (
            f"Saved threshold {threshold:.4f} as policy `{MANUAL_POLICY}` in a new bundle version: "
            f"`{new_dir}` (the bundle `{self.bundle_dir}` is unchanged). Start the app on the "
            "new folder to use it."
        )


def _message(problems: Sequence[str], n_photos: int) -> str:
    if not problems:
        return ""
    head = f"**{len(problems)} problem(s)** ({n_photos} photo(s) given):"
    return head + "\n" + "\n".join(f"- {p}" for p in problems)


def build_page(page: Page) -> gr.Blocks:
    """The page's components and events."""
    choices = policy_choices(page.policies, page.policy, page.threshold)
    # JPEG: PNG encoding cost ~100 ms a 640 px picture; no share button (it would go online)
    picture = {"format": "jpeg", "height": page.look.picture_px, "buttons": ["download", "fullscreen"]}  # fmt: skip
    with gr.Blocks(title="anomaly-vit inspection", analytics_enabled=False) as blocks:
        results = gr.State([])
        shown = gr.State(None)
        labelled = gr.State(None)
        gr.Markdown(
            f"## Inspection with `{page.bundle_dir.name}`\n"
            f"Drop photos: each gets a verdict ({page.verdicts.defect} or {page.verdicts.good}), "
            "its defect score against the threshold, the defect outlined and the model's map."
        )
        with gr.Row():
            with gr.Column(scale=3):
                files = gr.File(file_count="multiple", label="Photos", elem_id="photos")
                with gr.Row():
                    folder = gr.Textbox(
                        label="or a folder of photos on this machine",
                        elem_id="folder",
                        scale=4,
                    )
                    go = gr.Button("Inspect", variant="primary", elem_id="inspect", scale=1)
                message = gr.Markdown(elem_id="messages")
                verdicts = gr.HTML(elem_id="verdicts")
                pick = gr.Dropdown(label="Photo in view", choices=[], elem_id="pick")
                verdict = gr.Markdown(elem_id="photo-verdict")
                with gr.Row():
                    outlined = gr.Image(label="defect outlined", elem_id="outlined", **picture)
                    mapped = gr.Image(label="map overlay", elem_id="overlay", **picture)
            with gr.Column(scale=2):
                gr.Markdown("### Operating point")
                policy = gr.Dropdown(
                    label="Threshold policy (stored with the model)",
                    choices=choices,
                    value=page.policy,
                    elem_id="policy",
                )
                threshold = gr.Slider(
                    0.0,
                    1.0,
                    value=page.threshold,
                    step=0.0001,
                    label="Threshold: a photo scoring at least this is a defect",
                    elem_id="threshold",
                )
                save = gr.Button("Save threshold (new bundle version)", elem_id="save")
                saved = gr.Markdown(elem_id="saved")
                with gr.Row():
                    source = gr.Textbox(
                        label="Labelled set: folder with class sub-folders, or manifest CSV",
                        elem_id="labelled",
                        scale=4,
                    )
                    score = gr.Button("Score", elem_id="score-labelled", scale=1)
                labelled_message = gr.Markdown(elem_id="labelled-messages")
                counts = gr.HTML(confusion_html(None, 0, 0), elem_id="counts")
                roc = gr.HTML(elem_id="roc")
        table = gr.Dataframe(
            headers=list(TABLE_COLUMNS),
            datatype=[COLUMN_TYPES.get(c, "number") for c in TABLE_COLUMNS],
            type="array",
            interactive=False,
            label="All photos (click a column to sort, a row to view the photo)",
            elem_id="table",
        )
        csv_file = gr.File(label="Table as CSV", elem_id="csv", interactive=False)
        with gr.Accordion("Model card: what it was trained on, how well it did", open=True):
            gr.Markdown(model_card(page.bundle), elem_id="model-card")

        answers = [verdicts, table, csv_file]
        viewer = [verdict, outlined, mapped]
        inspect_out = [results, shown, message, *answers, pick, *viewer]
        go.click(page.inspect, [files, folder, threshold], inspect_out)
        files.upload(page.inspect, [files, folder, threshold], inspect_out)
        pick.input(page.pick, [pick, results, threshold], [shown, *viewer])
        table.select(page.pick_row, [results, threshold], [pick, shown, *viewer])
        policy.input(page.choose_policy, [policy], [threshold])
        threshold.change(
            page.move,
            [threshold, results, shown, labelled],
            [*answers, verdict, outlined, counts, roc],
            trigger_mode="always_last",
            show_progress="hidden",
        )
        score.click(
            page.score_labelled, [source, threshold], [labelled, labelled_message, counts, roc]
        )
        save.click(page.save_current, [threshold], [saved])
    return blocks

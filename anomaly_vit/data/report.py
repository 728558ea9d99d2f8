"""The data report: what the datamodule scanned and decoded, and everything odd about it.

`build_report` reads a `MixedDataModule` after `setup()` (no extra decoding: file facts come
from the `ImageInfo` each source kept while decoding) and returns a JSON-ready dict:

- ``counts``: images used per split, source, view and class (after skipping bad files);
- ``sources``: type, weight, mix share, records scanned and used, per source;
- ``bad_files``: files that failed to decode or are empty (or folders named like images), with
  the reason and how many images were skipped because of them (composites of a bad view too);
- ``unpaired`` / ``composites_skipped``: views without a partner, items composites left out;
- ``modes`` / ``sizes`` per source, and the files whose mode or size differs from their
  source's usual one (``odd_modes``, ``odd_sizes``: a side more than `SIZE_TOLERANCE` off; odd
  modes are converted, not errors);
- ``constant_images``: blank files (one colour);
- ``duplicates``: files with identical bytes (sha256) that belong to different items, flagged
  ``across_splits`` when they also sit in different splits (a leak);
- ``missing_classes``: classes without any image in a split.

`render_report` prints it as rich tables, `report_markdown` is the short text logged to
TensorBoard, `problem_lines` the loud summary of a training run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from anomaly_vit.data.image_io import load_mask
from anomaly_vit.data.index import is_derived
from anomaly_vit.rundir import DATA_REPORT_JSON, write_json

SPLITS = ("train", "val", "test")
REPORT_FILE = DATA_REPORT_JSON
MAX_SHOWN = 10  # rows of each problem table / entries of each summary line before "... and N more"
LOG_WIDTH = 160  # console width when the output is a file or a pipe, not a terminal


def _more(items: list[Any], limit: int = MAX_SHOWN) -> str:
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def _usual(counter: Counter) -> Any:
    """The most common key (ties: the smallest), or None for an empty counter."""
    if not counter:
        return None
    top = max(counter.values())
    return min(k for k, v in counter.items() if v == top)


# a size is odd when a side differs from the source's usual one by more than this share:
# photos cropped to the part vary by a few pixels (KolektorSDD: 250 x 618..642) and are fine
SIZE_TOLERANCE = 0.1


def _odd_size(width: int, height: int, usual: str) -> bool:
    usual_w, usual_h = (int(v) for v in usual.split("x"))
    return abs(width - usual_w) > SIZE_TOLERANCE * usual_w or (
        abs(height - usual_h) > SIZE_TOLERANCE * usual_h
    )


def build_report(datamodule: Any) -> dict[str, Any]:
    """Everything the data check reports, from a datamodule whose `setup()` has run."""
    dm = datamodule
    used = {split: list(dm.records_of_split.get(split, [])) for split in SPLITS}
    weights = dm.mix_weights
    eval_names = dm.eval_sources or [n for n, s in dm.sources.items() if not s.synthetic]

    counts: Counter = Counter(
        (split, r.source, r.view, r.label) for split, records in used.items() for r in records
    )
    used_per_source = Counter(r.source for records in used.values() for r in records)
    sources = {
        name: {
            "type": type(source).__name__,
            "synthetic": bool(source.synthetic),
            "weight": float(source.weight),
            "mix_share": float(weights.get(name, 0.0)),
            "evaluated": name in eval_names,
            "scanned": len(dm.records.get(name, [])),
            "used": used_per_source.get(name, 0),
            "base": getattr(source, "base", None),
        }
        for name, source in dm.sources.items()
    }

    bad: dict[str, dict[str, Any]] = {}
    for entry in dm.bad_images:
        row = bad.setdefault(
            entry["path"],
            {"path": entry["path"], "reason": entry["reason"], "sources": [], "images_skipped": 0},
        )
        if entry.get("source") and entry["source"] not in row["sources"]:
            row["sources"].append(entry["source"])
        row["images_skipped"] += int(entry.get("record", True))

    infos = {
        path: (name, info)
        for name, source in dm.sources.items()
        for path, info in getattr(source, "file_info", {}).items()
    }
    record_of_path = {r.path: r for records in dm.records.values() for r in records}
    modes: dict[str, Counter] = defaultdict(Counter)
    sizes: dict[str, Counter] = defaultdict(Counter)
    for name, info in infos.values():
        modes[name][info.mode] += 1
        sizes[name][f"{info.width}x{info.height}"] += 1
    odd_modes, odd_sizes, constant = [], [], []
    for path, (name, info) in sorted(infos.items()):
        usual_mode, usual_size = _usual(modes[name]), _usual(sizes[name])
        size = f"{info.width}x{info.height}"
        if info.mode != usual_mode:
            odd_modes.append({"path": path, "mode": info.mode, "usual": usual_mode})
        if _odd_size(info.width, info.height, usual_size):
            odd_sizes.append({"path": path, "size": size, "usual": usual_size})
        if info.constant:
            constant.append(path)

    duplicates = []
    by_hash: dict[str, list[str]] = defaultdict(list)
    for path, (_, info) in sorted(infos.items()):
        by_hash[info.sha256].append(path)
    for digest, paths in sorted(by_hash.items(), key=lambda kv: kv[1]):
        records = [record_of_path[p] for p in paths if p in record_of_path]
        items = sorted({r.item_id for r in records})
        if len(paths) < 2 or len(items) < 2:
            continue
        splits = sorted({dm.split_of_item.get(i, "unused") for i in items})
        duplicates.append(
            {
                "sha256": digest,
                "paths": paths,
                "item_ids": items,
                "splits": splits,
                "across_splits": len(splits) > 1,
            }
        )

    labels_of_split = {split: {r.label for r in records} for split, records in used.items()}
    missing = {
        split: [c for c in dm.classes if c not in labels_of_split[split]]
        for split in SPLITS
        if used[split] or split == "train"
    }
    unpaired = {n: list(s.unpaired) for n, s in dm.sources.items() if getattr(s, "unpaired", None)}
    skipped = {n: list(s.skipped) for n, s in dm.sources.items() if getattr(s, "skipped", None)}
    unused = sorted(n for n in dm.sources if weights.get(n, 0) <= 0 and n not in eval_names)
    report = {
        "on_bad_image": dm.on_bad_image,
        "classes": list(dm.classes),
        "counts": [
            {"split": sp, "source": so, "view": v, "label": lab, "images": n}
            for (sp, so, v, lab), n in sorted(counts.items())
        ],
        "sources": sources,
        "unused_sources": unused,
        "bad_files": sorted(bad.values(), key=lambda row: row["path"]),
        "unpaired": unpaired,
        "composites_skipped": skipped,
        "modes": {n: dict(sorted(c.items())) for n, c in sorted(modes.items())},
        "sizes": {n: dict(sorted(c.items())) for n, c in sorted(sizes.items())},
        "odd_modes": odd_modes,
        "odd_sizes": odd_sizes,
        "constant_images": constant,
        "duplicates": duplicates,
        "missing_classes": {split: cls for split, cls in missing.items() if cls},
        "labels_differing_by_case": dm.index.labels_differing_by_case,
        "items_with_several_labels": items_with_several_labels(dm),
        "good_with_mask": good_images_with_a_defect_mask(dm),
    }
    balance, why = dm.balance
    report["task"] = dm.task.value
    report["labels_in_files"] = dm.index.original_labels  # per source, before data.task maps them
    report["balance"] = {"mode": balance.value, "reason": why, "train_counts": dm.real_train_counts}
    report["problems"] = problem_counts(report)
    return report


def items_with_several_labels(dm: Any) -> dict[str, list[str]]:
    """item_id -> labels, for the real items whose images carry more than one label.

    Not a problem in itself (a manifest's item_id may group a capture session with good and
    defect images; the item is split by its defect label), but listed so that a typo in an
    item_id or a label is not silent."""
    labels: dict[str, set[str]] = defaultdict(set)
    for name, records in dm.records.items():
        if not dm.sources[name].synthetic:
            for record in records:
                labels[record.item_id].add(record.label)
    return {item: sorted(found) for item, found in sorted(labels.items()) if len(found) > 1}


def good_images_with_a_defect_mask(dm: Any) -> list[str]:
    """Files of the good class whose mask marks defect pixels: a wrong label or a wrong mask.
    The mask loss would teach the token head "defect here" on a good image."""
    found = []
    for name, records in dm.records.items():
        if is_derived(dm.sources[name]):
            continue
        for record in records:
            if record.label != dm.good_class or not record.mask_path:
                continue
            try:
                if load_mask(record.mask_path).any():
                    found.append(record.path)
            except (OSError, ValueError):  # an unreadable mask is reported as a bad file
                continue
    return sorted(found)


def problem_counts(report: dict[str, Any]) -> dict[str, int]:
    """How many of each kind of problem the report lists (all zero: clean data)."""
    return {
        "bad_files": len(report["bad_files"]),
        "unpaired": sum(len(v) for v in report["unpaired"].values()),
        "duplicates": len(report["duplicates"]),
        "duplicates_across_splits": sum(d["across_splits"] for d in report["duplicates"]),
        "odd_modes": len(report["odd_modes"]),
        "odd_sizes": len(report["odd_sizes"]),
        "constant_images": len(report["constant_images"]),
        "missing_classes": sum(len(v) for v in report["missing_classes"].values()),
        "labels_differing_by_case": len(report.get("labels_differing_by_case", [])),
        "good_with_mask": len(report.get("good_with_mask", [])),
    }


def problem_lines(report: dict[str, Any]) -> list[str]:
    """One line per kind of problem found, each naming the first files (the loud summary)."""
    lines = []
    bad = report["bad_files"]
    if bad:
        action = "skipped" if report["on_bad_image"] == "skip" else "found"
        entries = [f"'{b['path']}' ({b['reason']})" for b in bad]
        lines.append(
            f"{len(bad)} bad image file(s) {action} (data.on_bad_image={report['on_bad_image']}), "
            f"{sum(b['images_skipped'] for b in bad)} image(s) left out: {_more(entries, 5)}"
        )
    for source, paths in report["unpaired"].items():
        lines.append(
            f"source '{source}': {len(paths)} view(s) without a partner (used as single views, "
            f"left out of composites): {_more(paths, 5)}"
        )
    for kind, label in (("odd_modes", "mode"), ("odd_sizes", "size")):
        rows = report[kind]
        if rows:
            entries = [f"'{r['path']}' {r[label]} (usual {r['usual']})" for r in rows]
            lines.append(f"{len(rows)} image(s) with an unusual {label}: {_more(entries, 5)}")
    if report["constant_images"]:
        lines.append(
            f"{len(report['constant_images'])} blank image(s) (one colour): "
            f"{_more(report['constant_images'], 5)}"
        )
    for dup in report["duplicates"]:
        leak = f", splits {'/'.join(dup['splits'])}: a leak" if dup["across_splits"] else ""
        lines.append(
            f"identical files in different items ({', '.join(dup['item_ids'])}{leak}): "
            f"{_more(dup['paths'], 5)}"
        )
    for split, classes in report["missing_classes"].items():
        lines.append(f"split '{split}' has no image of class(es) {classes}")
    for group in report.get("labels_differing_by_case", []):
        lines.append(
            f"labels {group} differ only by case and are {len(group)} different classes: "
            "rename them to one spelling if they are one class"
        )
    good_with_mask = report.get("good_with_mask", [])
    if good_with_mask:
        lines.append(
            f"{len(good_with_mask)} image(s) labelled good whose mask marks a defect (fix the "
            f"label or the mask; the mask loss would learn 'defect here' on a good image): "
            f"{_more(good_with_mask, 5)}"
        )
    return lines


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write the report as JSON, atomically."""
    return write_json(path, report, finite=False)


def report_markdown(report: dict[str, Any]) -> str:
    """A short markdown summary (for TensorBoard's text tab): counts and the problem lines."""
    problems = report["problems"]
    used = Counter()
    for row in report["counts"]:
        used[row["split"]] += row["images"]
    lines = [
        "images used: " + ", ".join(f"{split} {used[split]}" for split in SPLITS),
        "",
        f"task: {report['task']}; balance: {report['balance']['reason']}",
        "",
        "problems: " + ", ".join(f"{k} {v}" for k, v in problems.items()),
        "",
    ]
    lines += [f"- {line}" for line in problem_lines(report)] or ["- none"]
    return "\n".join(lines)


def _count_table(report: dict[str, Any]):
    from rich.table import Table

    classes = list(report["classes"])
    grid: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
    for row in report["counts"]:
        grid[(row["split"], row["source"], row["view"])][row["label"]] += row["images"]
    table = Table(title="images used per split, source and view")
    for column in ("split", "source", "view", *classes, "total"):
        table.add_column(
            column, justify="left" if column in ("split", "source", "view") else "right"
        )
    order = {split: i for i, split in enumerate(SPLITS)}
    for key in sorted(grid, key=lambda k: (order.get(k[0], 9), k[1], k[2])):
        row = grid[key]
        table.add_row(*key, *(str(row.get(c, 0)) for c in classes), str(sum(row.values())))
    return table


def _rows_table(title: str, columns: Iterable[str], rows: list[list[str]]):
    from rich.table import Table

    table = Table(title=title, title_style="bold red")
    for i, column in enumerate(columns):
        table.add_column(column, overflow="fold", ratio=2 if i == 0 else 1)
    for row in rows[:MAX_SHOWN]:
        table.add_row(*row)
    if len(rows) > MAX_SHOWN:
        table.caption = f"... and {len(rows) - MAX_SHOWN} more (see {REPORT_FILE})"
    return table


def render_report(report: dict[str, Any], console: Any = None) -> None:
    """Print the report as rich tables (counts, sources, then one table per kind of problem)."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=LOG_WIDTH)
    console.print(_count_table(report))
    sources = Table(title="sources")
    for column in ("source", "type", "synthetic", "weight", "mix share", "scanned", "used"):
        sources.add_column(
            column,
            justify="right" if column in ("weight", "mix share", "scanned", "used") else "left",
        )
    for name, s in report["sources"].items():
        sources.add_row(
            name, s["type"].removesuffix("Source"), "yes" if s["synthetic"] else "no", f"{s['weight']:g}",
            f"{s['mix_share']:.3g}", str(s["scanned"]), str(s["used"]),
        )  # fmt: skip
    console.print(sources)
    modes = Table(title="file modes and sizes (per source)")
    for column in ("source", "modes", "sizes"):
        modes.add_column(column, overflow="fold")
    for name in report["modes"]:
        modes.add_row(
            name,
            ", ".join(f"{m} {n}" for m, n in report["modes"][name].items()),
            ", ".join(f"{s} {n}" for s, n in report["sizes"][name].items()),
        )
    console.print(modes)
    tables = [
        ("bad image files", ["file", "reason", "images left out"],
         [[b["path"], b["reason"], str(b["images_skipped"])] for b in report["bad_files"]]),
        ("views without a partner (single views, no composites)", ["source", "file"],
         [[s, p] for s, paths in report["unpaired"].items() for p in paths]),
        ("items left out of composites", ["source", "item"],
         [[s, i] for s, items in report["composites_skipped"].items() for i in items]),
        ("unusual modes (converted to RGB)", ["file", "mode", "usual"],
         [[r["path"], r["mode"], str(r["usual"])] for r in report["odd_modes"]]),
        ("unusual sizes (resized)", ["file", "size", "usual"],
         [[r["path"], r["size"], str(r["usual"])] for r in report["odd_sizes"]]),
        ("blank images (one colour)", ["file"], [[p] for p in report["constant_images"]]),
        ("identical files in different items", ["files", "items", "splits"],
         [["\n".join(d["paths"]), ", ".join(d["item_ids"]), "/".join(d["splits"])]
          for d in report["duplicates"]]),
        ("classes missing from a split", ["split", "classes"],
         [[split, ", ".join(c)] for split, c in report["missing_classes"].items()]),
    ]  # fmt: skip
    for title, columns, rows in tables:
        if rows:
            console.print(_rows_table(f"{title}: {len(rows)}", columns, rows))
    total = sum(report["problems"].values())
    if report["unused_sources"]:
        unused = ", ".join(report["unused_sources"])
        console.print(f"sources training does not read (weight 0, not evaluated): {unused}")
    style = "bold green" if total == 0 else "bold yellow"
    console.print(f"[{style}]data check: {total} problem(s)[/{style}] " + str(report["problems"]))

"""The model card: what the bundle's model was trained on and how well it did, from bundle.json.

Shows the lineage (the runs it was fine-tuned from), the data report's counts, the test metrics
and the map scores beside their baselines, so the page says how far to trust the verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from anomaly_vit.ui.policies import policy_words


def model_card(bundle: Mapping[str, Any]) -> str:
    """Markdown of the card; a part the bundle lacks is named as missing, never invented."""
    run = bundle.get("run") or {}
    parts = [_identity(bundle)]
    parts.append("### Lineage\n\n" + _lineage(bundle.get("lineage")))
    parts.append("### Data it was trained and tested on\n\n" + _data(run.get("data")))
    parts.append("### Test metrics\n\n" + _metrics(run.get("test")))
    parts.append("### Threshold policies (chosen on validation)\n\n" + _policies(bundle))
    parts.append("### Where it looks: map scores vs baselines\n\n" + _maps(run.get("explain")))
    return "\n\n".join(parts)


def _identity(bundle: Mapping[str, Any]) -> str:
    versions = bundle.get("versions") or {}
    lines = [
        f"- classes: {', '.join(map(str, bundle.get('classes', [])))} (good: "
        f"`{bundle.get('good_class')}`, defect: `{bundle.get('defect_class')}`)",
        f"- decision: {bundle.get('decision', 'not stored')}; map: {bundle.get('map_kind')}",
        f"- input: {_inline(bundle.get('input'))}",
        f"- exported: {bundle.get('created', 'not stored')}; {_inline(versions)}",
    ]
    return "\n".join(lines)


def _lineage(lineage: Any) -> str:
    if not isinstance(lineage, Mapping):
        return "not stored in this bundle"
    sha = str(lineage.get("ckpt_sha256") or "")[:12]
    lines = [
        f"- checkpoint `{lineage.get('ckpt_path')}` (global epoch {lineage.get('global_epoch')}"
        + (f", sha256 {sha}…)" if sha else ")")
    ]
    parents = lineage.get("parents") or []
    if not parents:
        lines.append("- trained in one run (not fine-tuned from an earlier checkpoint)")
    lines += [f"- fine-tuned from: {_inline(parent)}" for parent in parents]
    return "\n".join(lines)


def _data(data: Any) -> str:
    if not isinstance(data, Mapping) or not data:
        return "not stored in this bundle"
    splits = {
        k: v
        for k, v in data.items()
        if isinstance(v, Mapping) and all(isinstance(n, int) for n in v.values())
    }
    other = {k: v for k, v in data.items() if k not in splits}
    rows = []
    for split, counts in splits.items():
        rows.append([split, sum(counts.values()), _inline(counts)])
    text = _table(["split", "images", "by source/class"], rows) if rows else ""
    return text + ("\n\n" + _inline(other) if other else "")


def _metrics(test: Any) -> str:
    if not isinstance(test, Mapping) or not test:
        return "not stored in this bundle"
    rows = [[k, _number(v)] for k, v in test.items() if isinstance(v, int | float)]
    return _table(["metric", "value"], rows)


def _policies(bundle: Mapping[str, Any]) -> str:
    policies = bundle.get("thresholds") or {}
    if not policies:
        return "none stored"
    rows = []
    for name, p in policies.items():
        p = p if isinstance(p, Mapping) else {"threshold": p}
        rows.append(
            [
                f"{policy_words(name)} (`{name}`)"
                + (" (default)" if name == bundle.get("default_policy") else ""),
                _number(p.get("threshold")),
                _inline(p.get("val")),
                _inline(p.get("test")),
            ]
        )
    return _table(["policy", "threshold", "validation counts", "test counts"], rows)


def _maps(maps: Any) -> str:
    if not isinstance(maps, Mapping) or not maps:
        return "not stored in this bundle"
    scores = maps.get("maps", maps)
    baselines = maps.get("baselines") or {}
    kinds = {k: v for k, v in scores.items() if isinstance(v, Mapping)}
    columns = list(kinds) + [f"baseline: {b}" for b in baselines]
    metrics = sorted({m for v in (*kinds.values(), *baselines.values()) for m in v})
    rows = [
        [m] + [_number(v.get(m)) for v in (*kinds.values(), *baselines.values())] for m in metrics
    ]
    where = (
        f"on {maps['n_scored']} defective {maps.get('split', 'test')} photos; "
        if "n_scored" in maps
        else ""
    )
    note = where + (
        "a map is worth trusting where it beats the baselines"
        if baselines
        else "no baselines stored"
    )
    return _table(["score", *columns], rows) + "\n\n" + note


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_inline(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return _number(value)

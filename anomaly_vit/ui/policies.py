"""Threshold policies in words, as an operator reads them ("no escapes on validation")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anomaly_vit.model.thresholds import MANUAL_POLICY, PolicyError, parse_policy

WORDS = {
    "youden": "balanced: most defects caught for fewest false alarms (Youden, validation)",
    "max_f1": "best F1 on validation",
    MANUAL_POLICY: "set by hand",
}


def policy_words(name: str) -> str:
    """What a policy means, e.g. ``recall:1.0`` -> "no escapes on validation"; a name that is
    no rule (a threshold saved under its own name) is shown as it is."""
    try:
        policy = parse_policy(name)
    except PolicyError:
        return WORDS.get(name, name)
    if policy.kind == "recall":
        if policy.target >= 1.0:
            return "no escapes on validation"
        return f"catches ≥ {100 * policy.target:g} % of validation defects"
    if policy.kind == "fpr":
        return f"≤ {100 * policy.target:g} % false alarms on validation"
    return WORDS[policy.kind]


def policy_choices(
    policies: Mapping[str, Mapping[str, Any]], current: str, threshold: float
) -> list[tuple[str, str]]:
    """(label, name) for a dropdown: the words, the policy's name and its threshold; the
    page's starting point is added when it is no stored policy (a number, a new rule)."""
    thresholds = {name: float(p["threshold"]) for name, p in policies.items()}
    thresholds.setdefault(current, float(threshold))
    return [
        (f"{policy_words(name)} ({name}, threshold {value:.4f})", name)
        for name, value in thresholds.items()
    ]

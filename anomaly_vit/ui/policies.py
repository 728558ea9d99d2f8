"""Threshold policies in words, as an operator reads them ("no escapes on validation")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MANUAL = "manual"
NAMED = {
    "youden": "balanced: most defects caught for fewest false alarms (Youden, validation)",
    "max_f1": "best F1 on validation",
    MANUAL: "set by hand",
}


def policy_words(name: str) -> str:
    """What a stored policy means, e.g. ``recall:1.0`` -> "no escapes on validation"."""
    kind, _, value = name.partition(":")
    try:
        share = float(value) if value else None
    except ValueError:
        share = None
    if kind == "recall" and share is not None:
        if share >= 1.0:
            return "no escapes on validation"
        return f"catches ≥ {100 * share:g} % of validation defects"
    if kind == "fpr" and share is not None:
        return f"≤ {100 * share:g} % false alarms on validation"
    return NAMED.get(name, name)


def policy_choices(policies: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(label, name) for a dropdown: the words, the policy's name and its threshold."""
    return [
        (f"{policy_words(name)} ({name}, threshold {float(p['threshold']):.4f})", name)
        for name, p in policies.items()
    ]


def starting_point(
    policies: Mapping[str, Mapping[str, Any]],
    default_policy: str | None,
    threshold_policy: str | None,
    threshold: float | None,
) -> tuple[float, str]:
    """(threshold, policy name) the page starts at: a number wins, else the named policy, else
    the bundle's default."""
    if threshold is not None:
        return float(threshold), MANUAL
    name = threshold_policy or default_policy
    if name not in policies:
        raise ValueError(
            f"threshold_policy={name} is not stored in the bundle; it has "
            f"{', '.join(policies) or 'none'}: pick one of those, or give threshold=<number>"
        )
    return float(policies[name]["threshold"]), str(name)

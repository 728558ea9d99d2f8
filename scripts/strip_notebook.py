"""Remove outputs, execution counts and run metadata from notebooks, so git holds only the code.

    python scripts/strip_notebook.py [--check] [notebooks/*.ipynb]      (or: make strip-notebook)

With `--check`, change nothing and exit 1 if a notebook still has outputs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CELL_RUN_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")
KEPT_LANGUAGE_INFO = ("name",)


def is_stripped(nb: nbformat.NotebookNode) -> bool:
    """True when no code cell has outputs, an execution count or run metadata."""
    return all(
        not cell.get("outputs")
        and cell.get("execution_count") is None
        and not any(key in cell.metadata for key in CELL_RUN_METADATA)
        for cell in nb.cells
        if cell.cell_type == "code"
    )


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`nb` without outputs, execution counts and run metadata (in place; also returned)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in CELL_RUN_METADATA:
            cell.metadata.pop(key, None)
    info = nb.metadata.get("language_info")
    if info:
        nb.metadata["language_info"] = {k: v for k, v in info.items() if k in KEPT_LANGUAGE_INFO}
    nb.metadata.pop("widgets", None)
    return nb


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)"
    )
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if not stripped")
    args = parser.parse_args(argv)
    paths = args.paths or sorted((ROOT / "notebooks").glob("*.ipynb"))
    dirty = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if is_stripped(nb):
            continue
        dirty.append(path)
        if not args.check:
            nbformat.write(strip(nb), path)
            print(f"stripped {path}")
    if args.check and dirty:
        print(
            "notebooks with outputs: " + ", ".join(map(str, dirty)) + " (run: make strip-notebook)"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

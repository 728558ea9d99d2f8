"""The docs tell the truth about the tree: the config-group table lists exactly the groups and
options of conf/, every group a page selects exists, every docs/README reference in code and
configs (and every link between pages) lands on a page and heading that exist, every conf/ file a
page or comment names exists, and the README's code map names the packages as they are."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import CONF, ROOT

PACKAGE = ROOT / "anomaly_vit"
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
# code and configs whose comments point readers at the docs
SOURCES = [
    *sorted(PACKAGE.rglob("*.py")),
    *sorted(CONF.rglob("*.yaml")),
    *sorted((ROOT / "scripts").glob("*.py")),
    ROOT / "Makefile",
    ROOT / "pyproject.toml",
]
# pages the README links that are written on other branches (deploy, app);
# remove a name once its page is merged
WRITTEN_ELSEWHERE = {"docs/deploy.md", "docs/app.md"}

DOC_REF = re.compile(r"\bdocs/[\w/.-]*?\.md(?:#[\w-]+)?")
README_REF = re.compile(r"\bREADME(?:'s)?,? \"([^\"]+)\"")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
CONF_REF = re.compile(r"\bconf/[\w/.-]+\.yaml\b")
GROUP_CHOICE = re.compile(r"(?<![\w.+~/-])([a-z_]+(?:/[a-z_]+)*)=([\w,-]+)")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _prose(path: Path) -> list[str]:
    """The lines of a markdown page outside code fences."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchors(page: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in _prose(page) if re.match(r"#{1,6} ", line)}


def _conf_groups() -> dict[str, set[str]]:
    """{group: its options} for every folder of conf/ that holds yaml files."""
    groups: dict[str, set[str]] = {}
    for path in CONF.rglob("*.yaml"):
        if path.parent != CONF:
            groups.setdefault(path.parent.relative_to(CONF).as_posix(), set()).add(path.stem)
    return groups


def _table_groups() -> dict[str, set[str]]:
    """{group: options} of the README's "Config groups" table."""
    text = README.read_text()
    section = text.split("## Config groups", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table = {}
    for row in rows:
        group_cell, options_cell = row.split("|")[1:3]
        (group,) = re.findall(r"`([^`]+)`", group_cell)
        table[group] = set(re.findall(r"`([^`]+)`", options_cell))
    return table


def test_the_config_group_table_lists_every_group_and_option_of_conf_and_no_other() -> None:
    table, groups = _table_groups(), _conf_groups()
    assert set(table) == set(groups), (
        f"only in the README: {sorted(set(table) - set(groups))}, "
        f"only in conf/: {sorted(set(groups) - set(table))}"
    )
    for group, options in groups.items():
        assert table[group] == options, (group, table[group], options)


def test_every_group_choice_in_the_docs_names_a_group_and_option_that_exist() -> None:
    groups, checked = _conf_groups(), 0
    for page in PAGES:
        for name, value in GROUP_CHOICE.findall(page.read_text()):
            if name not in groups and "/" not in name:
                continue  # a single key (seed=1, run_name=...), not a group
            assert name in groups, f"{_rel(page)}: {name}={value}: no group conf/{name}/"
            for option in value.split(","):
                assert option in groups[name] or option == "null", (
                    f"{_rel(page)}: {name}={option}: not in conf/{name}/ {sorted(groups[name])}"
                )
            checked += 1
    assert checked >= 20  # the pages do select groups (data=manifest, trainer=gpu, ssl=simmim...)


def _references() -> list[tuple[str, str]]:
    """(where, target) of every docs/... reference in code and configs and every relative link
    of the README and the docs pages, the target relative to the repository root."""
    found = []
    for source in SOURCES:
        for ref in DOC_REF.findall(source.read_text()):
            found.append((_rel(source), ref))
    for page in PAGES:
        for link in MD_LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", link):
                continue  # https:, mailto:
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            found.append((_rel(page), _rel(target) + (f"#{anchor}" if anchor else "")))
    return found


def test_every_docs_reference_and_link_lands_on_a_page_and_heading_that_exist() -> None:
    references = _references()
    assert sum(where.startswith("conf/") for where, _ in references) >= 15
    for where, target in references:
        path, _, anchor = target.partition("#")
        if path in WRITTEN_ELSEWHERE:
            continue
        assert (ROOT / path).exists(), f"{where}: {target}: no such page"
        if anchor:
            assert anchor in _anchors(ROOT / path), f"{where}: {target}: no such heading"


def test_code_and_configs_point_at_readme_sections_that_exist() -> None:
    """Comments point at docs pages; a "README "<section>"" reference left over must still land."""
    sections = {line.lstrip("#").strip() for line in _prose(README) if line.startswith("#")}
    for source in SOURCES:
        for title in README_REF.findall(source.read_text()):
            assert any(s.startswith(title) for s in sections), f"{_rel(source)}: README {title!r}"


def test_every_conf_file_named_exists() -> None:
    named = [
        (page, ref) for page in [*PAGES, *SOURCES] for ref in CONF_REF.findall(page.read_text())
    ]
    assert len(named) >= 10
    for page, ref in named:
        assert (ROOT / ref).is_file(), f"{_rel(page)}: {ref} does not exist"


def _code_map() -> str:
    text = README.read_text()
    return text.split("## Code map", 1)[1].split("\n## ", 1)[0]


def test_the_code_map_names_modules_that_exist_and_every_package() -> None:
    code_map = _code_map()
    names = set(re.findall(r"\b([a-z_]+(?:\.py|/))", code_map)) - {"conf/", "anomaly_vit/"}
    files = {p.name for p in PACKAGE.rglob("*.py")} | {
        p.name + "/" for p in PACKAGE.rglob("*") if (p / "__init__.py").is_file()
    }
    assert names and names <= files, f"not in anomaly_vit/: {sorted(names - files)}"
    packages = {p.parent.name + "/" for p in PACKAGE.glob("*/__init__.py")}
    assert packages <= names, f"packages missing from the code map: {sorted(packages - names)}"

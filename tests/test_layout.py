"""The package's shape: the README's tree matches the modules, and no module outgrows one sitting."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "cmrqc_widgets"
MAX_LINES = 400
SLACK = 30  # "about 400": a module this far over must say why in its docstring


def readme_tree() -> dict[str, set[str]]:
    """Modules the README's Development tree lists, by subpackage ('' for the top level)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## Development", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    tree: dict[str, set[str]] = {}
    current = None
    for line in block.splitlines():
        if line.startswith("cmrqc_widgets/"):
            current = ""
            continue
        if current is None or not line.startswith("  "):
            current = None if not line.startswith("  ") else current
            continue
        folder = re.match(r"^  (\w+)/", line)
        if folder:
            current = folder.group(1)
            tree.setdefault(current, set())
            continue
        where = current if line.startswith("    ") else ""
        # Only the module column: words before the description (two spaces or more apart).
        names = re.split(r"\s{2,}", line.strip())[0]
        tree.setdefault(where, set()).update(re.findall(r"(\w+)\.py", names))
    return tree


def package_tree() -> dict[str, set[str]]:
    """Modules on disk, by subpackage ('' for the top level); __init__ and __main__ left out."""
    tree: dict[str, set[str]] = {"": set()}
    for path in PACKAGE.rglob("*.py"):
        if path.stem in ("__init__", "__main__") or "_shipped" in path.parts:
            continue
        rel = path.relative_to(PACKAGE)
        where = rel.parts[0] if len(rel.parts) > 1 else ""
        tree.setdefault(where, set()).add(path.stem)
    return tree


def test_readme_tree_matches_the_package() -> None:
    """Every module is in the README's Development tree, under its folder, and nothing else is."""
    assert readme_tree() == package_tree()


def test_every_subpackage_is_listed_with_a_purpose() -> None:
    """Each subpackage folder on disk is a line of the tree (a newcomer finds their room from ls)."""
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert folders == set(readme_tree()) - {""}


def test_modules_stay_readable_in_one_sitting() -> None:
    """No module is far over ~400 lines unless its docstring says why it stays one module."""
    too_long = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines <= MAX_LINES + SLACK:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if "one module on purpose" not in doc.lower():
            too_long.append(f"{path.relative_to(REPO)} ({lines} lines)")
    assert not too_long, "split along a real seam, or say why in the docstring: " + ", ".join(too_long)

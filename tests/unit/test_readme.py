"""README.md's layout section names what the tree holds, and nothing it does not."""

from __future__ import annotations

import re
import subprocess

from .conftest import REPO


def layout_block() -> str:
    readme = (REPO / "README.md").read_text()
    return re.search(r"## Layout\n\n```\n(.*?)```", readme, re.S).group(1)


def tracked() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    return listed.stdout.split()


def test_the_layout_names_every_test_tier():
    tiers = {path.split("/")[1] for path in tracked() if re.fullmatch(r"tests/\w+/.+", path)}
    tests_entry = layout_block().split("\ntests/", 1)[1].split("\nbench/", 1)[0]

    assert sorted(t for t in tiers if not re.search(rf"\b{t}\b", tests_entry)) == []


def test_the_layout_names_every_module_of_squall_and_handlers_and_every_top_level_entry():
    block = layout_block()
    files = tracked()
    modules = {
        path.split("/")[-1] for path in files if re.fullmatch(r"(squall|handlers)/\w+\.py", path)
    }
    top = {path.split("/")[0] for path in files if not path.startswith(".")}
    top -= {"README.md", "pyproject.toml", "setup.cfg", "ruff.toml"}

    unnamed = sorted(m for m in modules - {"__init__.py"} if not re.search(rf"\b{m}\b", block))
    assert unnamed == []
    assert sorted(t for t in top if not re.search(rf"^{re.escape(t)}", block, re.M)) == []


def test_every_file_the_layout_names_exists():
    block = layout_block()
    files = tracked()
    named = set(re.findall(r"\b(\w+\.(?:py|yaml|md|html))\b", block))

    assert sorted(n for n in named if not any(f.endswith("/" + n) or f == n for f in files)) == []

"""The README's Layout section names every module and folder of the package."""

from __future__ import annotations

from support import REPO


def layout_block() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Layout"):]
    return section[section.index("```") + 3 : section.index("```", section.index("```") + 3)]


def test_the_layout_section_matches_the_tree():
    block = layout_block()
    package = REPO / "legal_hpo_env"
    for entry in sorted(package.iterdir()):
        if entry.name in ("__init__.py", "__pycache__", "py.typed"):
            continue
        name = f"{entry.name}/" if entry.is_dir() else entry.name
        assert name in block, f"README Layout does not name legal_hpo_env/{name}"
    for sub in ("backends", "distributed", "tasks"):
        for module in sorted((package / sub).glob("*.py")):
            if module.name != "__init__.py":
                assert module.stem in block, f"README Layout does not name legal_hpo_env/{sub}/{module.name}"
    for top in ("agents/", "benchmarks/", "docs/scaling.md", "tests/"):
        assert top in block

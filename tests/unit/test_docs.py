"""The documentation's links lead to files of this repository, which a clone has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = ["README.md", "tests/system/README.md", *sorted(
    str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_link_leads_to_a_file_in_the_repository(document):
    path = REPO / document
    for target in LINK.findall(path.read_text()):
        if target.startswith("#"):
            continue  # a heading of the same page
        assert "://" not in target, f"{document} links outside the repository: {target}"
        resolved = (path.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(REPO), f"{document} links outside the repository: {target}"
        assert resolved.exists(), f"{document} links to a missing file: {target}"

"""Every relative link in README.md and docs/**/*.md resolves to a file or
folder of the repository: a clone has everything its documentation points to."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*[\"'])?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
EXTERNAL = re.compile(r"^([a-z][a-z0-9+.-]*:|//|#)", re.I)


def _links(text: str) -> list[str]:
  text = FENCE.sub("", text)
  return INLINE.findall(text) + REFERENCE.findall(text)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_inside_the_repository(doc):
  broken = []
  for link in _links(doc.read_text()):
    if EXTERNAL.match(link):
      continue
    target = (doc.parent / link.split("#")[0]).resolve()
    if not target.exists() or ROOT not in (target, *target.parents):
      broken.append(link)
  assert not broken, f"{doc.relative_to(ROOT)}: links to nothing in the repository: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_paths_outside_the_repository(doc):
  """Was: README sent readers to `../shared/DESIGN.md`, which a clone lacks."""
  assert "../shared" not in doc.read_text()


def test_readme_points_to_the_design_document():
  assert "docs/design.md" in (ROOT / "README.md").read_text()
  assert (ROOT / "docs" / "design.md").is_file()


def test_the_checker_finds_links():
  text = ("[a](docs/x.md#part) ![b](img.png \"title\") [c](https://x.org) [d](#local)\n"
          "```\n[e](in/code.md)\n```\n[f]: ref/path.md\n")
  assert sorted(_links(text)) == sorted(["docs/x.md#part", "img.png", "https://x.org",
                                         "#local", "ref/path.md"])

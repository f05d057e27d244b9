"""The README is a short front door whose links lead somewhere and whose commands work as shown.

The README's round quick start is what tests/demo.py runs (test_subprocess.py runs the demo),
and docs/rounds.md shows the same commands; every option the README names is one the scripts
take; its CSV example is a file the scripts accept.
"""

import re
import shlex
from pathlib import Path

import pytest

import demo
import enroll_user
import set_user_state
from conftest import ROOT
from standin import seed_demo

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
SCRIPTS = {"enroll_user.py": enroll_user, "set_user_state.py": set_user_state,
           "enroll_user": enroll_user, "set_user_state": set_user_state}
LINK = re.compile(r"\]\(([^)\s]+)\)")


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def section(markdown: str, heading: str) -> str:
    """The text under a heading, up to the next heading of the same or a higher level
    (a line starting with # inside a code block is no heading)."""
    level, lines, inside, fenced = heading.split(" ", 1)[0], [], False, False
    for line in markdown.splitlines(keepends=True):
        fenced ^= line.startswith("```")
        starts = not fenced and re.match(r"(#+) ", line)
        if inside and starts and len(starts[1]) <= len(level):
            break
        if inside:
            lines.append(line)
        inside = inside or line.rstrip("\n") == heading
    assert inside, heading
    return "".join(lines)


def blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", markdown, flags=re.S)


def commands(markdown: str) -> list[list[str]]:
    """The commands of the sh blocks, as words, with $OLD and $NEW as the block sets them."""
    found = []
    for block in blocks(markdown, "sh"):
        variables: dict[str, str] = {}
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words and all("=" in w for w in words):
                variables.update(w.partition("=")[::2] for w in words)
            elif words and words[0] in ("python", *SCRIPTS):
                found.append([variables.get(w[1:], w) if w.startswith("$") else w for w in words])
    return found


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_stays_a_front_door():
    assert len(text(README).splitlines()) <= 300


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file_and_heading(page):
    for target in LINK.findall(text(page)):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.is_file(), f"{page.name}: {target}"
        if anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", text(linked), flags=re.M)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: {target}"


def test_every_page_is_linked_from_the_readme():
    """docs/pending-*.md are notes of changes waiting to be folded into the pages: not linked."""
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in LINK.findall(text(README))}
    assert {p for p in PAGES[1:] if not p.name.startswith("pending-")} <= linked


def test_the_round_quick_start_is_what_the_demo_runs():
    ran = [demo.command(script, args).split() for script, args, *_ in demo.ROUND]
    assert commands(section(text(README), "### A round")) == ran
    assert commands(section(text(ROOT / "docs" / "rounds.md"), "## The flow")) == ran


def test_the_options_the_readme_shows_are_in_the_scripts_help(run):
    readme = text(README)
    shown = commands(section(readme, "## Quick start")) + commands(section(readme, "## Usage"))
    assert len(shown) > 15
    helps = {module: run(module, "--help", use_config=False).out for module in (enroll_user, set_user_state)}
    for words in shown:
        script = words[1] if words[0] == "python" else words[0]
        options = [w.split("=")[0] for w in words if w.startswith("--") and w != "--"]
        assert all(re.search(rf"(^|\s){re.escape(o)}\b", helps[SCRIPTS[script]]) for o in options), words
    for row in re.findall(r"^\| `(--[\w-]+)", section(readme, "## Options"), flags=re.M):
        assert any(f" {row}" in h for h in helps.values()), row


def test_the_readme_csv_example_is_accepted(canvas, run, tmp_path):
    seed_demo(canvas, token="demo-token", filler=0)
    (example,) = blocks(section(text(README), "### A batch"), "csv")
    (tmp_path / "new-round.csv").write_text(example, encoding="utf-8")
    r = run(enroll_user, "--csv", tmp_path / "new-round.csv", "--dry-run", "--json")
    assert r.code == 0, r.err
    assert [(o["sis_user_id"], o["action"]) for o in r.json()] == [("S1002", "created"), ("S1003", "created")]


def test_the_changelog_holds_the_version_the_tools_print():
    import canvas_common
    versions = re.findall(r"^## (\S+)", text(ROOT / "CHANGELOG.md"), flags=re.M)
    assert versions[:2] == ["Unreleased", canvas_common.__version__]

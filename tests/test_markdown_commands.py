"""The markdown convention the fresh-install test reads commands by (tests/markdown_commands.py),
and the README's marked blocks holding the commands issue 22 asks to be tested. Fast."""

from __future__ import annotations

import re

import pytest

from tests.markdown_commands import MarkdownError, commands
from tests.test_fresh_install import REQUIRED, command_line, marked_commands

PAGE = """# Title

<!-- commands: local -->

    bash install.sh && snakemake a.png   # set up
    # a comment line

    snakemake -n \\
      --until collect

An unmarked block:

    snakemake --profile aws

<!-- commands: aws -->
```sh
snakemake --profile aws
```

<!--commands:local-->
```
snakemake teardown
```
"""


def test_marked_blocks_give_their_commands_in_order(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    local = commands(page)
    assert [c.text for c in local] == [
        "bash install.sh && snakemake a.png   # set up",
        "snakemake -n --until collect",
        "snakemake teardown",
    ]
    assert [c.source for c in local] == ["page.md:5", "page.md:8", "page.md:22"]
    assert [c.text for c in commands(page, "aws")] == ["snakemake --profile aws"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- commands: local -->\n\nplain text\n", r"page.md:1: expected a code block .* got 'plain text' on line 3"),
        ("<!-- commands: local -->\n", r"page.md:1: expected a code block after the marker, found the end"),
        ("<!-- commands: local -->\n```\nsnakemake\n", r"page.md:1: the fenced code block .* is never closed"),
        ("<!-- commands: local -->\n    snakemake \\\n", r"page.md:2: the command ends with a backslash"),
    ],
)
def test_a_broken_marked_block_is_named(tmp_path, text, message):
    page = tmp_path / "page.md"
    page.write_text(text)
    with pytest.raises(MarkdownError, match=message):
        commands(page)


def test_the_readme_marks_the_everyday_commands():
    """What the fresh-install test asserts before it starts a container, checked in seconds."""
    lines = [command_line(c) for c in marked_commands()]
    for what, pattern in REQUIRED.items():
        assert any(re.search(pattern, x) for x in lines), f"README.md marks no command for {what}: {lines}"
    assert re.search(REQUIRED["set-up and the main job"], lines[0])
    assert not [x for x in lines if "--profile" in x], "a marked command names a remote profile"

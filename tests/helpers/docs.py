"""The examples in the README and docs/: each ``bash`` block, and the output block that follows it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from churn.settings import PROJECT_DIR

DOCUMENTS = sorted([PROJECT_DIR / "README.md", *PROJECT_DIR.glob("docs/*.md"), PROJECT_DIR / "benchmarks/README.md"])
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Example:
    """A command block of a document, and what the document says it prints (``None``: only that it succeeds)."""

    document: Path
    line: int
    commands: str
    output_language: str | None
    output: str | None

    @property
    def name(self) -> str:
        """Where the example is, for test ids."""
        return f"{self.document.relative_to(PROJECT_DIR)}:{self.line}"


def examples(document: Path) -> list[Example]:
    """The ``bash`` blocks of ``document``, each with the fenced block right after it when one follows."""
    text = document.read_text(encoding="utf-8")
    blocks = list(FENCE.finditer(text))
    found = []
    for index, block in enumerate(blocks):
        if block.group(1) != "bash":
            continue
        after = blocks[index + 1] if index + 1 < len(blocks) else None
        follows = after is not None and not text[block.end() : after.start()].strip() and after.group(1) != "bash"
        found.append(
            Example(
                document,
                text.count("\n", 0, block.start()) + 1,
                block.group(2),
                after.group(1) if follows else None,
                after.group(2) if follows else None,
            )
        )
    return found

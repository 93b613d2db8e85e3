"""How the commands lay out ``--help``: paragraphs are wrapped to the terminal, and a
block with indented lines (exit status, examples, files) is kept as written.  The man
pages are made from the same texts (``smss.manpages``)."""

from __future__ import annotations

import argparse
import textwrap


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks = []
        for block in text.strip("\n").split("\n\n"):
            if any(line[:1].isspace() for line in block.splitlines()):
                blocks.append(textwrap.indent(block, indent))
            else:
                blocks.append(textwrap.fill(" ".join(block.split()), width,
                                            initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(blocks)

"""Shell completion of every command's subcommands and options, by argcomplete.

Each command's ``main`` hands its parser to ``enable`` before parsing: when the
shell asks for completions (argcomplete sets ``_ARGCOMPLETE``), argcomplete
answers from the parser and exits; otherwise nothing happens.  Turn it on with
``eval "$(register-python-argcomplete smss)"`` (likewise for ``check_and_send``
and ``smss-modem-sim``) or argcomplete's global activation (the modules carry
the ``PYTHON_ARGCOMPLETE_OK`` marker it looks for).
"""

from __future__ import annotations

import argparse
import os


def enable(parser: argparse.ArgumentParser) -> None:
    if "_ARGCOMPLETE" not in os.environ:
        return  # not a completion request: no import, no cost
    import argcomplete

    argcomplete.autocomplete(parser)

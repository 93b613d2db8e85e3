"""Small helpers shared by the command modules: parameter parsing with the right error."""

from __future__ import annotations

from typing import List, Optional

from smss.sim.atparse import AtSyntaxError, Command, split_args
from smss.sim.results import AtError, plain


def args(command: Command, error: Optional[AtError] = None) -> List[Optional[str]]:
    try:
        return split_args(command.args)
    except AtSyntaxError:
        raise error or plain() from None


def integer(value: Optional[str], low: int, high: int, error: Optional[AtError] = None,
            default: Optional[int] = None) -> int:
    """``value`` as an int within low..high; ``default`` when empty; else ``error``."""
    if value is None:
        if default is not None:
            return default
        raise error or plain()
    try:
        number = int(value.strip())
    except ValueError:
        raise error or plain() from None
    if not low <= number <= high:
        raise error or plain()
    return number


def arg(values: List[Optional[str]], position: int) -> Optional[str]:
    return values[position] if position < len(values) else None

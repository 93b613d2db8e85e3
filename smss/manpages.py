"""The man pages and the configuration reference tables, made from their one source.

``smss(8)``, ``check_and_send(8)``, ``smss-client(1)`` and ``smss-modem-sim(1)`` come
from the programs' argparse parsers (description, each option's help, each subcommand,
and the epilog's ``exit status:``, ``environment:``, ``files:`` and ``examples:``
blocks); ``smss.conf(5)`` from the KEYS table in ``smss.config`` and the prose of
docs/configuration.md, whose tables are generated from KEYS too.  The pages are mdoc(7).

    python3 -m smss.manpages          # rewrite man/*.[158] and the tables in the manual
    python3 -m smss.manpages --check  # exit 1 when any of them is out of date (CI)
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
import textwrap
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from smss.config import KEYS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAN_DIR = os.path.join(ROOT, "man")
REFERENCE = os.path.join(ROOT, "docs", "configuration.md")
TABLES_BEGIN = ("<!-- The tables below are generated from KEYS in smss/config.py by "
                "`python3 -m smss.manpages`: change the KEYS, not the tables. -->")
TABLES_END = "<!-- end of the generated tables -->"


def _parser(module: str) -> Callable[[], argparse.ArgumentParser]:
    def build() -> argparse.ArgumentParser:
        import importlib

        return importlib.import_module(module).build_parser()

    return build


# name, section, what it is (NAME line), where its parser is built
PROGRAMS: Tuple[Tuple[str, int, str, Callable[[], argparse.ArgumentParser]], ...] = (
    ("smss", 8, "SMS gateway spooler server and its administration commands",
     _parser("smss.cli")),
    ("check_and_send", 8, "send the smss queue and bring received SMS in",
     _parser("check_and_send.cli")),
    ("smss-client", 1, "hand SMS messages to an smss server", _parser("smss.clients.smss_client")),
    ("smss-modem-sim", 1, "GSM modem simulator for tests, demos and development",
     _parser("smss.sim.cli")),
)
PAGES = [(name, section) for name, section, _, _ in PROGRAMS] + [("smss.conf", 5)]


# --- roff text


def text(value: str) -> str:
    """Running text for a roff line: backslashes escaped, `code` in quotes, Markdown
    links reduced to their text."""
    value = value.replace("\\", "\\e")
    value = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", value)
    value = re.sub(r"\*\*([^*]+)\*\*", r"\1", value)
    value = re.sub(r"`([^`]+)`", r"\\(lq\1\\(rq", value)
    return value


def lines_of(paragraph: str) -> List[str]:
    """A paragraph as roff input lines: each sentence on a new line (mdoc's rule), lines
    of at most 80 bytes, none starting with a dot or an apostrophe."""
    flat = " ".join(paragraph.split())
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z(`\"])", flat)
    out = []
    for sentence in map(text, sentences):
        for line in textwrap.wrap(sentence, 80, break_long_words=False,
                                  break_on_hyphens=False):
            out.append("\\&" + line if line[:1] in ".'" else line)
    return out


def paragraphs(block: str) -> List[str]:
    out: List[str] = []
    for number, paragraph in enumerate(p for p in re.split(r"\n\s*\n", block) if p.strip()):
        if number:
            out.append(".Pp")
        out.extend(lines_of(paragraph))
    return out


# --- argparse


def _metavar(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    if action.option_strings:
        default = action.dest.upper()
    else:
        default = action.dest
    if action.nargs == 0:
        return ""
    return formatter._format_args(action, default)  # noqa: SLF001 - argparse's own words


def _flag(option: str, metavar: str) -> str:
    flag = "Fl " + option[1:]
    return f"{flag} Ar {metavar}" if metavar else flag


def _item(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    metavar = _metavar(action, formatter)
    if not action.option_strings:
        name = (action.metavar or action.dest).replace("'", "\\(aq")
        return f"Ar {name}" + (" No ..." if action.nargs in ("*", "+") else "")
    return " , ".join(_flag(option, metavar) for option in action.option_strings)


def _synopsis(parser: argparse.ArgumentParser, words: List[str]) -> List[str]:
    formatter = parser._get_formatter()  # noqa: SLF001
    out = [".Nm", *words]
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        metavar = _metavar(action, formatter)
        if action.option_strings:
            out.append(".Op " + _flag(action.option_strings[0], metavar))
        elif action.nargs == "?":
            out.append(f".Op Ar {action.metavar or action.dest}")
        elif action.nargs == "*":
            out.append(f".Op Ar {action.metavar or action.dest} ...")
        else:
            out.append(f"Ar {metavar}" if not metavar.startswith("[") else f".Op Ar {metavar}")
    fixed = []
    for line in out:  # a bare "Ar X" continues the macro line before it
        if line.startswith("Ar ") and fixed:
            fixed.append("." + line)
        else:
            fixed.append(line)
    return fixed


def _options(parser: argparse.ArgumentParser) -> List[str]:
    formatter = parser._get_formatter()  # noqa: SLF001
    out = [".Bl -tag -width Ds"]
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        out.append(".It " + _item(action, formatter))
        help_text = action.help or ""
        if "%(" in help_text:
            help_text = help_text % dict(vars(action), prog=parser.prog)
        out.extend(lines_of(help_text[:1].upper() + help_text[1:] + (
            "." if help_text and not help_text.endswith(".") else "")))
    out.append(".El")
    return out


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[Tuple[str, argparse.ArgumentParser,
                                                                    str]]:
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}  # noqa: SLF001
            for name, sub in action.choices.items():
                yield name, sub, helps.get(name) or ""


def _epilog(epilog: str) -> Tuple[List[str], Dict[str, List[Tuple[str, str]]]]:
    """(prose paragraphs, {heading: [(tag or "", text)]}) of an epilog."""
    prose: List[str] = []
    sections: Dict[str, List[Tuple[str, str]]] = {}
    for block in re.split(r"\n\s*\n", epilog.strip("\n")):
        current: Optional[str] = None
        for line in block.splitlines():
            heading = re.fullmatch(r"([a-z][a-z ]*):", line)
            if heading:
                current = heading.group(1)
                sections.setdefault(current, [])
            elif current is None:
                prose.append(line)
            elif re.match(r"^\s{1,4}\S+(\s\S+)*?\s{2,}\S", line) and current != "examples":
                tag, rest = re.split(r"\s{2,}", line.strip(), maxsplit=1)
                sections[current].append((tag, rest))
            elif sections[current] and line.startswith("      ") and current != "examples":
                tag, rest = sections[current][-1]
                sections[current][-1] = (tag, rest + " " + line.strip())
            else:
                sections[current].append(("", line.strip()))
        prose.append("")
    return ["\n".join(prose)], sections


def _tagged(items: List[Tuple[str, str]], literal: bool = False) -> List[str]:
    if literal:
        return [".Bd -literal -offset indent"] + [
            ("\\&" if body[:1] in ".'" else "") + body.replace("\\", "\\e") for _, body in items
        ] + [".Ed"]
    if not any(tag for tag, _ in items):
        return paragraphs(" ".join(body for _, body in items))
    out = [".Bl -tag -width Ds -compact"]
    for tag, body in items:
        if tag:
            out.append(f".It {'Ev' if tag.isupper() and '_' in tag else 'Li'} {text(tag)}")
        out.extend(lines_of(body))
    return out + [".El"]


SECTION_NAMES = {"exit status": "EXIT STATUS", "environment": "ENVIRONMENT", "files": "FILES",
                 "examples": "EXAMPLES"}
ORDER = ("ENVIRONMENT", "FILES", "EXIT STATUS", "EXAMPLES")


def _header(name: str, section: int, date: str) -> List[str]:
    return [f".Dd {date}", f".Dt {name.upper()} {section}", ".Os"]


def _see_also(name: str) -> List[str]:
    others = sorted((page for page in PAGES if page[0] != name),
                    key=lambda page: (page[1], page[0]))
    out = [".Sh SEE ALSO"]
    for number, (other, section) in enumerate(others):
        out.append(f".Xr {other} {section}" + (" ," if number < len(others) - 1 else ""))
    return out


def command_page(name: str, section: int, summary: str, parser: argparse.ArgumentParser,
                 date: str) -> str:
    out = _header(name, section, date)
    out += [".Sh NAME", f".Nm {name}", f".Nd {text(summary)}", ".Sh SYNOPSIS"]
    subcommands = list(_subcommands(parser))
    out += _synopsis(parser, [])
    if subcommands:
        out += [".Ar command", ".Op Ar arguments"]
    out += [".Sh DESCRIPTION"] + paragraphs(parser.description or "")
    prose, sections = _epilog(parser.epilog or "")
    if "".join(prose).strip():
        out += [".Pp"] + paragraphs(prose[0])
    for heading, items in sections.items():
        if heading not in SECTION_NAMES:
            out += [f".Ss {text(heading[:1].upper() + heading[1:])}"] + _tagged(items)
    out += [".Sh OPTIONS"] + _options(parser)
    if subcommands:
        out += [".Sh COMMANDS", ".Bl -tag -width Ds"]
        for command, sub, help_text in subcommands:
            out += _command_item(command, sub, help_text)
        out += [".El"]
    for title in ORDER:
        for heading, items in sections.items():
            if SECTION_NAMES.get(heading) == title:
                out += [f".Sh {title}"] + _tagged(items, literal=title == "EXAMPLES")
    out += _see_also(name)
    return "\n".join(out) + "\n"


def _command_item(command: str, sub: argparse.ArgumentParser, help_text: str) -> List[str]:
    formatter = sub._get_formatter()  # noqa: SLF001
    words = [f"Cm {command}"]
    for action in sub._actions:  # noqa: SLF001
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            words.append(f"Ar {_metavar(action, formatter)}".replace("[", "").replace("]", ""))
    out = [".It " + " ".join(words)]
    description = sub.description or (help_text[:1].upper() + help_text[1:] + ".")
    prose, sections = _epilog(description)
    out += paragraphs(prose[0])
    for heading, items in sections.items():
        out += [".Pp", f"{text(heading[:1].upper() + heading[1:])}:"] + _tagged(items)
    extra = [a for a in sub._actions  # noqa: SLF001
             if a.option_strings and a.dest not in ("help", "config")]
    if extra:
        out += [".Bl -tag -width Ds"]
        for action in extra:
            out.append(".It " + _item(action, formatter))
            out.extend(lines_of((action.help or "")[:1].upper() + (action.help or "")[1:] + "."))
        out += [".El"]
    nested = list(_subcommands(sub))
    if nested:
        out += [".Bl -tag -width Ds"]
        for name, child, child_help in nested:
            out += _command_item(name, child, child_help)
        out += [".El"]
    return out


# --- smss.conf(5) and the reference tables


def sections_in_order() -> List[Tuple[str, List[str]]]:
    order: Dict[str, List[str]] = {}
    for section, key in KEYS:
        order.setdefault(section, []).append(key)
    return list(order.items())


def reference_tables() -> str:
    """The configuration reference's tables, one per section, from KEYS."""
    out = []
    for section, keys in sections_in_order():
        out += [f"**[{section}]**", "", "| key | default | meaning |", "|---|---|---|"]
        for key in keys:
            spec = KEYS[(section, key)]
            default = f"`{spec.default}`" if spec.default else "(empty)"
            out.append(f"| `{key}` | {default} | {spec.doc.replace('|', '&#124;')} |")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def with_tables(document: str) -> str:
    """docs/configuration.md with its generated part replaced by today's tables."""
    if TABLES_BEGIN not in document or TABLES_END not in document:
        raise ValueError(f"{REFERENCE} lacks the markers of its generated tables")
    head, rest = document.split(TABLES_BEGIN, 1)
    _, tail = rest.split(TABLES_END, 1)
    return f"{head}{TABLES_BEGIN}\n\n{reference_tables()}\n{TABLES_END}{tail}"


def _reference_prose(document: str) -> str:
    """The manual's words about the file, before its tables (its title left out)."""
    head = document.split(TABLES_BEGIN, 1)[0]
    return "\n".join(line for line in head.splitlines() if not line.startswith("# "))


def config_page(document: str, date: str) -> str:
    out = _header("smss.conf", 5, date)
    out += [".Sh NAME", ".Nm smss.conf", ".Nd configuration file of the smss SMS gateway",
            ".Sh SYNOPSIS", ".Pa /etc/smss/smss.conf", ".Sh DESCRIPTION"]
    out += _markdown(_reference_prose(document))
    out += [".Sh KEYS"]
    for section, keys in sections_in_order():
        out += [f".Ss \\&[{section}\\&]\\&", ".Bl -tag -width Ds"]
        for key in keys:
            spec = KEYS[(section, key)]
            default = f"Li {text(spec.default)}" if spec.default else "No empty"
            out += [f".It Cm {key} Pq default: {default}"]
            out += lines_of(spec.doc[:1].upper() + spec.doc[1:] + ".")
        out += [".El"]
    out += [".Sh FILES", ".Bl -tag -width Ds", ".It Pa /etc/smss/smss.conf",
            "The configuration, unless", ".Fl c Ar FILE", "or", ".Ev SMSS_CONFIG",
            "names another file.", ".El"]
    out += _see_also("smss.conf")
    return "\n".join(out) + "\n"


def _markdown(markdown: str) -> List[str]:
    """Paragraphs, ``##`` headings and ``-`` lists of the manual's prose, as mdoc."""
    out: List[str] = []
    for block in (b for b in re.split(r"\n\s*\n", markdown) if b.strip()):
        if block.startswith("```"):
            body = block.strip("`\n").split("\n", 1)[-1] if "\n" in block else ""
            out += [".Bd -literal -offset indent"] + [
                ("\\&" if line[:1] in ".'" else "") + line.replace("\\", "\\e")
                for line in body.splitlines()] + [".Ed"]
            continue
        heading = re.match(r"^#+\s+(.*)$", block.strip())
        if heading:
            out.append(f".Ss {text(heading.group(1))}")
            continue
        items = re.split(r"^- ", block.strip(), flags=re.M)
        if block.strip().startswith("- "):
            out.append(".Bl -bullet")
            for item in items[1:]:
                out += [".It"] + lines_of(item)
            out.append(".El")
            continue
        if out and not out[-1].startswith(".Ss"):
            out.append(".Pp")
        out += lines_of(block)
    return out


# --- writing and checking


def pages(document: str, date: str) -> Dict[str, str]:
    found = {}
    for name, section, summary, build in PROGRAMS:
        found[f"{name}.{section}"] = command_page(name, section, summary, build(), date)
    found["smss.conf.5"] = config_page(document, date)
    return found


def _without_date(page: str) -> str:
    return re.sub(r"^\.Dd .*$", ".Dd", page, count=1, flags=re.M)


def stale(root: str = ROOT) -> List[str]:
    """The generated files that differ from what the sources make now (dates aside)."""
    found = []
    reference = os.path.join(root, "docs", "configuration.md")
    document = open(reference, encoding="utf-8").read()
    if with_tables(document) != document:
        found.append(os.path.relpath(reference, root))
    for filename, page in pages(document, "").items():
        path = os.path.join(root, "man", filename)
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        if _without_date(current) != _without_date(page):
            found.append(os.path.relpath(path, root))
    return found


def write(root: str = ROOT) -> List[str]:
    """Bring every generated file up to date; returns those it changed."""
    changed = stale(root)
    reference = os.path.join(root, "docs", "configuration.md")
    document = with_tables(open(reference, encoding="utf-8").read())
    with open(reference, "w", encoding="utf-8") as handle:
        handle.write(document)
    date = datetime.date.today().strftime("%B %-d, %Y")
    os.makedirs(os.path.join(root, "man"), exist_ok=True)
    for filename, page in pages(document, date).items():
        path = os.path.join(root, "man", filename)
        if os.path.relpath(path, root) in changed:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(page)
    return changed


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m smss.manpages",
                                     description="make the man pages and the configuration "
                                     "reference tables from their sources")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when a generated file is out of date")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"{path} is out of date: run python3 -m smss.manpages", file=sys.stderr)
        return 1 if out_of_date else 0
    for path in write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

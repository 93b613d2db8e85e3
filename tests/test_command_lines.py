"""Every command line the project shows people keeps working: the ones in the README, the
manual (docs/), the systemd units, the cron file and the client examples are parsed out
of those files (so a new one is covered as soon as it is written down) and each goes
through its program's argument parser; the documented exit codes are those of the real
programs; every subcommand has its own help."""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys
from typing import Iterator, List, Tuple

import pytest
from conftest import REPO

PROGRAMS = ("smss", "check_and_send", "smss-client", "smss-modem-sim")
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", "(", ")", ";;", "<", ">", ">>", "2>&1"}
# what the templates in the manual stand for
PLACEHOLDERS = {"FILE": "/etc/smss/smss.conf", "NAME": "alice", "CODE": "*100#",
                "HOST": "127.0.0.1", "PORT": "2021", "P": "2021", "C": "2022", "D": "demo",
                "SECONDS": "5", "RETRIES": "3", "PHONE": "+420608337726", "TEXT": "hello",
                "COMMAND": "status", "ROLE": "operator"}
ALTERNATIVE = "\x00"  # a `a\|b` in a Markdown table cell: one command line per choice
SHELL_FENCES = ("", "sh", "shell", "bash", "console")  # fenced blocks of shell lines
DRAWING = re.compile("[\u2500-\u257f]|-->")  # box-drawing: a diagram, not a shell line


def sources() -> Iterator[Tuple[str, str]]:
    """(where, text that may hold command lines) from every file that shows some."""
    markdown = [os.path.join(REPO, "README.md"), *sorted(glob.glob(os.path.join(REPO, "docs",
                                                                                "*.md")))]
    for path in markdown:
        name = os.path.relpath(path, REPO)
        text = open(path, encoding="utf-8").read()
        fenced = re.split(r"^```(.*)$", text, flags=re.M)  # text, info, block, info, text
        for number, chunk in enumerate(fenced):
            if number % 4 == 1:
                continue  # a fence's info string
            if number % 4 == 2:  # inside a fenced block: each line is a shell line
                info = fenced[number - 1].strip()
                if info == "ini":  # a systemd unit shown in the manual: its Exec lines
                    yield from ((name, line) for line in _exec_lines(chunk))
                if info not in SHELL_FENCES:
                    continue  # a configuration file, SQL, Python, a diagram
                for line in chunk.splitlines():
                    if not DRAWING.search(line):  # (not a diagram)
                        yield name, re.sub(r"^\s*\$ ", "", line)
            else:
                for span in re.findall(r"`([^`\n]+)`", chunk):
                    if span not in PROGRAMS:  # a program's name alone is no command line
                        yield name, span.replace("\\|", ALTERNATIVE)
    units = sorted(glob.glob(os.path.join(REPO, "systemd", "*")) +
                   glob.glob(os.path.join(REPO, "clients", "systemd", "*")))
    for path in units:
        name = os.path.relpath(path, REPO)
        text = open(path, encoding="utf-8").read()
        yield from ((name, line) for line in _exec_lines(text))
        for line in text.splitlines():
            line = line.strip()
            if name.endswith(".cron") and line and not line.startswith("#") and "=" not in line:
                yield name, " ".join(line.split()[6:])  # five time fields, then the user


def _exec_lines(unit: str) -> Iterator[str]:
    """The command lines of a systemd unit's ExecStart= (and the like) settings."""
    for line in unit.splitlines():
        line = line.strip()
        if line.startswith(("ExecStart=", "ExecStartPre=", "ExecStop=", "ExecReload=")):
            yield line.split("=", 1)[1].lstrip("-@:+!")


def lex(text: str) -> List[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote in prose: not a command line
        return []


def commands(text: str) -> Iterator[List[str]]:
    """The argument vectors of our programs in one shell line (also inside ``sh -c '…'``)."""
    tokens = lex(text)
    at_start = True
    for index, token in enumerate(tokens):
        if token in SHELL_OPERATORS or token in ("{", "}", "||", "then", "do"):
            at_start = True
            continue
        if index and tokens[index - 1] == "-c" and os.path.basename(
                tokens[index - 2] if index > 1 else "") in ("sh", "bash"):
            yield from commands(token)
        program = re.sub(r"^(/[\w/]*/s?bin/)", "", token)  # /usr/local/bin/smss: smss
        man_page = tokens[index + 1:index + 2] == ["("]  # smss(8): a man page, no command
        if at_start and program in PROGRAMS and not man_page:
            argv = [program]
            for word in tokens[index + 1:]:
                if word in SHELL_OPERATORS:
                    break
                argv.append(word)
            yield argv
        at_start = token.endswith("=") and "=" in token and not token.startswith("-")


def expand(argv: List[str]) -> Iterator[List[str]]:
    """A template as concrete command lines: optional parts taken, `...` and `[options]`
    dropped, placeholders filled in, one line per `a|b` alternative."""
    words: List[str] = []
    for word in argv[1:]:
        if word in ("[options]", "...", "[...]") or word.endswith("...]") and word.startswith("["):
            continue
        word = word.strip("[]") if not word.startswith("'") else word
        if word in ("", "..."):
            continue
        words.append(PLACEHOLDERS.get(word, word))
    choices = [i for i, word in enumerate(words) if ALTERNATIVE in word or (
        "|" in word and re.fullmatch(r"[a-z|]+", word))]
    if not choices:
        yield [argv[0], *words]
        return
    first = choices[0]
    for option in re.split(f"[|{ALTERNATIVE}]", words[first]):
        yield from expand([argv[0], *words[:first], option, *words[first + 1:]])


def documented() -> List[Tuple[str, List[str]]]:
    found, seen = [], set()
    for where, text in sources():
        for argv in commands(text):
            for line in expand(argv):
                if (where, tuple(line)) not in seen:
                    seen.add((where, tuple(line)))
                    found.append((where, line))
    return found


DOCUMENTED = documented()


def parser_of(program: str):
    if program == "smss":
        from smss.cli import build_parser
    elif program == "check_and_send":
        from check_and_send.cli import build_parser
    elif program == "smss-client":
        from smss.clients.smss_client import build_parser
    else:
        from smss.sim.cli import build_parser
    return build_parser()


def test_the_files_show_command_lines_of_every_program():
    shown = {argv[0] for _, argv in DOCUMENTED}
    assert shown == set(PROGRAMS)
    lines = [" ".join(argv) for _, argv in DOCUMENTED]
    for expected in ("smss -c /etc/smss/smss.conf run", "check_and_send -c /etc/smss/smss.conf",
                     "check_and_send -c /etc/smss/smss.conf --loop", "smss demo",
                     "smss user add admin", "smss ussd --via tg *100#"):
        assert expected in lines


@pytest.mark.parametrize("where, argv", DOCUMENTED,
                         ids=[f"{where}: {' '.join(argv)}" for where, argv in DOCUMENTED])
def test_a_documented_command_line_parses(where, argv):
    parser = parser_of(argv[0])
    parse = (parser.parse_intermixed_args if argv[0] == "smss-client" else parser.parse_args)
    try:
        parse(argv[1:])
    except SystemExit as exc:  # --help and --version exit 0; a usage error exits 2
        assert exc.code == 0, f"{where}: {' '.join(argv)} is refused"


def run(*argv, **kwargs):
    program = {"smss": "smss.cli", "check_and_send": "check_and_send.cli",
               "smss-client": "smss.clients.smss_client"}[argv[0]]
    return subprocess.run([sys.executable, "-m", program, *argv[1:]], capture_output=True,
                          text=True, timeout=120, **kwargs)


@pytest.fixture
def site(tmp_path):
    path = tmp_path / "smss.conf"
    path.write_text(f"[server]\npidfile = {tmp_path}/smss.pid\n"
                    f"[database]\nurl = sqlite://{tmp_path}/smss.db\n"
                    f"[dispatcher]\nlockfile = {tmp_path}/lock\n")
    return str(path)


def test_the_config_option_before_and_after_the_command(site):
    before = run("smss", "-c", site, "status")
    after = run("smss", "status", "-c", site)
    assert before.returncode == after.returncode == 3  # not running (LSB)
    assert before.stdout == after.stdout
    assert before.stdout.startswith("smss: not running\n")


@pytest.mark.parametrize("argv, code, says", [
    (["smss", "bogus"], 2, "invalid choice: 'bogus'"),
    (["smss"], 2, "usage: smss"),
    (["smss", "run", "extra"], 2, "unrecognized arguments: extra"),
    (["smss", "ussd"], 2, "ussd takes one CODE"),
    (["smss", "user", "frob", "x"], 2, "invalid choice: 'frob'"),
    (["smss", "-c", "/nonexistent/smss.conf", "status"], 1, "no such file"),
    (["smss", "--version"], 0, "smss "),
    (["check_and_send", "--bogus"], 2, "unrecognized arguments: --bogus"),
    (["check_and_send", "-c", "/nonexistent/smss.conf"], 2, "no such file"),
    (["smss-client", "-p", "0", "#1;x"], 2, "port out of range"),
])
def test_exit_codes(argv, code, says):
    done = run(*argv)
    assert done.returncode == code, done.stderr
    assert says in done.stdout + done.stderr


@pytest.mark.parametrize("command, has, lacks", [
    ("demo", ["--port", "--control-port", "--dir"], ["--via", "CODE"]),
    ("ussd", ["--via", "--timeout", "CODE"], ["--port", "--dir"]),
    ("user", ["add", "passwd", "delete", "list"], ["--port", "--via"]),
    ("run", ["--config"], ["--port", "--via", "--dir"]),
    ("doctor", ["--via", "gammu identify"], ["--port", "--dir", "CODE"]),
    ("check", ["section and key", "exit status"], ["--via", "--port"]),
])
def test_each_command_has_its_own_help(command, has, lacks):
    done = run("smss", command, "--help")
    assert done.returncode == 0
    for text in has:
        assert text in done.stdout
    for text in lacks:
        assert text not in done.stdout


def test_the_general_help_lists_commands_not_their_options():
    done = run("smss", "--help")
    assert done.returncode == 0
    for command in ("run", "start", "stop", "status", "migrate", "check", "doctor", "demo",
                    "web", "user", "token", "ussd"):
        assert re.search(rf"^\s+{command}\s", done.stdout, re.M), command
    for option in ("--via", "--dir", "--port", "--control-port"):
        assert option not in done.stdout

"""The simulated Android shell's language: a command line split into `SimpleCommand` s (`parse_command_line`).

Words with '…', "…" and backslash quoting, ``$?``/``$$``/``$VAR``/``${VAR}``, ``NAME=value``, ``*``/``?``/``[…]``
globs (kept for the shell to expand), ``;``, ``&&``, ``||``, ``#`` comments, and the redirections ``>``, ``>>``,
``2>``, ``2>&1`` and ``<``. Expansion and running are `firmware_sim.phone.shell`'s.

What it does NOT model: pipes, background jobs, command substitution (each a `ShellSyntaxError` saying so),
here-documents, functions, control structures (if, for, while), arithmetic.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.core.errors import DtgHilError

__all__ = ["GLOB_CHARS", "ShellSyntaxError", "SimpleCommand", "Word", "parse_command_line"]


class ShellSyntaxError(DtgHilError, ValueError):
    """A command line the simulated shell cannot parse (or uses syntax it does not support)."""


@dataclass(frozen=True)
class _Part:
    kind: str  # "lit" or "var"
    text: str
    quoted: bool


Word = tuple[_Part, ...]


@dataclass(frozen=True)
class _Redirect:
    fd: int  # 0, 1 or 2
    op: str  # "<", ">", ">>" or ">&"
    target: Word


@dataclass
class SimpleCommand:
    """A command of a command line, its words still unexpanded (``$?`` is read when it runs)."""

    words: list[Word] = field(default_factory=list)
    redirects: list[_Redirect] = field(default_factory=list)


GLOB_CHARS = "*?["


def _lex(line: str) -> list[tuple]:
    """Tokens: ("word", parts), ("op", text) and ("redir", fd, op)."""
    tokens: list[tuple] = []
    parts: list[_Part] = []
    in_word = False
    i, n = 0, len(line)

    def flush() -> None:
        nonlocal parts, in_word
        if in_word:
            tokens.append(("word", tuple(parts)))
        parts, in_word = [], False

    def add(kind: str, text: str, quoted: bool) -> None:
        nonlocal in_word
        in_word = True
        if kind == "lit" and parts and parts[-1].kind == "lit" and parts[-1].quoted == quoted:
            parts[-1] = _Part("lit", parts[-1].text + text, quoted)
        else:
            parts.append(_Part(kind, text, quoted))

    def variable(start: int, quoted: bool) -> int:
        """Parse after a '$' at `start`; returns the index after it."""
        if start < n and line[start] in "?$":
            add("var", line[start], quoted)
            return start + 1
        if start < n and line[start] == "{":
            end = line.find("}", start)
            if end < 0:
                raise ShellSyntaxError("${: bad substitution")
            add("var", line[start + 1:end], quoted)
            return end + 1
        match = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(line, start)
        if match:
            add("var", match.group(), quoted)
            return match.end()
        add("lit", "$", quoted)
        return start

    while i < n:
        c = line[i]
        if c in " \t":
            flush()
            i += 1
        elif c in ";\n":
            flush()
            tokens.append(("op", ";"))
            i += 1
        elif c == "#" and not in_word:
            end = line.find("\n", i)
            i = n if end < 0 else end
        elif c in "&|":
            flush()
            op = c * 2 if line.startswith(c * 2, i) else c
            tokens.append(("op", op))
            i += len(op)
        elif c in "<>":
            fd = 1
            if c == ">" and in_word and len(parts) == 1 and parts[0].kind == "lit" and not parts[0].quoted \
                    and parts[0].text in ("1", "2"):
                fd = int(parts[0].text)
                parts, in_word = [], False
            flush()
            if c == "<":
                tokens.append(("redir", 0, "<"))
                i += 1
            elif line.startswith(">>", i):
                tokens.append(("redir", fd, ">>"))
                i += 2
            elif line.startswith(">&", i):
                tokens.append(("redir", fd, ">&"))
                i += 2
            else:
                tokens.append(("redir", fd, ">"))
                i += 1
        elif c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated quoted string")
            add("lit", line[i + 1:end], True)
            i = end + 1
        elif c == '"':
            i += 1
            in_word = True
            while True:
                if i >= n:
                    raise ShellSyntaxError("unterminated quoted string")
                d = line[i]
                if d == '"':
                    i += 1
                    break
                if d == "\\" and i + 1 < n and line[i + 1] in '$`"\\\n':
                    add("lit", line[i + 1], True)
                    i += 2
                elif d == "$":
                    i = variable(i + 1, True)
                elif d == "`":
                    raise ShellSyntaxError("command substitution is not supported by the simulated shell")
                else:
                    add("lit", d, True)
                    i += 1
        elif c == "\\":
            if i + 1 < n:
                if line[i + 1] != "\n":
                    add("lit", line[i + 1], True)
                i += 2
            else:
                add("lit", "\\", False)
                i += 1
        elif c == "$":
            if line.startswith("$(", i):
                raise ShellSyntaxError("command substitution is not supported by the simulated shell")
            i = variable(i + 1, False)
        elif c == "`":
            raise ShellSyntaxError("command substitution is not supported by the simulated shell")
        else:
            add("lit", c, False)
            i += 1
    flush()
    return tokens


def parse_command_line(line: str) -> list[tuple[str, SimpleCommand]]:
    """Split a command line into simple commands, each with the connector before it ("", ";", "&&", "||").

    >>> [(c, len(cmd.words)) for c, cmd in parse_command_line("ls /x; echo X4EXIT:$?")]
    [('', 2), (';', 2)]
    """
    commands: list[tuple[str, SimpleCommand]] = []
    connector = ""
    current = SimpleCommand()
    tokens = _lex(line)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token[0] == "word":
            current.words.append(token[1])
        elif token[0] == "redir":
            if index + 1 >= len(tokens) or tokens[index + 1][0] != "word":
                raise ShellSyntaxError("syntax error: redirection without a target")
            current.redirects.append(_Redirect(token[1], token[2], tokens[index + 1][1]))
            index += 1
        else:
            op = token[1]
            if op not in (";", "&&", "||"):
                raise ShellSyntaxError(f"'{op}' (pipes, background jobs) is not supported by the simulated shell")
            if not current.words and not current.redirects:
                raise ShellSyntaxError(f"syntax error: '{op}' unexpected")
            commands.append((connector, current))
            connector, current = op, SimpleCommand()
        index += 1
    if current.words or current.redirects:
        commands.append((connector, current))
    elif connector in ("&&", "||"):
        raise ShellSyntaxError(f"syntax error: unexpected end of line after '{connector}'")
    return commands

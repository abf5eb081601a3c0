"""Path globs matched in linear time: ``*`` and ``?`` stay inside one folder, ``**/`` spans folders (zero or more),
``**`` spans anything, ``[...]`` is a class (``[!...]`` negated).

A regular expression would backtrack: ``exports/*-*-*-*-*.csv`` against a name of 250 dashes took 17.6 s per event,
and webhook path globs run before the signature check. Here the glob is a small automaton and a name is read once,
keeping the set of states it could be in: at most len(name) × len(glob) steps, whatever either holds.

Each literal run of the glob must appear in the name as it is (the first at its start, the last at its end), so a name
that lacks one is refused by ``str`` methods before the automaton runs: the built-in ignore globs (``*.tmp``,
``**/_temporary/**``, ...) are tried on every storage event, and in Python the automaton costs ~25 µs a glob.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

# Token kinds: a literal character, any character but '/', a class, '*' (a run without '/'), '**' (any run), and the
# two halves of '**/' (an optional run of folders): ENTER may skip it, FOLDERS reads any run ending in '/'.
_LITERAL, _ONE, _CLASS, _STAR, _ANY, _ENTER, _FOLDERS = range(7)


@dataclass(frozen=True)
class Glob:
    """One compiled glob; ``fullmatch(name)`` is truthy when the whole name matches, ``pattern`` is the glob."""

    pattern: str
    _tokens: tuple[tuple[int, str | re.Pattern[str] | None], ...] = field(init=False, repr=False, compare=False)
    # What every matching name holds: the literal run the glob starts with, the one it ends with, and every one.
    _prefix: str = field(init=False, repr=False, compare=False)
    _suffix: str = field(init=False, repr=False, compare=False)
    _runs: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tokens = tuple(_tokens(self.pattern))
        runs: list[str] = []
        for literal, group in itertools.groupby(tokens, key=lambda token: token[0] == _LITERAL):
            if literal:
                runs.append("".join(str(value) for _, value in group))
        object.__setattr__(self, "_tokens", tokens)
        object.__setattr__(self, "_prefix", runs[0] if tokens and tokens[0][0] == _LITERAL else "")
        object.__setattr__(self, "_suffix", runs[-1] if tokens and tokens[-1][0] == _LITERAL else "")
        object.__setattr__(self, "_runs", tuple(sorted(set(runs), key=len, reverse=True)))

    def _closure(self, states: set[int]) -> set[int]:
        """``states`` plus every state reachable without reading a character."""
        todo, seen = list(states), set(states)
        while todo:
            i = todo.pop()
            if i >= len(self._tokens):
                continue
            kind = self._tokens[i][0]
            nexts = (i + 1,) if kind in (_STAR, _ANY) else (i + 1, i + 2) if kind == _ENTER else ()
            for j in nexts:
                if j not in seen:
                    seen.add(j)
                    todo.append(j)
        return seen

    def fullmatch(self, name: str) -> bool:
        if not (name.startswith(self._prefix) and name.endswith(self._suffix)):
            return False
        if any(run not in name for run in self._runs):
            return False
        return self._run(name)

    def _run(self, name: str) -> bool:
        """The automaton: one pass over ``name``."""
        tokens = self._tokens
        states = self._closure({0})
        for char in name:
            moved: set[int] = set()
            for i in states:
                if i >= len(tokens):
                    continue
                kind, value = tokens[i]
                if (kind == _LITERAL and char == value) or (kind == _ONE and char != "/"):
                    moved.add(i + 1)
                elif kind == _CLASS and isinstance(value, re.Pattern) and value.fullmatch(char):
                    moved.add(i + 1)
                elif (kind == _STAR and char != "/") or kind == _ANY:
                    moved.add(i)
                elif kind == _FOLDERS:
                    moved.add(i)
                    if char == "/":
                        moved.add(i + 1)
            if not moved:
                return False
            states = self._closure(moved)
        return len(tokens) in states


def _tokens(pattern: str) -> list[tuple[int, str | re.Pattern[str] | None]]:
    out: list[tuple[int, str | re.Pattern[str] | None]] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += [(_ENTER, None), (_FOLDERS, None)]
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append((_ANY, None))
            i += 2
            continue
        if c == "*":
            out.append((_STAR, None))
        elif c == "?":
            out.append((_ONE, None))
        elif c == "[" and pattern.find("]", i + 1) != -1:
            end = pattern.find("]", i + 1)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append((_CLASS, re.compile(f"[{'^' + body[1:] if body.startswith('!') else body}]", re.DOTALL)))
            i = end
        else:
            out.append((_LITERAL, c))
        i += 1
    return out

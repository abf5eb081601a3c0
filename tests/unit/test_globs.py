"""globs.Glob agrees with the regular expression the globs used to compile to (kept here as the oracle), and stays
linear where that expression backtracked."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagtrigger.globs import Glob


def _oracle(pattern: str) -> re.Pattern[str]:
    """The former rules.glob_to_regex, verbatim."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append(f"[{'^' + body[1:] if body.startswith('!') else body}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


patterns = st.lists(
    st.sampled_from(["a", "b", "/", "*", "**", "**/", "?", "[ab]", "[!a]", "-", ".", "ab", "a/b"]), max_size=8
)
names = st.text(alphabet="ab/-.c", max_size=12)


@settings(max_examples=600, deadline=None)
@given(parts=patterns, name=names)
def test_glob_agrees_with_the_regex_it_replaces(parts: list[str], name: str) -> None:
    pattern = "".join(parts)
    assert Glob(pattern).fullmatch(name) is bool(_oracle(pattern).fullmatch(name))


def test_no_backtracking() -> None:
    glob = Glob("exports/*-*-*-*-*-*-*-*.csv")
    assert not glob.fullmatch("exports/" + "-" * 5000)  # steps ≤ len(name) × len(glob); the regex never returned
    assert glob.fullmatch("exports/" + "-" * 5000 + ".csv")
    assert not glob.fullmatch("exports/" + "-" * 5000 + "/.csv")  # every literal there: the automaton decides


def test_a_name_without_the_globs_literals_skips_the_automaton(monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in ignore globs run on every storage event: a name lacking a glob's literal run (its start, its end,
    or one in between) is refused by str methods, never by the Python automaton (~25 µs a glob)."""
    steps: list[int] = []
    closure = Glob._closure

    def counted(self: Glob, states: set[int]) -> set[int]:
        steps.append(len(states))
        return closure(self, states)

    monkeypatch.setattr(Glob, "_closure", counted)
    name = "incoming/2026/12/06/orders-000001.csv"
    for pattern in ("*.tmp", "**/*.tmp", "_temporary/**", "**/_temporary/**", "**/.~*", "gcloud/tmp/**"):
        assert not Glob(pattern).fullmatch(name)
    assert steps == []
    assert Glob("incoming/**/*.csv").fullmatch(name)  # the automaton still decides when every literal is there
    assert steps
    assert not Glob("incoming/*-*.csv").fullmatch(name)


def test_literals_present_but_out_of_place_still_refused() -> None:
    assert not Glob("ab*ba").fullmatch("aba")  # prefix and suffix overlap: both present, no match
    assert not Glob("a/*b*c").fullmatch("a/c/b/c")  # every run is in the name, but * stays inside one folder
    assert Glob("**/x/**").fullmatch("a/x/b") and not Glob("**/x/**").fullmatch("ax/b")

"""Keep the documentation honest.

1. Every command line in README.md and docs/*.md that starts with ``minvert `` inside a
   ```bash block must parse with minvert's own argparse parser and select a sub-command
   (a wrong or renamed flag fails here, not in a reader's terminal).
2. Every relative Markdown link in those files must point to an existing file.
3. Every code reference written ``minvert/<file>.py::<name>`` (or ``tests/...::<name>``,
   dotted for methods: ``Class.method``) must name a file that exists and defines that name.
4. README's test command for the strict CuPy stand-in works as printed, from any folder.
"""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from minvert.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent

def _doc_files():
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def _rel(path):
    return path.relative_to(ROOT).as_posix()


# -- 1. commands --------------------------------------------------------------------------
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


def _bash_commands(path):
    """(line number, command) for each `minvert ...` line in ```bash blocks; `\\` continues."""
    out, lang, pending, start = [], None, "", 0
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE.match(line)
        if m:
            lang = None if lang is not None else m.group(2).lower()
            pending = ""
            continue
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        text = line.strip()
        if lang == "console" and text.startswith("$ "):
            text = text[2:]
        if pending:
            text = pending + " " + text
        else:
            start = no
        if text.endswith("\\"):
            pending = text[:-1].rstrip()
            continue
        pending = ""
        if text.startswith("minvert "):
            out.append((start, text))
    return out


COMMANDS = [(f"{_rel(p)}:{no}", cmd) for p in _doc_files() for no, cmd in _bash_commands(p)]


def test_the_docs_contain_commands():
    assert len(COMMANDS) > 20, "the extraction of ```bash commands found almost nothing"


@pytest.mark.parametrize("where,command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where, command):
    argv = shlex.split(command, comments=True)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        if e.code == 0 and {"-h", "--help", "--version"} & set(argv):
            return
        pytest.fail(f"{where}: `{command}` does not parse (argparse exit {e.code}; see stderr above)")
    assert getattr(args, "handler", None) is not None, \
        f"{where}: `{command}` names no complete sub-command"


# -- 2. links -----------------------------------------------------------------------------
FENCED_BLOCK = re.compile(r"^\s*```.*?^\s*```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _links(path):
    text = FENCED_BLOCK.sub("", path.read_text(encoding="utf-8"))
    text = INLINE_CODE.sub("code", text)
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http(s):, mailto:, or an anchor in the same page
        yield target.split("#", 1)[0]


LINKS = [(_rel(p), t) for p in _doc_files() for t in _links(p)]


def test_the_docs_contain_links():
    assert len(LINKS) > 20


@pytest.mark.parametrize("doc,target", LINKS, ids=[f"{d}->{t}" for d, t in LINKS])
def test_relative_link_points_to_an_existing_file(doc, target):
    resolved = (ROOT / doc).parent / target
    try:
        key = resolved.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        pytest.fail(f"{doc}: link {target} leaves the repository")
    assert resolved.exists(), f"{doc}: link {target} -> {key} does not exist"


# -- 3. code references -------------------------------------------------------------------
CODE_REF = re.compile(r"((?:minvert|tests)/[\w/]+\.py)::([A-Za-z_][\w.]*)")


def _defines(source, name):
    return re.search(rf"^\s*(?:def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*[:=]",
                     source, re.M) is not None


REFS = sorted({(_rel(p), f, n) for p in _doc_files()
               for f, n in CODE_REF.findall(p.read_text(encoding="utf-8"))})


@pytest.mark.parametrize("doc,file,name", REFS, ids=[f"{f}::{n}" for _, f, n in REFS])
def test_code_reference_exists(doc, file, name):
    path = ROOT / file
    assert path.is_file(), f"{doc}: {file} does not exist"
    source = path.read_text(encoding="utf-8")
    for part in name.split("."):
        assert _defines(source, part), f"{doc}: {file} defines no {part!r} (from {file}::{name})"


# -- 4. README's test command for the GPU stand-in ------------------------------------------
def _bash_lines(path):
    """Every line inside the ```bash blocks of ``path``."""
    out, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            inside = not inside and FENCE.match(line).group(2).lower() in ("bash", "sh", "shell")
            continue
        if inside:
            out.append(line.strip())
    return out


def test_readme_stand_in_command_works_as_printed_from_any_folder(tmp_path):
    found = [line for line in _bash_lines(ROOT / "README.md") if "MINVERT_DEVICE=gpu" in line]
    assert len(found) == 1, f"README should print the stand-in's test command once: {found}"
    words = shlex.split(found[0], comments=True)
    assignments = dict(w.split("=", 1) for w in words[:2])
    assert words[2:] == ["pytest"] and assignments["MINVERT_DEVICE"] == "gpu", found[0]
    # relative, it breaks in the tests' subprocesses that run in other folders (issue 23, item 3)
    assert assignments["PYTHONPATH"].startswith("$PWD/"), found[0]
    path = assignments["PYTHONPATH"].replace("$PWD", str(ROOT), 1)
    probe = subprocess.run([sys.executable, "-c", "import cupy; print(cupy.__file__)"], cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True,
                           timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()).resolve().is_relative_to(ROOT / "tests" / "strict_cupy")

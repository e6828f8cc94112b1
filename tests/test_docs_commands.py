"""Docs that run: every command line in a ``sh`` block of README.md and docs/*.md works as written.

The rule (README.md, "Tests"): every fenced block has a language tag; ``sh`` blocks are command
lines for a fresh shell at the repository root after ``make run`` has installed, with ``make run``
running in another shell; ``console-aws`` blocks need an AWS account or the production host and are
not run here.

How each line is covered:
- ``make run``: this test starts the stack with exactly that line (its own ALLEYCAT_PORT,
  ALLEYCAT_AWS_PORT and ALLEYCAT_VAR_DIR, no demo simulator), checks it serves, and stops it with
  Ctrl-C (SIGINT to its process group) at the end;
- ``make test``: what ``.ci/run`` runs (it cannot run inside itself);
- ``make sam-build`` (docs/deploy.md): ``tests/infra/test_lambda_build.py`` runs it;
- every other line: run with ``bash -c`` in a fresh environment (PATH, HOME, locale and the stack's
  three location variables only: no DJANGO_*, no AWS_*); it must exit 0 within its timeout, or, for
  the long-running lines listed in ``LONG_RUNNING``, still be running after a while with the
  expected output, and stop cleanly on Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, interrupt_group

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_TAGS = {"sh", "bash", "shell", "console"}
SKIPPED_TAGS = {"console-aws"}  # needs an AWS account or the production host
NOT_COMMANDS = {"text", "python", "json", "jsonc", "yaml", "toml", "ini", "html", "javascript", "js", "css", "diff"}
COVERED_ELSEWHERE = {
    "make run": "this test's stack fixture",
    "make test": ".ci/run",
    "make sam-build": "tests/infra/test_lambda_build.py",
}
# Long-running lines: started, checked after a while for this output, then stopped with Ctrl-C.
LONG_RUNNING = {
    "--demo": "Demo simulator:",
    "--racers 1000 --race 1": "Race 1 (",
}
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    tag: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    path: Path
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.text}"


def code_blocks(path: Path) -> list[Block]:
    blocks, current, start, tag, fence = [], None, 0, "", ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = FENCE.match(line)
        if current is None and match:
            current, start, fence, tag = [], number, match.group(1), match.group(2).lower()
        elif current is not None and line.strip().startswith(fence) and line.strip() == fence:
            blocks.append(Block(path, start, tag, tuple(current)))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def commands(blocks: list[Block]) -> list[Command]:
    """Command lines of the ``sh`` blocks: comments stripped, ``\\`` continuations joined."""
    found: list[Command] = []
    for block in blocks:
        if block.tag not in COMMAND_TAGS:
            continue
        pending = ""
        for offset, raw in enumerate(block.lines, start=1):
            line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
            line = line.removeprefix("$ ")
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            text = (pending + line).strip()
            pending = ""
            if text:
                found.append(Command(block.path, block.line + offset, text))
    return found


ALL_BLOCKS = [block for path in DOCS for block in code_blocks(path)]
ALL_COMMANDS = commands(ALL_BLOCKS)


def test_every_code_block_says_what_it_is():
    untagged = [f"{b.path.relative_to(ROOT)}:{b.line}" for b in ALL_BLOCKS if not b.tag]
    assert not untagged, f"tag these blocks (sh, console-aws, text, ...): {untagged}"
    unknown = {b.tag for b in ALL_BLOCKS} - COMMAND_TAGS - SKIPPED_TAGS - NOT_COMMANDS
    assert not unknown, f"unknown code block tags {unknown}: add them to the rule in README.md and here"


def test_the_commands_are_found():
    texts = [command.text for command in ALL_COMMANDS]
    assert "make run" in texts and "make test" in texts
    assert ".venv/bin/python manage.py simulate --racers 25 --class 1 --seconds 60 --speed 10" in texts
    sample = code_blocks(Path(__file__))  # this file has no fences: nothing found
    assert sample == []


# --- running them -------------------------------------------------------------------------


def _fresh_env(stack: dict[str, str]) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {**{key: os.environ[key] for key in keep if key in os.environ}, **stack}


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, str]]:
    """``make run`` as the README shows it, on free ports and its own var dir, until the tests are done."""
    var_dir = Path(tempfile.mkdtemp(prefix="alleycat-docs-"))
    location = {
        "ALLEYCAT_PORT": str(free_port()),
        "ALLEYCAT_AWS_PORT": str(free_port()),
        "ALLEYCAT_VAR_DIR": str(var_dir),
        "SIMULATE": "0",  # the demo simulator line is run (and stopped) by itself below
    }
    log = (var_dir / "make-run.log").open("w")
    proc = subprocess.Popen(
        ["bash", "-c", "make run"],
        cwd=ROOT,
        env=_fresh_env(location),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        status = var_dir / "pipeline-status.json"
        while not (status.exists() and (var_dir / "stack.env").exists() and _serving(location)):
            assert proc.poll() is None, f"make run exited:\n{(var_dir / 'make-run.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"make run not up:\n{(var_dir / 'make-run.log').read_text()[-3000:]}"
            time.sleep(1)
        yield location
    finally:
        interrupt_group(proc)  # Ctrl-C
        log.close()
    assert not (var_dir / "stack.env").exists(), "make run leaves no stack.env behind"


def _serving(location: dict[str, str]) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{location['ALLEYCAT_PORT']}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _long_running(command: Command) -> str | None:
    return next((output for marker, output in LONG_RUNNING.items() if marker in command.text), None)


@pytest.mark.e2e
@pytest.mark.timeout(900)
@pytest.mark.parametrize("command", ALL_COMMANDS, ids=str)
def test_command_runs_as_written(command: Command, stack: dict[str, str], tmp_path: Path):
    if command.text in COVERED_ELSEWHERE:
        if command.text == "make run":
            assert _serving(stack)  # the fixture started it with this very line
        return
    env = _fresh_env(stack)
    output = tmp_path / "output.txt"
    with output.open("w") as sink:
        proc = subprocess.Popen(
            ["bash", "-c", command.text],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        expected = _long_running(command)
        if expected is None:
            try:
                code = proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise
            assert code == 0, f"{command} exited {code}:\n{output.read_text()[-3000:]}"
            return
        deadline = time.monotonic() + 90
        while expected not in output.read_text():
            assert proc.poll() is None, f"{command} exited {proc.returncode}:\n{output.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{command}: no {expected!r} in:\n{output.read_text()[-3000:]}"
            time.sleep(0.5)
        time.sleep(5)
        assert proc.poll() is None, f"{command} stopped by itself:\n{output.read_text()[-3000:]}"
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=60)
        assert code == 0, f"{command} did not stop cleanly on Ctrl-C ({code}):\n{output.read_text()[-3000:]}"

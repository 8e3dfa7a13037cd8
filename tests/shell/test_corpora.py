"""Command-injection corpora: payloads are data in an argv, never shell input.

Each line of PayloadsAllTheThings' command-injection lists (as is, percent-decoded
once, and HTML-unescaped) is passed as one argument to an allowed program that
prints its argument back (``printf '%s\\n' PAYLOAD``). Interpreted means: the output
differs from the payload, or the run left anything behind in its directory, or it
did not finish within its limit. As argv[0] or argv[1] every payload is refused.
"""

from __future__ import annotations

import html
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote

from briotui.kernel.errors import CommandTimeout
from briotui.kernel.shell.policy import CommandPolicy
from briotui.kernel.shell.runner import run_command

from .conftest import corpus_lines

ECHO_POLICY = CommandPolicy.from_config({"defaults": False, "allow": [["printf", "%s\n", "*"]]})
"""A test-only policy: print one argument back, verbatim."""


def _payloads() -> list[str]:
    lines = corpus_lines("pat_command-execution-unix.txt") + corpus_lines("pat_command_exec.txt")
    variants: dict[str, None] = {}
    for line in lines:
        for variant in (line, unquote(line), html.unescape(line), unquote(html.unescape(line))):
            variants[variant] = None
    return list(variants)


def test_payloads_are_never_interpreted(tmp_path: Path) -> None:
    payloads = _payloads()
    assert len(payloads) > 400
    refused = [p for p in payloads if not ECHO_POLICY.check(["printf", "%s\n", p]).allowed]
    assert all(ECHO_POLICY.check(["printf", "%s\n", p]).reason for p in refused)
    not_allowed = set(refused)
    allowed = [p for p in payloads if p not in not_allowed]

    def interpreted(numbered: tuple[int, str]) -> bool:
        """Whether running one payload did anything but print it back (each payload in
        a directory of its own, so what a run left behind is its own)."""
        n, payload = numbered
        scratch = tmp_path / f"scratch-{n}"
        scratch.mkdir()
        try:
            out = run_command(
                ["printf", "%s\n", payload],
                cwd=scratch,
                timeout_s=10,
                max_output_bytes=100_000,
                sandbox=False,
            )
        except CommandTimeout:
            return True
        return out.exit_code != 0 or out.stdout != payload + "\n" or any(scratch.iterdir())

    # Each run mostly waits (a process started, its pipes drained, its group reaped):
    # four at a time take a quarter of the wall time on two cores.
    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(interpreted, enumerate(allowed)))
    bad = [payload for payload, verdict in zip(allowed, verdicts, strict=True) if verdict]
    assert not bad, bad[:5]
    assert len(allowed) > 300  # most payloads are plain text and really ran
    print(
        f"\n{len(payloads)} payloads tried, 0 interpreted "
        f"({len(allowed)} run as an argument, {len(refused)} refused by the argument checks)"
    )


def test_payloads_as_program_or_subcommand_are_refused() -> None:
    policy = CommandPolicy.defaults()
    allowed: list[list[str]] = []
    for payload in _payloads():
        for argv in ([payload], [payload, "-q"], ["git", payload], ["python", payload]):
            if policy.check(argv).allowed:
                allowed.append(argv)
    assert not allowed, allowed[:5]

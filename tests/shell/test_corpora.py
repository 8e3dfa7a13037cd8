"""Command-injection corpora: payloads are data in an argv, never shell input.

Each line of PayloadsAllTheThings' command-injection lists (as is, percent-decoded
once, and HTML-unescaped) is passed as one argument to an allowed program that
prints its argument back (``printf '%s\\n' PAYLOAD``). Interpreted means: the output
differs from the payload, or the run left anything behind in its directory, or it
did not finish within its limit. As argv[0] or argv[1] every payload is refused.
"""

from __future__ import annotations

import html
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
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    interpreted: list[str] = []
    refused = ran = 0
    for payload in payloads:
        argv = ["printf", "%s\n", payload]
        decision = ECHO_POLICY.check(argv)
        if not decision.allowed:
            refused += 1
            assert decision.reason
            continue
        ran += 1
        try:
            out = run_command(
                argv, cwd=scratch, timeout_s=10, max_output_bytes=100_000, sandbox=False
            )
        except CommandTimeout:
            interpreted.append(payload)
            continue
        if out.exit_code != 0 or out.stdout != payload + "\n" or any(scratch.iterdir()):
            interpreted.append(payload)
    assert not interpreted, interpreted[:5]
    assert ran > 300  # most payloads are plain text and really ran
    print(
        f"\n{len(payloads)} payloads tried, 0 interpreted "
        f"({ran} run as an argument, {refused} refused by the argument checks)"
    )


def test_payloads_as_program_or_subcommand_are_refused() -> None:
    policy = CommandPolicy.defaults()
    allowed: list[list[str]] = []
    for payload in _payloads():
        for argv in ([payload], [payload, "-q"], ["git", payload], ["python", payload]):
            if policy.check(argv).allowed:
                allowed.append(argv)
    assert not allowed, allowed[:5]

"""No byte an agent wrote reaches the terminal raw: every CLI command's text output.

A session made with the real SessionManager holds a file whose content carries terminal
escapes (clear screen, OSC 52 clipboard write, OSC 8 link, colours, a lone ESC, 8-bit
CSI and other C1 controls) and invisible/bidi characters, and a file whose *name*
carries a right-to-left override. Each command is run as a user would
(``briotui.cli.main.main``); its stdout and stderr must hold none of those characters,
and the diff must show them as visible ``<U+XXXX>`` marks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.trust_helpers import trust_project

from briotui.cli.main import main
from briotui.kernel.vfs import SessionManager

pytestmark = pytest.mark.slow

PAYLOAD = (
    "clear = '\x1b[2J\x1b[H'\n"
    "clip = '\x1b]52;c;ZXZpbCBjbGlwYm9hcmQ=\x07'\n"
    "link = '\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\'\n"
    "red = '\x1b[31mred\x1b[0m' + '\x1b[?1049h' + '\x1b[1;1H'\n"
    "lone = '\x1b' + 'x'\n"
    "csi8 = '\x9b2J' + '\x9d0;title\x9c' + '\x85'\n"
    "bell = 'ding\x07' + 'back\x08space' + 'cr\roverwrite'\n"
    "access = 'user' # \u202e \u2066 admin \u2069 \u2067\u202a\u202b\u202c\u202d\n"
    "hidden = 'a\u200bb\u200cc\u200dd\u200ee\u200ff\u2060g\u2061h\u2062i\u2063j\u2064k\ufeffl'\n"
    "tags = '\U000e0041\U000e0042'\n"
)
EVIL_NAME = "invoice\u200btxt.py"
"""A name with an invisible character (bidi controls are refused in names outright)."""
BIDI_NAME = "invoice\u202etxt.py"
FORBIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)


def forbidden(text: str) -> list[str]:
    return sorted({f"U+{ord(c):04X}" for c in FORBIDDEN.findall(text)})


@pytest.fixture
def evil_session(project: Path) -> str:
    manager = SessionManager.open(project)
    try:
        session = manager.create(
            label="coder\x1b[2J", task="fix it \x1b]52;c;ZXZpbA==\x07 \u202eeulav"
        )
        session.write("payload.py", PAYLOAD.encode(), False)
        session.write(EVIL_NAME, b"print('hi')\n", False)
        session.write("app.py", b"def add(a, b):\n    return a + b  # \x1b[8mhidden\n", False)
        return session.id
    finally:
        manager.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert not forbidden(shown), (argv, forbidden(shown), shown)
    return code, captured.out


def test_sessions_diff_shows_escapes_and_invisibles_as_marks(
    project: Path, evil_session: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "-C", str(project), "sessions", "diff", evil_session)
    assert code == 0
    for mark in (
        "<U+001B>[2J",
        "<U+001B>]52;c;ZXZpbCBjbGlwYm9hcmQ=<U+0007>",
        "<U+001B>]8;;https://evil.example<U+001B>\\",
        "<U+009B>2J",
        "<U+0085>",
        "ding<U+0007>",
        "cr<U+000D>overwrite",
        "<U+202E>",
        "<U+2066>",
        "a<U+200B>b<U+200C>c<U+200D>d<U+200E>e<U+200F>f<U+2060>g",
        "<U+FEFF>l",
        "<U+E0041><U+E0042>",
        "invoice<U+200B>txt.py",
    ):
        assert mark in out, mark
    assert "\t" not in PAYLOAD or "\t" in out


def test_sessions_diff_in_colour_adds_only_its_own_styling(
    project: Path, evil_session: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-C", str(project), "sessions", "diff", evil_session, "--color", "always"])
    out = capsys.readouterr().out
    assert code == 0
    # the only escapes are SGR colour codes the CLI chose
    assert set(re.findall(r"\x1b[^m]*m", out)) <= {
        "\x1b[0m",
        "\x1b[1m",
        "\x1b[2m",
        "\x1b[31m",
        "\x1b[32m",
        "\x1b[36m",
        "\x1b[7;33m",
    }
    stripped = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert not forbidden(stripped), forbidden(stripped)
    assert "<U+202E>" in stripped


def test_every_text_command_is_sanitized(
    project: Path, evil_session: str, capsys: pytest.CaptureFixture[str]
) -> None:
    c = ["-C", str(project)]
    code, out = run(capsys, *c, "sessions", "list")
    assert code == 0
    assert "fix it" in out
    code, out = run(capsys, *c, "sessions", "show", evil_session)
    assert code == 0
    assert "invoice<U+200B>txt.py" in out
    assert "<U+202E>eulav" in out
    code, out = run(capsys, *c, "sessions", "accept", evil_session, "--file", EVIL_NAME)
    assert code == 0
    code, out = run(
        capsys, *c, "sessions", "reject", evil_session, "--file", "app.py", "--reason", "no\x1b[2J"
    )
    assert code == 0
    code, out = run(capsys, *c, "sessions", "show", evil_session)
    assert "rejected text  (no)" in out
    code, out = run(capsys, *c, "sessions", "accept", evil_session, "--file", "payload.py")
    assert code == 0
    code, out = run(capsys, *c, "sessions", "commit", evil_session, "--git")
    assert code == 0
    assert (project / EVIL_NAME).exists()
    code, out = run(capsys, *c, "sessions", "rollback", evil_session)
    assert code == 0
    # what the user typed is echoed back in the error, sanitized
    code, out = run(capsys, *c, "sessions", "show", "s-\x1b]52;c;ZXZpbA==\x07\u202e")
    assert code == 2


def test_agents_list_and_doctor_sanitize_project_agents(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    agents = project / ".brio" / "agents"
    nice = agents / "nice"
    nice.mkdir(parents=True)
    (nice / "app.py").write_text("")
    (nice / "agent.toml").write_text(
        'description = "\\u001b]52;c;ZXZpbA==\\u0007 tidy \\u202e \\u001b[2J\\u009b1m"\n'
    )
    (agents / "ev\u202eil\x1b[2J").mkdir()
    trust_project(project)  # project agents are listed only once trusted
    code, out = run(capsys, "-C", str(project), "agents", "list")
    assert code == 0
    assert "tidy <U+202E>" in out
    code, out = run(capsys, "-C", str(project), "doctor")
    assert "agent ev<U+202E>il" in out


def test_json_output_keeps_the_exact_data(
    project: Path, evil_session: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "-C", str(project), "sessions", "diff", evil_session, "--json")
    assert code == 0
    data = json.loads(out)
    assert "\x1b]52;c;ZXZpbCBjbGlwYm9hcmQ=\x07" in data["diff"]
    assert EVIL_NAME in data["diff"]
    code, out = run(capsys, "-C", str(project), "sessions", "show", evil_session, "--json")
    paths = {f["path"] for f in json.loads(out)["session"]["files"]}
    assert EVIL_NAME in paths


def test_run_summary_marks_a_bidi_file_name(
    project: Path, built_agents: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    replies = project.parent / "replies.json"
    reply = f"{BIDI_NAME}\n```\n<<<<<<< SEARCH\n=======\nprint('\x1b[2J')\n>>>>>>> REPLACE\n```\n"
    replies.write_text(json.dumps([reply, reply, reply]))
    _, out = run(
        capsys,
        "-C",
        str(project),
        "run",
        "make it",
        "--agent",
        "coder",
        "--provider",
        f"scripted:{replies}",
    )
    # The name is refused (a bidi control makes it display as another name); the
    # refusal names it with the control marked, never raw.
    assert "invoice<U+202E>txt.py" in out
    assert not (project / BIDI_NAME).exists()


def test_command_modules_print_only_through_the_output_module() -> None:
    """``print`` or a direct write to stdout/stderr in a command module would bypass it."""
    import ast

    import briotui.cli

    root = Path(briotui.cli.__file__).parent
    offenders = []
    for module in sorted(root.glob("*.py")):
        if module.name == "output.py":
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id == "print":
                offenders.append(f"{module.name}:{node.lineno} print")
            if (
                isinstance(func, ast.Attribute)
                and func.attr in ("write", "writelines")
                and isinstance(func.value, ast.Attribute)
                and func.value.attr in ("stdout", "stderr")
            ):
                offenders.append(f"{module.name}:{node.lineno} {func.value.attr}.{func.attr}")
    assert not offenders


def test_argument_errors_echo_what_was_typed_sanitized(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["-C", str(project), "sessions", "list", "\x1b]52;c;ZXZpbA==\x07\u202e"])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert "unrecognized arguments: <U+202E>" in captured.err
    assert not forbidden(captured.out + captured.err)

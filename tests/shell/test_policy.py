"""CommandPolicy: the allowlist, its hard refusals, argument checks and config shape."""

from __future__ import annotations

import pytest

from briotui.kernel.errors import ConfigError
from briotui.kernel.shell.policy import CommandPolicy, Rule

POLICY = CommandPolicy.defaults()


@pytest.mark.parametrize(
    ("argv", "rule"),
    [
        (["pytest"], "pytest *"),
        (["pytest", "-q", "tests/test_app.py::test_add"], "pytest *"),
        (["pytest", "-k", "add and not slow", "-x"], "pytest *"),
        (["pytest", "tests/x.py::T::test[a/b]"], "pytest *"),
        (["python", "-m", "pytest", "-q"], "python -m pytest *"),
        (["python3", "-m", "unittest", "discover", "-s", "tests"], "python3 -m unittest *"),
        (["ruff", "check", "src", "--output-format=concise"], "ruff check *"),
        (["ruff", "format", "--check", "."], "ruff format --check *"),
        (["git", "diff", "--stat", "HEAD~1..HEAD"], "git diff *"),
        (["git", "diff", "-c"], "git diff *"),
        (["git", "diff", "--output=patch.diff"], "git diff *"),
        (["git", "status", "--short"], "git status *"),
        (["git", "log", "--oneline", "-n", "5", "--", "src/app.py"], "git log *"),
        (["git", "show", "HEAD:README.md"], "git show *"),
    ],
)
def test_allowed(argv: list[str], rule: str) -> None:
    decision = POLICY.check(argv)
    assert decision.allowed, decision.reason
    assert decision.rule == rule


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ([], "empty"),
        (["sh", "-c", "id"], "shell"),
        (["bash", "-c", "pytest"], "shell"),
        (["zsh"], "shell"),
        (["busybox", "sh"], "shell"),
        (["env", "X=1", "pytest"], "environment"),
        (["xargs", "rm"], "runs other programs"),
        (["sudo", "pytest"], "privileges"),
        (["less", "README.md"], "pager"),
        (["vim", "x"], "editor"),
        (["awk", 'BEGIN{system("id")}'], "system"),
        (["python", "-c", "print(1)"], "python -c"),
        (["python", "-Sc", "print(1)"], "python -c"),
        (["python", "-cprint(1)"], "python -c"),
        (["python3", "-I", "-c", "x"], "python -c"),
        (["python", "script.py"], "matches no rule"),
        (["python", "-m", "http.server"], "matches no rule"),
        (["find", ".", "-exec", "rm", "{}", ";"], "find -exec"),
        (["find", ".", "-delete"], "find -delete"),
        (["find", ".", "-execdir", "id", ";"], "find -execdir"),
        (["git", "-c", "core.pager=id", "log"], "git -c"),
        (["git", "-ccore.pager=id", "log"], "git -c"),
        (["git", "--exec-path=/tmp", "status"], "--exec-path"),
        (["git", "-C", "/", "status"], "-C"),
        (["git", "--git-dir=/etc", "log"], "--git-dir"),
        (["git", "-p", "log"], "-p"),
        (["git", "log", "--upload-pack=id"], "--upload-pack"),
        (["git", "diff", "--ext-diff"], "--ext-diff"),
        (["git", "show", "--textconv", "HEAD"], "--textconv"),
        (["git", "push"], "matches no rule"),
        (["git", "commit", "-m", "x"], "matches no rule"),
        (["git"], "matches no rule"),
        (["rm", "-rf", "."], "not on the allowlist"),
        (["curl", "http://example.com"], "not on the allowlist"),
        (["/usr/bin/pytest"], "path"),
        (["./pytest"], "path"),
        (["git", "diff", "--output=/tmp/x"], "absolute"),
        (["git", "diff", "--output=../x"], ".."),
        (["pytest", "-o/etc/x"], "absolute"),
        (["pytest", "--junitxml", "/tmp/report.xml"], "absolute"),
        (["pytest", "--rootdir=/"], "absolute"),
        (["pytest", "../other-project/tests"], ".."),
        (["pytest", "tests/../../x"], ".."),
        (["pytest", "..\\..\\etc\\passwd"], "'\\'"),
        (["git", "log", "--", ".git/config"], "protected"),
        (["git", "diff", "a\x00b"], "NUL"),
        (["ruff", "format", "."], "Allowed forms of 'ruff'"),
    ],
)
def test_refused_with_a_specific_reason(argv: list[str], words: str) -> None:
    decision = POLICY.check(argv)
    assert not decision.allowed
    assert words.lower() in decision.reason.lower(), decision.reason


def test_check_is_pure() -> None:
    argv = ["pytest", "-q"]
    first = POLICY.check(argv)
    assert POLICY.check(argv) == first
    assert argv == ["pytest", "-q"]


def test_config_adds_rules_and_can_drop_defaults() -> None:
    policy = CommandPolicy.from_config({"allow": [["make", "test"], ["python", "-m", "mypy", "*"]]})
    assert policy.check(["make", "test"]).allowed
    assert not policy.check(["make", "test", "extra"]).allowed
    assert policy.check(["python", "-m", "mypy", "src"]).allowed
    assert policy.check(["pytest"]).allowed
    only = CommandPolicy.from_config({"defaults": False, "allow": [["make", "test"]]})
    assert not only.check(["pytest"]).allowed
    assert [str(r) for r in only.rules] == ["make test"]
    assert CommandPolicy.from_config(None) == CommandPolicy.defaults()


def test_configured_python_still_refuses_dash_c() -> None:
    policy = CommandPolicy.from_config({"allow": [["python", "*"]]})
    assert policy.check(["python", "tools/gen.py"]).allowed
    assert not policy.check(["python", "-c", "import os"]).allowed
    # -m ends python's own options: a -c after it belongs to the module.
    assert policy.check(["python", "-m", "pytest", "-c", "pytest.ini"]).allowed


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ({"allow": [["bash", "*"]]}, "shell"),
        ({"allow": [["env", "*"]]}, "cannot be allowed"),
        ({"allow": [["/bin/ls"]]}, "name"),
        ({"allow": [["*"]]}, "last element"),
        ({"allow": [["git", "*", "diff"]]}, "last element"),
        ({"allow": [[]]}, "non-empty"),
        ({"allow": ["pytest"]}, "list of non-empty strings"),
        ({"allow": [["pytest", 1]]}, "non-empty strings"),
        ({"allow": "pytest"}, "list"),
        ({"defaults": "yes"}, "true or false"),
        ({"alow": []}, "unknown keys"),
    ],
)
def test_bad_config_says_what_to_write(section: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        CommandPolicy.from_config(section)
    assert words.lower() in info.value.message.lower()


def test_rule_text_round_trips() -> None:
    assert str(Rule.parse(["git", "diff", "*"])) == "git diff *"
    assert str(Rule.parse(["make", "test"])) == "make test"


@pytest.mark.parametrize(
    "argv",
    [
        ["pytest", "-o", "cache_dir=/abs/outside"],
        ["pytest", "-o", "cache_dir=../outside"],
        ["pytest", "--override-ini=cache_dir=/abs/outside"],
        ["pytest", "-o=/abs/outside"],
        ["pytest", "--basetemp=/tmp/x"],
        ["ruff", "check", "--config", "cache-dir=/abs"],
        ["git", "log", "--output=x=/abs"],
    ],
)
def test_key_value_forms_get_the_path_check(argv: list[str]) -> None:
    decision = CommandPolicy.from_config(None).check(argv)
    assert not decision.allowed, argv
    assert "as a path" in decision.reason


def test_relative_key_values_stay_allowed() -> None:
    for argv in (
        ["pytest", "-o", "cache_dir=build/cache"],
        ["pytest", "--cov=src/app", "-k", "a=b"],
    ):
        assert POLICY.check(argv).allowed, argv

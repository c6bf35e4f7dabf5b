"""The command line's messages, run as users run it: one clear line each, exit code 2."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from imagery_gui.cli import viewer_parser
from imagery_gui.export_cli import export_parser


def _run(*args, timeout=180):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return subprocess.run(
        [sys.executable, "-m", "imagery_gui", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (["export", "--size", "abc", "-o", "x.png"], "argument --size: invalid int value: 'abc'"),
        (["export", "--center", "1", "2", "-o", "x.png"], "argument --center: expected 3"),
        (["export", "--demo"], "the following arguments are required: -o/--output"),
        (["export", "--no-such-option", "-o", "x.png"], "unrecognized arguments: --no-such"),
        (["export", "--side", "up", "-o", "x.png"], "argument --side: invalid choice: 'up'"),
        (["--size", "x", "1"], "argument --size: invalid int value: 'x'"),
        (["--center", "a", "b", "c"], "argument --center: invalid float value: 'a'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_argparse_errors_are_one_line(tmp_path, args, needle):
    res = subprocess.run(
        [sys.executable, "-m", "imagery_gui", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    prog = "imagery-gui export" if args[0] == "export" else "imagery-gui"
    assert lines[0].startswith(f"{prog}: error: ") and lines[0].endswith(" (see --help)")
    assert needle in lines[0]
    assert "usage:" not in res.stderr and res.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_overwrite_message_speaks_the_command_lines_language(synthetic_small, tmp_path):
    out = tmp_path / "f.png"
    out.write_bytes(b"keep")
    res = _run(
        "export",
        "--image-source",
        synthetic_small.image,
        "--center",
        *synthetic_small.center,
        "--size",
        20,
        10,
        "-o",
        out,
    )
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"imagery-gui export: error: {out} already exists; pass --force to replace it"
    )
    assert "overwrite=True" not in res.stderr and out.read_bytes() == b"keep"


def test_region_messages_name_only_what_is_missing(synthetic_small, demo, tmp_path):
    src = ["export", "--image-source", synthetic_small.image, "-o", tmp_path / "r.png"]
    cases = [
        (["--size", 20, 10], "--size needs a centre: add --center X Y Z"),
        (["--center", *synthetic_small.center], "give --size W H [D]"),
        ([], "give the region: --center X Y Z with --size W H [D], or --bounds"),
    ]
    for extra, needle in cases:
        res = _run(*src, *extra)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], res.stderr
    # --size alone is enough when the centre comes from elsewhere (here the demo volume):
    # then no message about the region at all.
    res = _run("export", "--demo", "--size", 30, 20, "-o", tmp_path / "d.png")
    assert res.returncode == 0, res.stderr
    assert "region" not in res.stderr and (tmp_path / "d.png").is_file()


def _options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        yield action


@pytest.mark.parametrize("make", [viewer_parser, export_parser], ids=["viewer", "export"])
def test_every_option_has_help_with_its_default(make):
    parser = make()
    names = []
    for action in _options(parser):
        name = "/".join(action.option_strings)
        names.append(name)
        assert action.help, f"{name} has no help text"
        text = action.help.lower()
        assert "default" in text or "required" in text, f"{name}: no default stated"
        if action.default not in (None, False, argparse.SUPPRESS):
            # A default that exists is the one the help names.
            assert str(action.default) in action.help, (name, action.default, action.help)
    assert len(names) > 10
    assert any("--datastack" in n for n in names)


@pytest.mark.parametrize("prefix", [[], ["export"]], ids=["viewer", "export"])
def test_help_runs_without_qt_or_display(prefix):
    res = _run(*prefix, "--help")
    assert res.returncode == 0 and "default" in res.stdout and res.stderr == ""

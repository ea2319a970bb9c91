"""Typing committed text into the focused window: the tool that suits the session, real child
processes standing in for xdotool, wtype and ydotool."""

from __future__ import annotations

from pathlib import Path

import pytest
from sink_fixtures import cw, endpoint

from streamer.errors import DependencyError, SinkError
from streamer.output.keyboard import TextTyper, find_typing_tool

# --- typing ---------------------------------------------------------------------------------

FAKE_TOOL = """#!/bin/sh
printf '%s\\n' "${0##*/}" "$@" "--end--" >> "$TYPED_LOG"
"""


def fake_tools(tmp_path: Path, *names: str, failing: bool = False) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        script = bin_dir / name
        body = "#!/bin/sh\necho 'cannot open display' >&2\nexit 1\n" if failing else FAKE_TOOL
        script.write_text(body)
        script.chmod(0o755)
    return {"PATH": str(bin_dir), "TYPED_LOG": str(tmp_path / "typed.log")}


def typed(tmp_path: Path) -> list[list[str]]:
    calls = (tmp_path / "typed.log").read_text().split("--end--\n")
    return [call.splitlines() for call in calls if call]


@pytest.mark.parametrize(
    ("session", "tools", "chosen"),
    [
        ({"DISPLAY": ":0"}, ("xdotool", "wtype", "ydotool"), "xdotool"),
        ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, ("xdotool", "wtype"), "wtype"),
        ({"XDG_SESSION_TYPE": "wayland"}, ("xdotool", "ydotool"), "ydotool"),
        ({}, ("xdotool", "wtype", "ydotool"), "ydotool"),
        ({"DISPLAY": ":1"}, ("ydotool",), "ydotool"),
    ],
    ids=["x11", "wayland-prefers-wtype", "wayland-without-wtype", "console", "x11-fallback"],
)
def test_the_typing_tool_suits_the_session(tmp_path, session, tools, chosen):
    env = {**fake_tools(tmp_path, *tools), **session}
    assert Path(find_typing_tool(env)).name == chosen


@pytest.mark.parametrize(
    ("session", "tools"),
    [({"DISPLAY": ":0"}, ()), ({"DISPLAY": ":0"}, ("wtype",)), ({}, ("xdotool",))],
    ids=["nothing", "wtype-on-x11", "xdotool-without-display"],
)
def test_no_usable_typing_tool_names_all_three(tmp_path, session, tools):
    env = {**fake_tools(tmp_path, *tools), **session}
    with pytest.raises(DependencyError) as caught:
        TextTyper(env)
    message = str(caught.value)
    assert all(tool in message for tool in ("xdotool", "wtype", "ydotool", "apt install"))
    assert "\n" not in message


def test_text_typer_types_committed_text_in_order(tmp_path):
    env = {**fake_tools(tmp_path, "xdotool"), "DISPLAY": ":0"}
    typer = TextTyper(env)
    typer.on_commit((cw(" Dear", 0, 0.3), cw(" Sam,", 0.3, 0.6)))
    typer.on_endpoint(endpoint())
    typer.on_commit((cw(" -thanks", 1, 1.5),))
    typer.close()
    assert typed(tmp_path) == [
        ["xdotool", "type", "--clearmodifiers", "--", "Dear Sam,"],
        ["xdotool", "type", "--clearmodifiers", "--", " -thanks"],
    ]


def test_a_failing_typing_tool_is_a_sink_error(tmp_path):
    env = {**fake_tools(tmp_path, "wtype", failing=True), "WAYLAND_DISPLAY": "wayland-0"}
    typer = TextTyper(env)
    typer.on_commit((cw(" hi", 0, 0.3),))
    with pytest.raises(SinkError, match="wtype could not type the text: cannot open display"):
        typer.close()

"""Typing committed text into the focused window with xdotool, wtype or ydotool."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from streamer.errors import DependencyError, SinkError
from streamer.output.sinks import one_line
from streamer.types import CommittedWord, Endpoint

TYPING_COMMANDS = {
    "xdotool": ("type", "--clearmodifiers", "--"),
    "wtype": ("--",),
    "ydotool": ("type", "--"),
}
MISSING_TYPING_TOOL = (
    "--type needs xdotool (X11), wtype (Wayland) or ydotool (X11, Wayland or console; needs the "
    "ydotoold daemon) on PATH; install one, e.g. `sudo apt install xdotool` or `sudo apt install "
    "wtype`"
)


def display_session(env: Mapping[str, str]) -> str:
    """The kind of graphical session ``env`` describes: "wayland", "x11" or "console"."""
    if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland":
        return "wayland"
    return "x11" if env.get("DISPLAY") else "console"


def typing_tool_candidates(env: Mapping[str, str]) -> tuple[str, ...]:
    """Typing tools that work in the session described by ``env``, best first."""
    return {
        "wayland": ("wtype", "ydotool", "xdotool"),  # xdotool reaches XWayland windows only
        "x11": ("xdotool", "ydotool"),
        "console": ("ydotool",),  # no display server: only the uinput route works
    }[display_session(env)]


def find_typing_tool(env: Mapping[str, str] | None = None) -> str:
    """Path of the typing tool to use; ``DependencyError`` naming all three when none is found."""
    env = os.environ if env is None else env
    search_path = env.get("PATH", os.defpath)
    for name in typing_tool_candidates(env):
        found = shutil.which(name, path=search_path)
        if found:
            return found
    raise DependencyError(f"{MISSING_TYPING_TOOL} (this is a {display_session(env)} session)")


class TextTyper:
    """Types committed text into the focused window with xdotool, wtype or ydotool.

    The typing process runs while the pipeline goes on; the next commit waits for it, so
    text never interleaves. A tool that fails is reported as ``SinkError`` on the next call.
    """

    def __init__(self, env: Mapping[str, str] | None = None, timeout_s: float = 30.0) -> None:
        self.tool = find_typing_tool(env)
        self._env = dict(os.environ if env is None else env)
        self._timeout_s = timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._typed_any = False

    def on_commit(self, words: tuple[CommittedWord, ...]) -> None:
        text = one_line("".join(word.text for word in words))
        if not self._typed_any:
            text = text.lstrip()  # the first word of the session needs no separating space
        if not text:
            return
        self._finish_previous()
        name = Path(self.tool).name
        argv = [self.tool, *TYPING_COMMANDS.get(name, ("type", "--")), text]
        try:
            self._process = subprocess.Popen(
                argv, env=self._env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except OSError as error:
            raise SinkError(f"cannot run {self.tool}: {error.strerror}") from error
        self._typed_any = True

    def on_endpoint(self, endpoint: Endpoint) -> None:
        pass

    def close(self) -> None:
        self._finish_previous()

    def _finish_previous(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            _, stderr = process.communicate(timeout=self._timeout_s)
        except subprocess.TimeoutExpired as error:
            process.kill()
            process.communicate()
            raise SinkError(
                f"{self.tool} did not finish typing within {self._timeout_s:g} s"
            ) from error
        if process.returncode != 0:
            detail = (stderr or b"").decode(errors="replace").strip().splitlines()
            reason = detail[-1] if detail else f"exit status {process.returncode}"
            raise SinkError(f"{Path(self.tool).name} could not type the text: {reason}")

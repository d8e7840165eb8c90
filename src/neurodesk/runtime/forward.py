"""Signals reach the program in the container, and its exit status reaches the caller.

bwrap stays outside the container as the program's parent, and dies on SIGINT/SIGTERM without
passing them on (its child then gets SIGKILL from --die-with-parent). So the process the caller
knows is a small bash forwarder instead: it starts bwrap in a new session (so a terminal's
Ctrl-C reaches only the forwarder, never bwrap), forwards every catchable signal to the
program (bwrap's child), waits, and ends the way the program ended: the same exit code, or
killed by the same signal. No Python stays in between; bash is only a few hundred kB.

Why bash: a POSIX sh ignores SIGINT in background jobs and cannot undo that, and the program
would inherit the ignore; bash can reset it in the subshell (``trap - INT``).
"""

from __future__ import annotations

import shutil

FORWARDED = ("INT", "TERM", "HUP", "QUIT", "USR1", "USR2", "WINCH", "ALRM", "CONT")


def forwarder_script(redirects: str = "") -> str:
    """The forwarder, running ``"$@"``; ``redirects`` are added to the background job."""
    return _HEAD + _TRAPS + _TAIL.replace("<&0 &", f"<&0 {redirects}&" if redirects else "<&0 &")


_HEAD = r"""
nd_bwrap=
nd_sig=
nd_forward() {
  nd_sig=$1
  nd_interrupted=1
  if [ -z "$nd_bwrap" ]; then trap - "$1"; kill -s "$1" $$; fi
  nd_child=
  read -r nd_child _ 2>/dev/null < "/proc/$nd_bwrap/task/$nd_bwrap/children"
  kill -s "$1" "${nd_child:-$nd_bwrap}" 2>/dev/null
}
"""
_TRAPS = "".join(f"trap 'nd_forward {s}' {s}\n" for s in FORWARDED)
_TAIL = r"""
( trap - INT QUIT; exec setsid "$@" ) <&0 &
nd_bwrap=$!
while :; do
  nd_interrupted=
  wait "$nd_bwrap"; nd_rc=$?
  # A trap cut the wait short: wait again (bash keeps the status of a job that has ended).
  [ -n "$nd_interrupted" ] || break
done
if [ -n "$nd_sig" ] && [ "$nd_rc" -gt 128 ] && [ "$(kill -l "$nd_rc")" = "$nd_sig" ]; then
  trap - "$nd_sig"; kill -s "$nd_sig" $$
fi
exit "$nd_rc"
"""
FORWARDER = forwarder_script()


def forwarded(argv: list[str]) -> list[str]:
    """``argv`` (a bwrap command) run under the signal forwarder, when bash and setsid exist."""
    bash = shutil.which("bash")
    setsid = shutil.which("setsid")
    if bash is None or setsid is None:
        return argv  # still correct for exit codes and pipes; signals then kill bwrap
    return [bash, "-c", FORWARDER, "neurodesk-exec", *argv]

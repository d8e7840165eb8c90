"""Entry point: the command group, and the one place that turns errors into one-line reports."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from neurodesk import __version__
from neurodesk.cli.lazy import LazyGroup
from neurodesk.cli.output import err_console
from neurodesk.errors import ExternalCommandError, NeurodeskError, ValidationError


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", "-V", prog_name="neurodesk")
def cli() -> None:
    """Neuroimaging tools in containers that behave like native programs.

    \b
    Typical use:
      neurodesk demo                       # build, install and run dcm2niix end to end
      neurodesk build dcm2niix             # build an image from recipes/dcm2niix/build.yaml
      neurodesk install dcm2niix           # wrappers + modules for its commands
      neurodesk exec dcm2niix -- dcm2niix -h

    All state lives under $NEURODESK_HOME (default: the user data directory).
    """


def report(exc: NeurodeskError) -> int:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    # Every problem is listed unless the one-line message already is that single problem.
    if isinstance(exc, ValidationError) and exc.problems != [exc.message]:
        for problem in exc.problems:
            err_console.print(f"  {problem}", soft_wrap=True, markup=False)
    if isinstance(exc, ExternalCommandError) and exc.log_tail:
        err_console.print("last lines of the log:", soft_wrap=True)
        for line in exc.log_tail:
            err_console.print(f"  | {line}", soft_wrap=True, markup=False)
    return exc.exit_code


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="neurodesk", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except NeurodeskError as exc:
        sys.exit(report(exc))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    sys.exit(0)

"""Entry point: the command group, and the one place that turns errors into one-line reports."""

from __future__ import annotations

import sys

import click

from neurodesk.cli.lazy import LazyGroup
from neurodesk.errors import ExternalCommandError, NeurodeskError, ValidationError

# rich (the console) and importlib.metadata (the version) are imported only when used: start-up
# is paid by every command, and 'neurodesk search' has a budget of 100 ms (issue 16).


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from neurodesk import __version__

    click.echo(f"neurodesk, version {__version__}")
    ctx.exit()


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--version",
    "-V",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_show_version,
    help="Show the version and exit.",
)
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
    from rich.markup import escape

    from neurodesk.cli.output import err_console

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


def report_click(exc: click.ClickException) -> int:
    """A usage error as one ``error:`` line, with where to read the usage, like our own errors."""
    from neurodesk.cli.output import err_console

    message = "; ".join(line.strip() for line in exc.format_message().splitlines() if line.strip())
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if isinstance(ctx, click.Context) else ""
    err_console.print(f"error: {message}{hint}", markup=False, soft_wrap=True)
    return exc.exit_code


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="neurodesk", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        sys.exit(report_click(exc))
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except NeurodeskError as exc:
        sys.exit(report(exc))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)

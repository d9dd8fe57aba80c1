"""The command line. The only module that prints or exits."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from migrator import __version__
from migrator.errors import MigratorError

app = typer.Typer(help="Move regulated objects into OCI Object Storage and prove the sources are gone.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
sandbox_app = typer.Typer(help="Local S3, GCS and OCI endpoints on 127.0.0.1 for demos and tests.",
                          no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DirOpt = Annotated[Path, typer.Option("--dir", help="Sandbox state folder.")]


@app.callback(invoke_without_command=True)
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    if version:
        out.print(f"migrator {__version__}")
        raise typer.Exit(0)


@sandbox_app.command("up")
def sandbox_up(directory: DirOpt = Path(".migrator-sandbox")) -> None:
    """Start the three endpoints in the background and record them."""
    from migrator.sandbox import control

    state = control.up(directory)
    out.print(f"S3  (moto)            {state.s3.url}")
    out.print(f"GCS (fake-gcs-server) {state.gcs.url}")
    out.print(f"OCI (migrator)        {state.oci.url}  namespace {state.oci_namespace}")
    out.print(f"state in {state.directory}; `eval \"$(migrator sandbox env --dir {directory})\"` to use it")


@sandbox_app.command("env")
def sandbox_env(directory: DirOpt = Path(".migrator-sandbox")) -> None:
    """Print export lines that point the SDKs (and migrator) at the sandbox."""
    from migrator.sandbox import control

    for k, v in control.load(directory).env().items():
        print(f"export {k}={shlex.quote(v)}")


@sandbox_app.command("down")
def sandbox_down(directory: DirOpt = Path(".migrator-sandbox")) -> None:
    """Stop the endpoints."""
    from migrator.sandbox import control

    if control.down(directory, missing_ok=True):
        out.print("sandbox stopped")
    else:
        out.print(f"no sandbox recorded in {directory}")


def main() -> None:
    try:
        app(standalone_mode=False)
    except MigratorError as exc:
        err.print(f"error: {exc.diagnostics()}", markup=False)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()

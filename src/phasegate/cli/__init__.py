"""``migrate``: the command line. Parses options, calls the core, renders, maps exit codes.

Heavy imports (Pulumi, moto, rich) happen inside commands so ``migrate --help`` stays fast.
"""

from __future__ import annotations

import gc
import os
import sys
import warnings
from typing import NoReturn

import click

from phasegate.cli import admin, health, promote, run, scaffold
from phasegate.cli._app import Obj, cli
from phasegate.errors import ExitCode, Interrupted, PhasegateError, describe
from phasegate.redaction import SecretValues

__all__ = ["cli", "main"]
# Imported for the commands they add to the group.
_COMMANDS = (admin, health, promote, run, scaffold)


def _fail(
    message: str,
    code: int,
    secrets: SecretValues,
    *,
    debug: bool = False,
    prefix: str = "error",
) -> NoReturn:
    """One line, or the traceback a person asked for with --debug; no secret in either."""
    if debug:
        import traceback

        click.echo(secrets.mask(traceback.format_exc()).rstrip(), err=True)
        sys.exit(ExitCode.ERROR if code != ExitCode.INTERRUPTED else code)
    click.echo(f"{prefix}: {secrets.mask(message)}", err=True)
    sys.exit(code)


_AT_ONCE = (
    "stopped at once: a stack this run was changing is left mid-run; `migrate status` "
    "names it and `migrate recover` finishes it"
)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: the one error boundary."""
    args = sys.argv[1:] if argv is None else argv
    # A run makes objects by the hundred thousand (the Pulumi SDK's, moto's) and keeps
    # most of them to its end: collecting every 700 allocations rescans them over and
    # over, a fifth of a first apply. Every 50,000 still bounds a long `sandbox serve`.
    gc.set_threshold(50_000, 20, 10)
    # Outputs a failed program never awaited (the Pulumi SDK's) warn whenever they are
    # collected, in the middle of whatever is printed then; the failure says it all.
    warnings.filterwarnings("ignore", r"coroutine 'Output\.\w+' was never awaited", RuntimeWarning)
    debug = "--debug" in args or os.environ.get("PHASEGATE_DEBUG") == "1"
    secrets = SecretValues()
    try:
        # Without standalone mode click returns ctx.exit()'s code instead of exiting.
        code = cli.main(args=args, prog_name="migrate", standalone_mode=False, obj=Obj(secrets))
        sys.exit(code if isinstance(code, int) else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            _fail(_AT_ONCE, ExitCode.INTERRUPTED, secrets, prefix="interrupted")
        _fail("aborted: nothing was changed", ExitCode.ERROR, secrets)
    except click.ClickException as exc:
        _fail(exc.format_message(), ExitCode.ERROR, secrets, debug=debug)
    except PhasegateError as exc:
        _fail(str(exc), exc.exit_code, secrets, debug=debug)
    except Interrupted as exc:
        _fail(str(exc), exc.exit_code, secrets, debug=debug, prefix="interrupted")
    except KeyboardInterrupt:
        _fail(_AT_ONCE, ExitCode.INTERRUPTED, secrets, prefix="interrupted")
    except Exception as exc:
        # A file the core did not expect to fail on is still named: path and reason.
        message = f"{describe(exc)} (run with --debug for the traceback)"
        _fail(message, ExitCode.ERROR, secrets, debug=debug)
    finally:
        # Everything is written by now; skip the exit-time collection of the ~200k
        # objects the Pulumi SDK leaves behind (0.4 s of every plan).
        gc.freeze()

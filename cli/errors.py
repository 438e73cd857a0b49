"""The one error boundary: every exception becomes a message and an exit code (DESIGN.md §7).

0 ok; 1 user-fixable; 2 plan has changes (--detailed-exitcode); 3 executions failed;
64 usage; 70 internal error (traceback in a log file whose path is printed); 130 interrupted.
"""

from __future__ import annotations

import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import typer

from reconciler.errors import CourierError, ValidationFailed

try:  # typer >= 0.16 vendors its own copy of click
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_exc  # type: ignore[no-redef]

EXIT_OK = 0
EXIT_USER = 1
EXIT_CHANGES = 2
EXIT_FAILED_RUNS = 3
EXIT_USAGE = 64
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


def guarded(main: Callable[[], object]) -> int:
    try:
        returned = main()
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except click_exc.NoArgsIsHelpError as exc:
        exc.show()
        return EXIT_OK
    except click_exc.ClickException as exc:
        exc.show()
        return EXIT_USAGE if isinstance(exc, click_exc.UsageError) else EXIT_USER
    except ValidationFailed as exc:
        for problem in exc.problems:
            _err(problem.render())
        _err(f"error: {exc.message}")
        return EXIT_USER
    except CourierError as exc:
        _err(f"error: {exc.message}")
        return exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the boundary: anything else is a bug in courier
        log = _write_log()
        _err(f"internal error: {type(exc).__name__}: {exc}")
        _err(f"this is a bug in courier; the traceback is in {log}")
        return EXIT_INTERNAL
    # In non-standalone mode click returns the code of a `typer.Exit` instead of raising it.
    return returned if isinstance(returned, int) else EXIT_OK


def _err(line: str) -> None:
    typer.echo(line, err=True)


def _write_log() -> Path:
    fd, name = tempfile.mkstemp(prefix="courier-crash-", suffix=".log")
    with open(fd, "w", encoding="utf-8") as fh:  # noqa: PTH123 - a file descriptor, not a path
        fh.write(f"courier {' '.join(sys.argv[1:])}\n\n")
        traceback.print_exc(file=fh)
    return Path(name)

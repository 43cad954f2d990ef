"""The root command: global options, error handling, and the command groups."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Annotated, Any, ClassVar

import typer
from typer.core import TyperGroup

from checkout_cli import __version__
from checkout_cli.cli.command_index import COMMANDS
from checkout_cli.cli.metavars import uniform
from checkout_cli.cli.state import State

GLOBAL_FLAGS = ("--json", "--no-input", "--debug")


def hoist_global_flags(args: list[str]) -> list[str]:
    """Let ``checkout status TOKEN --json`` mean ``checkout --json status TOKEN``."""
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in GLOBAL_FLAGS]
    rest = [a for a in args[:end] if a not in GLOBAL_FLAGS]
    return flags + rest + args[end:]


def _bad_usage(exc: BaseException) -> Any:
    """Click's parse error (bad flag, bad value, missing argument) as our one-line usage
    error, naming the parameter; None for anything else (help shown for no arguments too)."""
    from typer._click.exceptions import NoArgsIsHelpError
    from typer._click.exceptions import UsageError as ClickUsageError

    if not isinstance(exc, ClickUsageError) or isinstance(exc, NoArgsIsHelpError):
        return None
    from checkout_cli.errors import UsageError

    param = getattr(exc, "param", None)
    command = exc.ctx.command_path if exc.ctx is not None else "checkout"
    # typer words a bad choice "Value error, 'x' is not one of 'a', 'b'": the choices stay.
    message = exc.format_message().rstrip(".").replace("Value error, ", "")
    return UsageError(
        "bad_usage",
        message,
        field=getattr(param, "name", None),
        recovery=f"see `{command} --help`",
    )


class CheckoutGroup(TyperGroup):
    """Maps every failure below the root to one stderr line and the documented exit code."""

    _built: ClassVar[dict[str, Any]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *COMMANDS]

    def get_command(self, ctx: Any, name: str) -> Any:
        """A command is built when named: its module (and the request models it makes flags
        from) is imported then, not to start every other command."""
        if name not in COMMANDS:
            return super().get_command(ctx, name)
        if name not in self._built:
            entry = COMMANDS[name]
            module = importlib.import_module(entry.module)
            if entry.attribute is not None:
                group = typer.main.get_command(getattr(module, entry.attribute))
                group.name = name
                self._built[name] = uniform(group)
            else:
                commands = typer.Typer()
                module.register(commands)
                for info in commands.registered_commands:
                    built = typer.main.get_command_from_info(
                        info, pretty_exceptions_short=True, rich_markup_mode=None
                    )
                    self._built.setdefault(str(built.name), uniform(built))
        return self._built.get(name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The commands listed with their first sentence from the index: nothing imported."""
        from typer._click.utils import make_default_short_help

        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, built.get_short_help_str(limit))
            if (built := self._built.get(name))
            else (name, make_default_short_help(entry.summary, limit))
            for name, entry in COMMANDS.items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args = hoist_global_flags(args)
        as_json = "--json" in args  # before parsing: the parser consumes the list
        try:
            return super().parse_args(ctx, args)
        except KeyboardInterrupt as exc:  # else click says "Aborted!" and exits 1
            from checkout_cli.cli.errors import report

            raise typer.Exit(report(exc, as_json=as_json, debug=False)) from None
        except Exception as exc:
            bad = _bad_usage(exc)
            if bad is None:
                raise
            from checkout_cli.cli.errors import report

            raise typer.Exit(report(bad, as_json=as_json, debug=False)) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            bad = _bad_usage(exc)
            if bad is not None:
                raise typer.Exit(self._report(ctx, bad)) from None
            if type(exc).__module__.startswith("typer"):
                raise  # typer.Exit and help for no arguments: handled the usual way
            raise typer.Exit(self._report(ctx, exc)) from None
        except KeyboardInterrupt as exc:
            raise typer.Exit(self._report(ctx, exc)) from None
        finally:
            if isinstance(ctx.obj, State):
                ctx.obj.close()

    @staticmethod
    def _report(ctx: Any, exc: BaseException) -> int:
        from checkout_cli.cli.errors import report

        state = ctx.obj if isinstance(ctx.obj, State) else None
        # No state yet (e.g. an unknown command): the parsed root flags still say --json.
        params = ctx.params or {}
        return report(
            exc,
            as_json=bool(state.settings.json if state else params.get("json_output")),
            debug=bool(state.settings.debug if state else params.get("debug")),
        )


app = typer.Typer(
    cls=CheckoutGroup,
    name="checkout",
    help="Run a shop's checkout flow: carts, checkouts, payments, orders.\n\n"
    "Example: checkout demo",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"checkout-cli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="CHECKOUT_DB",
            show_envvar=True,
            metavar="PATH|URL",
            help="SQLite store file, or a postgresql:// URL [default: the platform's data dir]",
        ),
    ] = None,
    remote: Annotated[
        str | None,
        typer.Option(
            "--remote",
            envvar="CHECKOUT_REMOTE",
            show_envvar=True,
            metavar="URL",
            help="use a server over HTTP instead of the local store (token: CHECKOUT_TOKEN)",
        ),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            envvar="CHECKOUT_PROJECT",
            show_envvar=True,
            metavar="ID",
            help="project id on the remote",
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            envvar="CHECKOUT_PROFILE",
            show_envvar=True,
            metavar="NAME",
            help="profile from config.toml",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="print the result object as JSON")
    ] = False,
    no_input: Annotated[
        bool,
        typer.Option(
            "--no-input", help="never prompt; missing input is an error (also when CI is set)"
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="show the version")
    ] = False,
) -> None:
    from checkout_cli.cli.errors import report
    from checkout_cli.config import resolve
    from checkout_cli.errors import CheckoutError

    if "checkout_cli.cli.output" in sys.modules:  # rich is loaded only to draw
        sys.modules["checkout_cli.cli.output"].reset_consoles()
    if not debug and not logging.getLogger().handlers:
        # Libraries (e.g. the Mollie SDK) log warnings on the root logger; stderr is ours.
        logging.getLogger().addHandler(logging.NullHandler())
    try:
        settings = resolve(
            db=db,
            remote=remote,
            project=project,
            profile=profile,
            json=json_output,
            no_input=no_input,
            debug=debug,
        )
    except CheckoutError as exc:
        raise typer.Exit(report(exc, as_json=json_output, debug=debug)) from None
    ctx.obj = State(settings=settings)


def main() -> None:
    app(prog_name="checkout")

"""`agent sandbox ...` commands and the Docker lines of `agent doctor` (also `python -m sandbox.cli`)."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from sandbox.base import SandboxError
from sandbox.releases import RELEASES

# The Docker SDK is imported inside the commands: every `agent` start pays for this module.

sandbox_app = typer.Typer(help="Manage the Docker sandbox: base image and stray containers.",
                          no_args_is_help=True)


def _plain_help_option(option: Any) -> Any:
    if option is not None:
        option.metavar = ""  # --help takes no value: no `<bool>` placeholder
    return option


class PlainHelpCommand(TyperCommand):
    """Help without type placeholders: --help takes no value, an argument's metavar says what it is.

    The one command class of every CLI here (`agent ...` uses it too; sandbox imports nothing of agent).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument) and param.metavar:
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]

    def get_help_option(self, ctx: typer.Context) -> Any:
        return _plain_help_option(super().get_help_option(ctx))


class PlainHelpGroup(TyperGroup):
    """The group counterpart of PlainHelpCommand."""

    def get_help_option(self, ctx: typer.Context) -> Any:
        return _plain_help_option(super().get_help_option(ctx))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@sandbox_app.command("build-base", cls=PlainHelpCommand)
def build_base_cmd(
    python: str = typer.Option("3.11", metavar="VERSION", help=f"Python of the image: {', '.join(RELEASES)}."),
) -> None:
    """Build the base image from Debian packages (no registry); does nothing when it exists."""
    from sandbox.base_image import build_base

    try:
        tag = build_base(python, log=_log)
    except SandboxError as exc:
        _log(f"error: {exc}")
        raise typer.Exit(3) from None
    print(tag)


@sandbox_app.command("base-tag")
def base_tag_cmd(
    python: str = typer.Option("3.11", help=f"Python of the image: {', '.join(RELEASES)}"),
) -> None:
    """Print the base image's tag (a hash of its recipe): a cache key for CI; needs no engine."""
    from sandbox.base_image import base_tag

    try:
        print(base_tag(python))
    except SandboxError as exc:
        _log(f"error: {exc}")
        raise typer.Exit(2) from None


@sandbox_app.command("gc")
def gc_cmd(
    force: bool = typer.Option(False, "--force", metavar="", show_default=False,
                               help="Remove every sandbox container, live or not. \\[default: off]"),
) -> None:
    """Remove sandbox containers left behind by runs that died."""
    from sandbox.docker import gc

    try:
        removed = gc(force=force)
    except SandboxError as exc:
        _log(f"error: {exc}")
        raise typer.Exit(3) from None
    for name in removed:
        print(name)
    _log(f"removed {len(removed)} container(s)")


def doctor_checks(python: str = "3.11") -> list[tuple[str, bool, str]]:
    """(name, ok, detail or fix) for the engine and the base image ("auto": the default one)."""
    python = "3.11" if python.strip().lower() in ("", "auto") else python
    from sandbox.base_image import base_image_status
    from sandbox.engine import engine_status

    ok, detail = engine_status()
    checks = [("docker engine", ok, detail)]
    if not ok:
        checks.append(("base image", False, "needs the engine first; then: `agent sandbox build-base`"))
        return checks
    try:
        exists, tag = base_image_status(python)
    except SandboxError as exc:
        return [*checks, ("base image", False, str(exc))]
    fix = f"missing; fix: `sudo agent sandbox build-base --python {python}` (debootstrap, about a minute)"
    checks.append((f"base image (Python {python})", exists, tag if exists else f"{tag} {fix}"))
    return checks


if __name__ == "__main__":
    sandbox_app()

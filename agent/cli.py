"""The command line: the composition root, and the one place that turns errors into exit codes.

Only this module may reach into evals/ (lazily, for `agent demo`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from agent.config import ConfigError
from agent.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, AgentError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="A repository-scale coding agent for GLM-5.2.")
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True)  # a message may hold [brackets]
    return typer.Exit(code)


def _progress(line: str) -> None:
    err.print(line, markup=False)


RepoOpt = Annotated[Path, typer.Option("--repo", envvar="AGENT_REPO", help="The repository (default: here).")]
TestOpt = Annotated[list[str], typer.Option("--test", envvar="AGENT_TEST",
                                            help="A target test selector (repeatable; the variable: space-separated).")]
ScopeOpt = Annotated[list[str], typer.Option("--scope", envvar="AGENT_SCOPE",
                                             help="A directory to focus on and fence edits to (repeatable).")]
JsonOpt = Annotated[bool, typer.Option("--json", envvar="AGENT_JSON", help="Print the report as JSON on stdout.")]
BaseUrlOpt = Annotated[str | None, typer.Option(envvar="AGENT_BASE_URL", help="OpenAI-compatible endpoint.")]
ModelOpt = Annotated[str | None, typer.Option(envvar="AGENT_MODEL")]
ProfileOpt = Annotated[str | None, typer.Option(envvar="AGENT_PROFILE", help="zai, zai-coding, vllm, sglang.")]
ModeOpt = Annotated[str | None, typer.Option(envvar="AGENT_MODE", help="Force high or max for every call.")]
TurnsOpt = Annotated[int | None, typer.Option(envvar="AGENT_MAX_TURNS")]
CostOpt = Annotated[float | None, typer.Option(envvar="AGENT_MAX_COST_USD")]
TokensOpt = Annotated[int | None, typer.Option(envvar="AGENT_MAX_TOKENS")]
SecondsOpt = Annotated[float | None, typer.Option(envvar="AGENT_MAX_SECONDS")]
SandboxOpt = Annotated[str | None, typer.Option(envvar="AGENT_SANDBOX", help="docker or local.")]


def _run_overrides(*, base_url: str | None, model: str | None, profile: str | None, mode: str | None,
                   max_turns: int | None, max_cost_usd: float | None, max_tokens: int | None,
                   max_seconds: float | None, sandbox: str | None) -> dict[str, Any]:
    """The model, budget and sandbox flags every run shares, checked and mapped onto settings."""
    if mode is not None and mode not in ("high", "max"):
        raise _fail(f"--mode must be high or max, not {mode!r}", EXIT_BAD_INPUT)
    if sandbox is not None and sandbox not in ("docker", "local"):
        raise _fail(f"--sandbox must be docker or local, not {sandbox!r}", EXIT_BAD_INPUT)
    return {
        "model.base_url": base_url, "model.name": model, "model.profile": profile,
        "budget.max_turns": max_turns, "budget.max_cost_usd": max_cost_usd, "budget.max_tokens": max_tokens,
        "budget.max_seconds": max_seconds, "sandbox.kind": sandbox,
    }


def _guarded(action: Any) -> Any:
    """Run `action`, mapping every expected failure to its one-line message and exit code."""
    from agent.model.errors import ModelError
    from sandbox.base import SandboxError

    try:
        return action()
    except AgentError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    except (ModelError, SandboxError) as exc:
        raise _fail(str(exc), EXIT_ENVIRONMENT) from None
    except KeyboardInterrupt:
        raise _fail("interrupted", EXIT_INTERRUPTED) from None


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        return
    usage, cost = report["usage"], report["cost"]
    err.print(
        f"{report['status']}: {report['stop_reason']}\n"
        f"branch {report['branch']} · commit {(report['commit'] or 'none')[:12]} · turns {report['turns']}\n"
        f"tokens in {usage['input_tokens']} (cached {usage['cached_share']:.0%}) out {usage['output_tokens']} · "
        f"cost ${cost['usd']:.4f} / ¥{cost['rmb']:.4f} · calls high {report['calls']['high']} "
        f"max {report['calls']['max']}\nrun dir {report['run_dir']}", markup=False)


@app.command()
def fix(
    task: Annotated[str, typer.Argument(help="A test selector (tests/test_x.py::test_y) or a description.")],
    repo: RepoOpt = Path("."),
    test: TestOpt = [],  # noqa: B006 - typer reads the default
    scope: ScopeOpt = [],  # noqa: B006
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    profile: ProfileOpt = None,
    mode: ModeOpt = None,
    max_turns: TurnsOpt = None,
    max_cost_usd: CostOpt = None,
    max_tokens: TokensOpt = None,
    max_seconds: SecondsOpt = None,
    sandbox: SandboxOpt = None,
    allow_test_edits: Annotated[bool, typer.Option(envvar="AGENT_ALLOW_TEST_EDITS")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Make failing tests pass on a new branch, in a sandbox, within a budget."""
    from agent.fix import FixOptions, run_fix

    overrides = _run_overrides(base_url=base_url, model=model, profile=profile, mode=mode, max_turns=max_turns,
                               max_cost_usd=max_cost_usd, max_tokens=max_tokens, max_seconds=max_seconds,
                               sandbox=sandbox)
    options = FixOptions(task=task, repo=repo, tests=list(test), scopes=list(scope), overrides=overrides,
                         mode=mode, allow_test_edits=allow_test_edits)
    report, code = _guarded(lambda: run_fix(options, _progress))
    _print_report(report, json_out)
    raise typer.Exit(code)


@app.command()
def review(
    repo: RepoOpt = Path("."),
    base: Annotated[str | None, typer.Option(envvar="AGENT_BASE", help="Where the change starts (default: the "
                                             "fork point from the upstream or main branch).")] = None,
    head: Annotated[str | None, typer.Option(envvar="AGENT_HEAD",
                                             help="The revision to review (default: HEAD).")] = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    profile: ProfileOpt = None,
    mode: ModeOpt = None,
    max_turns: TurnsOpt = None,
    max_cost_usd: CostOpt = None,
    max_tokens: TokensOpt = None,
    max_seconds: SecondsOpt = None,
    sandbox: Annotated[str | None, typer.Option(envvar="AGENT_SANDBOX", help="docker: tests may run, read-only; "
                                                "local: the change's code is not run.")] = None,
    max_findings: Annotated[int | None, typer.Option(envvar="AGENT_MAX_FINDINGS",
                                                     help="Keep at most this many findings.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Read-only review of base..head: findings as comments on lines of the diff. Needs no Docker."""
    from agent.review import ReviewOptions, run_review

    overrides = _run_overrides(base_url=base_url, model=model, profile=profile, mode=mode, max_turns=max_turns,
                               max_cost_usd=max_cost_usd, max_tokens=max_tokens, max_seconds=max_seconds,
                               sandbox=sandbox)
    options = ReviewOptions(overrides=overrides, mode=mode, max_findings=max_findings)
    report, code = _guarded(lambda: run_review(repo, base, head, options=options, progress=_progress))
    if json_out:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        for item in report["comments"] + report["unanchored"]:
            sys.stdout.write(f"{item['path']}:{item['line']}: {item['body']}\n")
        usage, cost = report["usage"], report["cost"]
        err.print(f"{report['status']}: {report['stop_reason']} · {len(report['comments'])} inline, "
                  f"{len(report['unanchored'])} outside the diff · turns {report['turns']} · tokens in "
                  f"{usage['input_tokens']} (cached {usage['cached_share']:.0%}) out {usage['output_tokens']} · "
                  f"cost ${cost['usd']:.4f} / ¥{cost['rmb']:.4f}\nrun dir {report['run_dir']}", markup=False)
    raise typer.Exit(code)


@app.command()
def action() -> None:
    """The GitHub Action's entry point: reads GITHUB_EVENT_NAME, GITHUB_EVENT_PATH and the rest of the Actions env."""
    import os

    from agent.action import run_action, write_outputs

    outcome, code = _guarded(lambda: run_action(log=_progress))
    write_outputs(outcome, os.environ.get("GITHUB_OUTPUT"))
    sys.stdout.write(json.dumps(outcome, indent=2, ensure_ascii=False) + "\n")
    raise typer.Exit(code)


@app.command()
def summary(
    repo: RepoOpt = Path("."),
    test: TestOpt = [],  # noqa: B006
    scope: ScopeOpt = [],  # noqa: B006
    tokens: Annotated[int | None, typer.Option(envvar="AGENT_TOKENS",
                                               help="Token budget (default: [loop] summary_tokens).")] = None,
    run: Annotated[bool, typer.Option("--run", envvar="AGENT_RUN",
                                      help="Run the tests and seed from the traceback.")] = False,
    sandbox: Annotated[str | None, typer.Option(envvar="AGENT_SANDBOX")] = None,
) -> None:
    """Print the structural summary exactly as `fix` would put it in the prompt."""
    from agent.summary_cmd import summary_text

    text = _guarded(lambda: summary_text(repo, list(test), list(scope), tokens, run=run, sandbox=sandbox,
                                         log=_progress))
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command()
def demo(
    sandbox: Annotated[str | None, typer.Option(envvar="AGENT_SANDBOX", help="docker or local (default: docker "
                                                "when an engine and the base image are there).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """The whole `fix` flow on a generated sample repo, against a bundled scripted model: no key needed."""
    from evals.demo import run_demo

    report, code = _guarded(lambda: run_demo(sandbox, _progress))
    _print_report(report, json_out)
    raise typer.Exit(code)


@app.command(name="eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                            "help_option_names": []})
def eval_(ctx: typer.Context) -> None:
    """Run an eval set (SWE-bench format) through `agent fix`; see `agent eval --help`."""
    from evals.run import main as eval_main

    raise typer.Exit(eval_main(list(ctx.args)))


@app.command()
def cost(run_dir: Annotated[Path, typer.Argument(help="A run directory (with trajectory.jsonl).")],
         json_out: JsonOpt = False) -> None:
    """Recompute a run's tokens and cost from its trajectory and today's price table."""
    from agent.costing import recompute

    result = _guarded(lambda: recompute(run_dir))
    if json_out:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        for line in result["lines"]:
            sys.stdout.write(line + "\n")


@app.command()
def doctor() -> None:
    """Check key, endpoint, git, ripgrep, grammars, Docker and the base image; exit 3 if any fails."""
    from agent.doctor import run_checks

    ok = True
    for name, passed, detail in _guarded(lambda: list(run_checks())):
        ok &= passed
        mark = "[green]ok[/]  " if passed else "[red]FAIL[/]"
        err.print(f"{mark} {escape(name)}: {escape(detail)}", markup=True)
    raise typer.Exit(0 if ok else EXIT_ENVIRONMENT)


def _mount_sandbox_app() -> None:
    try:
        from sandbox.cli import sandbox_app
    except ImportError:  # pragma: no cover - the Docker sandbox is part of the package
        return
    app.add_typer(sandbox_app, name="sandbox", help="The Docker sandbox: base image and clean-up.")


_mount_sandbox_app()


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""The command line: the composition root, and the one place that turns errors into exit codes.

Only this module may reach into evals/ (lazily, for `agent demo`).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from agent.config import ConfigError, load_defaults
from agent.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, AgentError
from sandbox.cli import PlainHelpCommand, PlainHelpGroup, sandbox_app

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=PlainHelpGroup,
                  help="A repository-scale coding agent for GLM-5.2.")
err = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"debug": False}
_DEFAULTS = load_defaults()


def _default(dotted: str) -> str:
    section, key = dotted.split(".")
    return str(_DEFAULTS[section][key])


def _help(text: str, default: str) -> str:
    """Option help ending in its effective default (rich markup escaped, so the brackets show)."""
    return f"{text} {escape(f'[default: {default}]')}"


def _opt(text: str, default: str, *names: str, envvar: str, metavar: str = "") -> Any:
    return typer.Option(*names, envvar=envvar, metavar=metavar, show_default=False, help=_help(text, default))


def _one_line(message: str) -> str:
    """The first line of a message, without a leading "error:" (the caller adds it once)."""
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()] or ["(no message)"]
    first = lines[0]
    while first.lower().startswith("error:"):
        first = first[len("error:"):].strip()
    return first + (" (more with --debug)" if len(lines) > 1 and not _state["debug"] else "")


def _fail(message: str, code: int) -> typer.Exit:
    if _state["debug"]:
        extra = [line for line in str(message).strip().splitlines()[1:] if line.strip()]
        for line in extra:
            err.print(line, markup=False)
    err.print(f"[bold red]error:[/] {escape(_one_line(message))}", markup=True)
    return typer.Exit(code)


def _progress(line: str) -> None:
    err.print(line, markup=False)


def _version() -> str:
    try:
        return metadata.version("glm-agent")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        from agent import __version__

        return __version__


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"agent {_version()}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_show_version, metavar="",
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", envvar="AGENT_DEBUG", metavar="",
                                        help=_help("Show tracebacks and the model client's log.", "off"))] = False,
) -> None:
    """A repository-scale coding agent for GLM-5.2."""
    _state["debug"] = debug
    logger = logging.getLogger("agent")
    if debug:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    else:
        logger.addHandler(logging.NullHandler())  # retries and warnings end in the one error line
        logger.propagate = False


RepoOpt = Annotated[Path, _opt("The repository.", "the current directory", "--repo", envvar="AGENT_REPO",
                               metavar="DIR")]
TestOpt = Annotated[list[str], _opt("A target test selector (repeatable; the variable: space-separated).",
                                    "the TASK when it is a selector", "--test", envvar="AGENT_TEST",
                                    metavar="SELECTOR")]
ScopeOpt = Annotated[list[str], _opt("A directory to focus on and fence edits to (repeatable).",
                                     "the whole repository", "--scope", envvar="AGENT_SCOPE", metavar="DIR")]
JsonOpt = Annotated[bool, _opt("Print the report as JSON on stdout.", "off", "--json", envvar="AGENT_JSON")]
BaseUrlOpt = Annotated[str | None, _opt("OpenAI-compatible endpoint (…/chat/completions is added).",
                                        _default("model.base_url"), envvar="AGENT_BASE_URL", metavar="URL")]
ModelOpt = Annotated[str | None, _opt("Model name sent to the endpoint.", _default("model.name"),
                                      envvar="AGENT_MODEL", metavar="NAME")]
ProfileOpt = Annotated[str | None, _opt("Request profile: zai, zai-coding, vllm, sglang.",
                                        _default("model.profile"), envvar="AGENT_PROFILE", metavar="NAME")]
ModeOpt = Annotated[str | None, _opt("Force high or max for every call.",
                                     f"chosen per call by the policy ({_default('model.default_mode')} "
                                     "unless critical)", envvar="AGENT_MODE", metavar="high|max")]
TurnsOpt = Annotated[int | None, _opt("Stop after this many model calls.", _default("budget.max_turns"),
                                      envvar="AGENT_MAX_TURNS", metavar="N")]
CostOpt = Annotated[float | None, _opt("Stop before the spend would pass this many US dollars.",
                                       _default("budget.max_cost_usd"), envvar="AGENT_MAX_COST_USD",
                                       metavar="USD")]
TokensOpt = Annotated[int | None, _opt("Stop before input plus output tokens pass this many.",
                                       _default("budget.max_tokens"), envvar="AGENT_MAX_TOKENS", metavar="N")]
SecondsOpt = Annotated[float | None, _opt("Wall-clock limit of the whole run, in seconds.",
                                          _default("budget.max_seconds"), envvar="AGENT_MAX_SECONDS",
                                          metavar="S")]
SandboxOpt = Annotated[str | None, _opt("Where tests and commands run: docker or local.",
                                        _default("sandbox.kind"), envvar="AGENT_SANDBOX", metavar="docker|local")]


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
    """Run `action`, mapping every failure to one line and its exit code; a traceback only with --debug."""
    from agent.model.errors import ModelError
    from sandbox.base import SandboxError

    try:
        return action()
    except (typer.Exit, typer.Abort, typer.TyperException):  # typer vendors click: no `click` import
        raise
    except KeyboardInterrupt:
        raise _fail("interrupted", EXIT_INTERRUPTED) from None
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
        if _state["debug"]:
            traceback.print_exc()
        if isinstance(exc, AgentError):
            raise _fail(str(exc), exc.exit_code) from None
        if isinstance(exc, ConfigError):
            raise _fail(str(exc), EXIT_BAD_INPUT) from None
        if isinstance(exc, (ModelError, SandboxError)):
            raise _fail(str(exc), EXIT_ENVIRONMENT) from None
        raise _fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                    EXIT_ENVIRONMENT) from None


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        if report["status"] == "error":  # stdout is for the report; the error is still said, once
            err.print(f"error: {report['stop_reason']}", markup=False)
        return
    usage, cost = report["usage"], report["cost"]
    err.print(
        f"{report['status']}: {report['stop_reason']}\n"
        f"branch {report['branch'] or 'none (no commit)'} · commit {(report['commit'] or 'none')[:12]} · "
        f"turns {report['turns']}\n"
        f"tokens in {usage['input_tokens']} (cached {usage['cached_share']:.0%}) out {usage['output_tokens']} · "
        f"cost ${cost['usd']:.4f} / ¥{cost['rmb']:.4f} · calls high {report['calls']['high']} "
        f"max {report['calls']['max']}\nrun dir {report['run_dir']}", markup=False)


@app.command(cls=PlainHelpCommand)
def fix(
    task: Annotated[str, typer.Argument(metavar="TASK",
                                              help="A test selector (tests/test_x.py::test_y) or a description.")],
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
    allow_test_edits: Annotated[bool, _opt("Let the agent edit test files (otherwise they are read-only).",
                                           "off", "--allow-test-edits", envvar="AGENT_ALLOW_TEST_EDITS")] = False,
    mirror_local: Annotated[bool, _opt("Docker: build the environment with the package versions of this "
                                       "project's local venv (the repo's .venv, or the active one if it has "
                                       "the project installed).", "off; [sandbox] mirror_local",
                                       "--mirror-local", envvar="AGENT_MIRROR_LOCAL")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Make failing tests pass on a new branch, in a sandbox, within a budget."""
    from agent.fix import FixOptions, run_fix

    overrides = _run_overrides(base_url=base_url, model=model, profile=profile, mode=mode, max_turns=max_turns,
                               max_cost_usd=max_cost_usd, max_tokens=max_tokens, max_seconds=max_seconds,
                               sandbox=sandbox)
    overrides["sandbox.mirror_local"] = True if mirror_local else None
    options = FixOptions(task=task, repo=repo, tests=list(test), scopes=list(scope), overrides=overrides,
                         mode=mode, allow_test_edits=allow_test_edits)
    report, code = _guarded(lambda: run_fix(options, _progress))
    _print_report(report, json_out)
    raise typer.Exit(code)


@app.command(cls=PlainHelpCommand)
def review(
    repo: RepoOpt = Path("."),
    base: Annotated[str | None, _opt("Where the change starts.", "the fork point from the upstream or main "
                                     "branch", envvar="AGENT_BASE", metavar="REF")] = None,
    head: Annotated[str | None, _opt("The revision to review.", "HEAD", envvar="AGENT_HEAD", metavar="REF")] = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    profile: ProfileOpt = None,
    mode: ModeOpt = None,
    max_turns: TurnsOpt = None,
    max_cost_usd: CostOpt = None,
    max_tokens: TokensOpt = None,
    max_seconds: SecondsOpt = None,
    sandbox: Annotated[str | None, _opt("docker: tests may run, read-only; local: the change's code is not run.",
                                        _default("sandbox.kind"), envvar="AGENT_SANDBOX",
                                        metavar="docker|local")] = None,
    max_findings: Annotated[int | None, _opt("Keep at most this many findings.", _default("review.max_findings"),
                                             envvar="AGENT_MAX_FINDINGS", metavar="N")] = None,
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


@app.command(cls=PlainHelpCommand)
def action() -> None:
    """The GitHub Action's entry point: reads GITHUB_EVENT_NAME, GITHUB_EVENT_PATH and the rest of the Actions env."""
    import os

    from agent.action import run_action, write_outputs

    outcome, code = _guarded(lambda: run_action(log=_progress))
    write_outputs(outcome, os.environ.get("GITHUB_OUTPUT"))
    sys.stdout.write(json.dumps(outcome, indent=2, ensure_ascii=False) + "\n")
    raise typer.Exit(code)


@app.command(cls=PlainHelpCommand)
def summary(
    repo: RepoOpt = Path("."),
    test: TestOpt = [],  # noqa: B006
    scope: ScopeOpt = [],  # noqa: B006
    tokens: Annotated[int | None, _opt("Token budget of the summary.", _default("loop.summary_tokens"),
                                       envvar="AGENT_TOKENS", metavar="N")] = None,
    run: Annotated[bool, _opt("Run the tests and seed from the traceback.", "off", "--run",
                              envvar="AGENT_RUN")] = False,
    sandbox: Annotated[str | None, _opt("Where --run runs the tests: docker or local.", _default("sandbox.kind"),
                                        envvar="AGENT_SANDBOX", metavar="docker|local")] = None,
) -> None:
    """Print the structural summary exactly as `fix` would put it in the prompt."""
    from agent.summary_cmd import summary_text

    text = _guarded(lambda: summary_text(repo, list(test), list(scope), tokens, run=run, sandbox=sandbox,
                                         log=_progress))
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command(cls=PlainHelpCommand)
def demo(
    sandbox: Annotated[str | None, _opt("Where the demo's tests run: docker or local.", "docker when an engine "
                                        "and the base image are there, else local", envvar="AGENT_SANDBOX",
                                        metavar="docker|local")] = None,
    json_out: JsonOpt = False,
) -> None:
    """The whole `fix` flow on a generated sample repo, against a bundled scripted model: no key needed."""
    from evals.demo import run_demo

    report, code = _guarded(lambda: run_demo(sandbox, _progress))
    _print_report(report, json_out)
    raise typer.Exit(code)


@app.command(name="eval", cls=PlainHelpCommand)
def eval_(
    instances: Annotated[Path | None, _opt("SWE-bench-format JSONL of instances.", "the bundled set",
                                           "--instances", envvar="AGENT_EVAL_INSTANCES", metavar="FILE")] = None,
    ids: Annotated[list[str], _opt("Only this instance id (repeatable).", "every instance", "--id",
                                   envvar="AGENT_EVAL_IDS", metavar="ID")] = [],  # noqa: B006
    workers: Annotated[int | None, _opt("Instances run in parallel.", "from the CPU count", "--workers",
                                        envvar="AGENT_EVAL_WORKERS", metavar="N")] = None,
    sandbox: Annotated[str, _opt("Where each instance's tests run: docker or local.", "docker", "--sandbox",
                                 envvar="AGENT_EVAL_SANDBOX", metavar="docker|local")] = "docker",
    base_url: Annotated[str | None, _opt("A real OpenAI-compatible endpoint (needs GLM_API_KEY).",
                                         "the oracle (the gold patch replayed through the tools)", "--base-url",
                                         envvar="AGENT_EVAL_BASE_URL", metavar="URL")] = None,
    model: Annotated[str | None, _opt("Model name for a real endpoint.", _default("model.name"), "--model",
                                      envvar="AGENT_EVAL_MODEL", metavar="NAME")] = None,
    out: Annotated[Path | None, _opt("Output directory (predictions.jsonl, results.jsonl, metrics.json).",
                                     "a new temporary directory", "--out", envvar="AGENT_EVAL_OUT",
                                     metavar="DIR")] = None,
    executor: Annotated[str, _opt("How instances are spread: local or ray.", "local", "--executor",
                                  envvar="AGENT_EVAL_EXECUTOR", metavar="local|ray")] = "local",
    ray_address: Annotated[str | None, _opt("Join this Ray cluster (with --executor ray).", "a local cluster",
                                            "--ray-address", envvar="AGENT_EVAL_RAY_ADDRESS",
                                            metavar="ADDR")] = None,
    keep: Annotated[bool, _opt("Keep per-instance repositories and grading checkouts.", "off", "--keep",
                               envvar="AGENT_EVAL_KEEP")] = False,
    agent_arg: Annotated[list[str], _opt("Extra `agent fix` argument, e.g. --agent-arg=--max-turns=20 "
                                         "(repeatable).", "none", "--agent-arg", envvar="AGENT_EVAL_AGENT_ARG",
                                         metavar="ARG")] = [],  # noqa: B006
) -> None:
    """Run an eval set (SWE-bench format) through `agent fix`, grade it, write predictions and metrics."""
    from evals.run import main as eval_main

    argv = ["--sandbox", sandbox, "--executor", executor]
    for flag, value in (("--instances", instances), ("--workers", workers), ("--base-url", base_url),
                        ("--model", model), ("--out", out), ("--ray-address", ray_address)):
        if value is not None:
            argv += [flag, str(value)]
    if ids:
        argv += ["--ids", *ids]
    argv += ["--keep"] if keep else []
    argv += [f"--agent-arg={arg}" for arg in agent_arg]
    raise typer.Exit(_guarded(lambda: eval_main(argv)))


@app.command(cls=PlainHelpCommand)
def cost(run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR",
                                                              help="A run directory (with trajectory.jsonl).")],
         json_out: JsonOpt = False) -> None:
    """Recompute a run's tokens and cost from its trajectory and today's price table."""
    from agent.costing import recompute

    result = _guarded(lambda: recompute(run_dir))
    if json_out:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        for line in result["lines"]:
            sys.stdout.write(line + "\n")


@app.command(cls=PlainHelpCommand)
def doctor() -> None:
    """Check key, endpoint, git, ripgrep, grammars, Docker and the base image; exit 3 if any fails."""
    from agent.doctor import run_checks

    ok = True
    for name, passed, detail in _guarded(lambda: list(run_checks())):
        ok &= passed
        mark = "[green]ok[/]  " if passed else "[red]FAIL[/]"
        err.print(f"{mark} {escape(name)}: {escape(detail)}", markup=True)
    raise typer.Exit(0 if ok else EXIT_ENVIRONMENT)


app.add_typer(sandbox_app, name="sandbox", help="The Docker sandbox: base image and clean-up.")


def main() -> None:
    app(prog_name="agent")


if __name__ == "__main__":
    main()

"""`python -m evals.run`: run an instance set through `agent fix`, grade it, write predictions and metrics.

Outputs in --out: predictions.jsonl (the official harness's format: instance_id,
model_name_or_path, model_patch), results.jsonl (everything measured per
instance), metrics.json and a printed table. Resumable: instances already in
results.jsonl without an error are skipped (errored ones run again; the latest
record wins). Without --base-url the model is the oracle (the gold patch replayed
through the agent's tools); with it, a real endpoint (GLM_API_KEY).

    python -m evals.run [--instances FILE] [--ids ID ...] [--workers N] [--sandbox docker|local]
                        [--base-url URL] [--model NAME] [--out DIR] [--executor local|ray]
                        [--task tests|description]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from evals.executors import default_workers, make_executor
from evals.instances import BUNDLED, Instance, load_instances
from evals.metrics import instance_table, summarize, summary_lines
from evals.runner import RunConfig, config_dict, prepare_environment, run_instance


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def latest(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per instance_id, the last one written (a rerun of an errored instance wins)."""
    return list({r["instance_id"]: r for r in records}.values())


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def prediction(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result.get(k, "") for k in ("instance_id", "model_name_or_path", "model_patch")}


def run_set(instances: list[Instance], config: RunConfig, out: Path, workers: int | None = None,
            executor: str = "local", address: str | None = None, console: Console | None = None,
            show_progress: bool = True) -> dict[str, Any]:
    """Run what is not yet in `out`, append as each finishes, return the summary of everything in `out`."""
    console = console or Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    results_path, preds_path = out / "results.jsonl", out / "predictions.jsonl"
    done = {r["instance_id"] for r in latest(read_jsonl(results_path)) if not r.get("error")}
    todo = [i for i in instances if i.instance_id not in done]
    if done:
        console.print(f"resuming: {len(done)} done, {len(todo)} to run (errored ones run again)")
    seen_envs: set[tuple[str, str, str]] = set()
    for inst in todo:  # build each environment image once, before the workers race to build it
        env = inst.environment_setup
        key = (env.package or env.mirror, env.version, env.python)
        if config.sandbox == "docker" and key not in seen_envs:
            seen_envs.add(key)
            took = prepare_environment(inst, config, log=lambda line: console.print(f"  {line}", markup=False))
            if took > 5:
                console.print(f"environment for {key[0]} {key[1]} ready in {took:.0f} s")
    shared = config_dict(config)
    progress = Progress(TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
                        TimeElapsedColumn(), console=console, disable=not show_progress)
    resolved = 0
    with progress:
        bar = progress.add_task("eval", total=len(todo), last="")
        for result in make_executor(executor, workers, address).run(run_instance, [i.to_dict() for i in todo],
                                                                    shared):
            append_jsonl(results_path, result)
            append_jsonl(preds_path, prediction(result))
            resolved += bool(result.get("resolved"))
            mark = "✓" if result.get("resolved") else "✗"
            progress.update(bar, advance=1, last=f"{mark} {result['instance_id']} · {resolved} resolved")
            if result.get("error"):
                console.print(f"[red]{result['instance_id']}[/]: {result['error'][:400]}")
    everything = latest(read_jsonl(results_path))
    tmp = preds_path.with_suffix(".tmp")  # one prediction per instance: the latest run's
    tmp.write_text("".join(json.dumps(prediction(r), ensure_ascii=False) + "\n" for r in everything),
                   encoding="utf-8")
    tmp.replace(preds_path)
    wanted = {i.instance_id for i in instances}
    results = [r for r in everything if r["instance_id"] in wanted]
    summary = summarize(results)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return {"summary": summary, "results": results}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m evals.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=Path, default=BUNDLED, help="SWE-bench-format JSONL (default: bundled)")
    ap.add_argument("--ids", nargs="*", help="only these instance ids")
    ap.add_argument("--workers", type=int, default=None, help=f"parallel instances (default {default_workers()})")
    ap.add_argument("--sandbox", choices=("docker", "local"), default="docker")
    ap.add_argument("--base-url", default=os.environ.get("AGENT_EVAL_BASE_URL"),
                    help="a real OpenAI-compatible endpoint (needs GLM_API_KEY); default: the oracle")
    ap.add_argument("--model", default=None, help="model name for a real endpoint")
    ap.add_argument("--out", type=Path, default=None, help="output directory (default: a new temp dir)")
    ap.add_argument("--executor", choices=("local", "ray"), default="local")
    ap.add_argument("--ray-address", default=None, help="join a Ray cluster (with --executor ray)")
    ap.add_argument("--keep", action="store_true", help="keep per-instance repos and grading checkouts")
    ap.add_argument("--task", choices=("tests", "description"), default="tests",
                    help="tests: FAIL_TO_PASS are the targets; description: the issue text alone (issue_statement, "
                         "else problem_statement), the agent reproduces first, and resolved also needs a branch test "
                         "that fails on the base commit and passes on the branch")
    ap.add_argument("--agent-arg", action="append", default=[],
                    help="extra `agent fix` argument, e.g. --agent-arg=--max-turns=20 (repeatable)")
    args = ap.parse_args(argv)
    console = Console(stderr=True)
    if args.base_url and not (os.environ.get("GLM_API_KEY") or os.environ.get("ZAI_API_KEY")):
        console.print("[red]error:[/] --base-url needs GLM_API_KEY (or ZAI_API_KEY)")
        return 2
    try:
        instances = load_instances(args.instances, args.ids)
    except (OSError, KeyError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="evals-run-"))
    config = RunConfig(work=str(out / "work"), sandbox=args.sandbox, base_url=args.base_url, model=args.model,
                       extra_args=list(args.agent_arg), keep=args.keep, task=args.task)
    started = time.monotonic()
    outcome = run_set(instances, config, out, args.workers, args.executor, args.ray_address, console)
    console.print(instance_table(outcome["results"]))
    for line in summary_lines(outcome["summary"]):
        print(line)
    print(f"predictions: {out / 'predictions.jsonl'} · results: {out / 'results.jsonl'} · "
          f"wall {time.monotonic() - started:.0f} s")
    summary = outcome["summary"]
    return 0 if summary["resolved"] == summary["instances"] else 1


if __name__ == "__main__":
    sys.exit(main())

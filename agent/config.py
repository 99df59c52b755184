"""Settings: packaged defaults, the user's config file, the repo's .agent.toml, AGENT_* variables, flags.

Everything tunable (profiles, prices, budgets, policy globs, sandbox limits)
is data in `defaults.toml`; this module only merges and validates it.

Two kinds of source, two levels of trust. The user's own config file
(`$XDG_CONFIG_HOME/agent/config.toml`), AGENT_* variables and flags may set
anything. A repository's `.agent.toml` is written by whoever controls the
repository, so it may only describe the repository (`REPO_KEYS`): it must not
choose where the key is sent, which model is billed, the prices or how much may
be spent. Any other key there is dropped with one warning.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConfigError(ValueError):
    """A setting is malformed; the CLI maps it to exit 2."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSettings(_Section):
    name: str
    base_url: str
    profile: str
    default_mode: Literal["off", "high", "max"] = "high"
    max_tokens: int = Field(ge=1, le=131072)
    context_window: int = Field(ge=1024)
    stream: bool = True
    tool_stream: bool = True
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    connect_timeout: float = 8.0
    idle_timeout: float = 300.0
    max_retries: int = Field(default=4, ge=0)
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    overload_backoff_base: float = 2.0
    overload_backoff_cap: float = 60.0


class PriceRow(_Section):
    input: float
    cached_input: float
    output: float


class BudgetSettings(_Section):
    max_turns: int = Field(ge=1)
    max_tokens: int = Field(ge=1)
    max_cost_usd: float = Field(gt=0)
    max_seconds: float = Field(gt=0)


class PolicySettings(_Section):
    critical: list[str] = []
    max_after_failures: int = Field(default=0, ge=0)


class SandboxSettings(_Section):
    kind: Literal["docker", "local"] = "docker"
    python: str = "auto"
    mirror_local: bool = False
    setup: list[str] = []
    test_command: str = "python -m pytest"
    test_timeout: float = 300
    memory: str = "2g"
    cpus: float = 1.5
    pids: int = 512


class ReviewSettings(_Section):
    max_findings: int = Field(default=5, ge=0)
    diff_chars: int = Field(default=60000, ge=1000)


class ToolSettings(_Section):
    search_line_chars: int = Field(default=200, ge=20)
    view_lines: int = Field(default=200, ge=10)
    view_line_chars: int = Field(default=1000, ge=40)
    listing_entries: int = Field(default=300, ge=10)
    snippet_context: int = Field(default=3, ge=0)
    edit_candidates: int = Field(default=3, ge=1)
    test_output_chars: int = Field(default=6000, ge=500)


class LoopSettings(_Section):
    max_observation_chars: int = 12000
    summary_tokens: int = 2048
    prompt_ceiling: int = Field(default=0, ge=0)


class ReproductionSettings(_Section):
    """The reproduction phase of a task that names no failing test (agent/reproduction_phase.py)."""

    turns_share: float = Field(default=0.5, gt=0, le=1)
    cost_share: float = Field(default=0.5, gt=0, le=1)
    output_chars: int = Field(default=2000, ge=200)


class Settings(_Section):
    model: ModelSettings
    profiles: dict[str, dict[str, Any]]
    pricing: dict[str, dict[str, PriceRow]]
    budget: BudgetSettings
    policy: PolicySettings
    sandbox: SandboxSettings
    tools: ToolSettings
    review: ReviewSettings
    loop: LoopSettings
    reproduction: ReproductionSettings = Field(default_factory=ReproductionSettings)

    def profile(self, name: str | None = None) -> dict[str, Any]:
        key = name or self.model.profile
        if key not in self.profiles:
            raise ConfigError(f"unknown model profile {key!r}; known: {', '.join(sorted(self.profiles))}")
        return self.profiles[key]

    def prices(self, model: str | None = None) -> dict[str, PriceRow]:
        """Price rows for a model, per currency; an unknown model has no price (cost 0, flagged)."""
        name = model or self.model.name
        return {cur: table[name] for cur, table in self.pricing.items() if name in table}


# Flag/env names mapped onto their place in the settings tree.
ENV_KEYS: dict[str, tuple[str, str]] = {
    "BASE_URL": ("model", "base_url"),
    "MODEL": ("model", "name"),
    "PROFILE": ("model", "profile"),
    "MAX_TURNS": ("budget", "max_turns"),
    "MAX_COST_USD": ("budget", "max_cost_usd"),
    "MAX_TOKENS": ("budget", "max_tokens"),
    "MAX_SECONDS": ("budget", "max_seconds"),
    "SANDBOX": ("sandbox", "kind"),
    "MAX_FINDINGS": ("review", "max_findings"),
    "CRITICAL": ("policy", "critical"),
    "SETUP": ("sandbox", "setup"),
    "MIRROR_LOCAL": ("sandbox", "mirror_local"),
}
# Settings that hold lists: their variables are split on commas and newlines.
LIST_KEYS = {("policy", "critical"), ("sandbox", "setup")}


def split_list(text: str) -> list[str]:
    """`a, b` or one item a line (how an Actions input arrives) -> ["a", "b"]."""
    return [item.strip() for line in text.splitlines() for item in line.split(",") if item.strip()]


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: `override` merged into `base`, tables into tables, everything else replaced.
    The one merge of settings layers and of request fragments into a request body."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# What a repository may say about itself: section -> keys (None: every key of the section).
REPO_KEYS: dict[str, frozenset[str] | None] = {
    "policy": frozenset({"critical"}),
    "sandbox": frozenset({"python", "setup", "test_command", "test_timeout"}),
    "review": None,
}


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CONFIG_HOME/agent/config.toml` (default `~/.config/agent/config.toml`)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "agent" / "config.toml"


def repo_subset(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The part of a repository's config it may set, and the dotted keys dropped from it."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for section, body in data.items():
        allowed = REPO_KEYS.get(section, frozenset())
        if not isinstance(body, dict):
            dropped.append(section)
            continue
        for key, value in body.items():
            if allowed is None or key in allowed:
                kept.setdefault(section, {})[key] = value
            else:
                dropped.append(f"{section}.{key}")
    return kept, dropped


def _read_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from exc


def _read_file(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc


def load_defaults() -> dict[str, Any]:
    text = resources.files("agent").joinpath("defaults.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_settings(repo: Path | None = None, overrides: dict[str, Any] | None = None,
                  env: Mapping[str, str] | None = None, repo_config: str | None = None,
                  warn: Callable[[str], None] | None = None) -> Settings:
    """Merge defaults, the user's config file, `<repo>/.agent.toml` (its allowed keys only),
    AGENT_* variables and explicit overrides (flags), in that order.

    `repo_config` is the text of a trusted `.agent.toml` to use instead of the file in `repo`
    (a review takes it from the base commit). `warn` hears, once, which repository keys were
    ignored. `env=None` reads the process environment (and with it the user's config file).
    """
    environ = os.environ if env is None else env
    data = load_defaults()
    user_path = user_config_path(environ)
    user_text = _read_file(user_path)
    if user_text:
        data = deep_merge(data, _read_toml(user_text, str(user_path)))
    text, where = repo_config, ".agent.toml (given)"
    if text is None and repo is not None:
        where = str(Path(repo) / ".agent.toml")
        text = _read_file(Path(repo) / ".agent.toml")
    if text:
        kept, dropped = repo_subset(_read_toml(text, where))
        if dropped and warn is not None:
            warn(f"warning: .agent.toml: ignored {', '.join(dropped)} (a repository may set only "
                 "policy.critical, sandbox.python/setup/test_command/test_timeout and review.*; "
                 f"put the rest in {user_path})")
        data = deep_merge(data, kept)
    for name, (section, key) in ENV_KEYS.items():
        value = environ.get(f"AGENT_{name}")
        if value:
            data.setdefault(section, {})[key] = (
                split_list(value) if (section, key) in LIST_KEYS else value)
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".", 1)
        data.setdefault(section, {})[key] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"bad setting {where}: {first['msg']}") from exc

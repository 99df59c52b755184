"""What an environment build needs from this host to reach the package index, and which parts are secret.

The index settings (pip's config files, PIP_* variables, proxies) can carry credentials in URLs
(`https://user:token@host/simple`). They reach the build only as the environment of each
`exec` (never the container's config, never a file), and `secrets()` names the strings that
must not appear in anything the build commits.
"""

from __future__ import annotations

import configparser
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

CA_IN_CONTAINER = "/run/agent-ca/ca-certificates.crt"
SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                  "/etc/ssl/cert.pem")
PIP_KEYS = ("index-url", "extra-index-url", "find-links", "trusted-host", "no-index")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
              "all_proxy", "no_proxy")
MIN_SECRET = 6  # shorter strings would match by chance in binary files


@dataclass
class HostNet:
    environment: dict[str, str] = field(default_factory=dict)  # pip's view (PIP_*, proxies, CA)
    mounts: dict[str, str] = field(default_factory=dict)  # host path -> container path (read-only)
    options: dict[str, str] = field(default_factory=dict)  # effective pip source options

    def uv_environment(self) -> dict[str, str]:
        """The same sources for uv, which reads neither pip.conf nor PIP_* (pip's merge-all strategy)."""
        names = {"index-url": "UV_INDEX_URL", "extra-index-url": "UV_EXTRA_INDEX_URL",
                 "find-links": "UV_FIND_LINKS", "trusted-host": "UV_INSECURE_HOST"}
        env = {k: v for k, v in self.environment.items() if not k.startswith("PIP_")}
        env.update({names[k]: v for k, v in self.options.items() if k in names})
        env["UV_INDEX_STRATEGY"] = "unsafe-best-match"
        return env

    def needs_network(self) -> bool:
        """False when every package source is a local path (then the build runs with no network)."""
        if self.options.get("no-index", "").lower() in ("1", "true", "yes", "on"):
            urls = self.options.get("find-links", "").split()
        else:
            urls = self.options.get("index-url", "https://pypi.org/simple").split()
            urls += self.options.get("extra-index-url", "").split() + self.options.get("find-links", "").split()
        return any(urlparse(u).scheme in ("http", "https") for u in urls)

    def secrets(self) -> list[str]:
        return secrets_in(self.environment.values())


def secrets_in(values) -> list[str]:
    """Passwords (and token-style user names) found in URLs among `values`, raw and percent-decoded."""
    found: set[str] = set()
    for value in values:
        for item in str(value).split():
            try:
                parsed = urlparse(item if "://" in item else "//" + item)
                user, password = parsed.username, parsed.password
            except ValueError:
                continue
            candidates = [password] if password else [user]  # a lone user name is usually a token
            if password and user:
                candidates.append(f"{user}:{password}")
            for cand in candidates:
                for form in (cand, unquote(cand or "")):
                    if form and len(form) >= MIN_SECRET:
                        found.add(form)
    return sorted(found, key=len, reverse=True)


def ca_bundle() -> str | None:
    for var in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"):
        path = os.environ.get(var)
        if path and os.path.isfile(path):
            return path
    return next((p for p in SYSTEM_BUNDLES if os.path.isfile(p)), None)


def pip_config_files() -> list[str]:
    """pip's configuration files, weakest first, as pip finds them (global, user, site, PIP_CONFIG_FILE)."""
    env_file = os.environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []  # pip's own switch for "no configuration files"
    dirs = os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files = [os.path.join(d, "pip", "pip.conf") for d in dirs.split(os.pathsep) if d] + ["/etc/pip.conf"]
    if not (env_file and os.path.exists(env_file)):
        config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        files += [os.path.expanduser("~/.pip/pip.conf"), os.path.join(config_home, "pip", "pip.conf")]
    files.append(os.path.join(sys.prefix, "pip.conf"))
    return files + ([env_file] if env_file else [])


def pip_options() -> dict[str, str]:
    """Effective pip source options: pip's config files, overridden by PIP_* variables.

    Read here rather than through `pip config list`: the same files in the same order, without the
    1-3 s a pip subprocess costs on a loaded machine before every environment build.
    """
    merged: dict[str, str] = {}
    for path in pip_config_files():
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in parser.sections():
            for name, value in parser.items(section):
                merged[f"{section}.{name.lower().replace('_', '-').removeprefix('--')}"] = value
    options: dict[str, str] = {}
    for scoped, value in sorted(merged.items()):  # `pip config list` order: the last scope wins
        key = scoped.rpartition(".")[2]
        if key in PIP_KEYS:
            options[key] = value
    for key in PIP_KEYS:
        value = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if value:
            options[key] = value
    return options


def local_paths(value: str) -> list[str]:
    """Existing local directories that a pip option names (file:// URLs or absolute paths)."""
    paths = []
    for item in value.split():
        path = unquote(urlparse(item).path) if item.startswith("file:") else item
        if path.startswith("/") and os.path.exists(path):
            root = Path(path)
            # A file index's pages usually link to ../../files: mount the index root's parent.
            paths.append(str(root.parent if root.name == "simple" else root))
    return paths


def host_net() -> HostNet:
    """The host's CA bundle and pip sources, found now (the CA may change between boots: never baked)."""
    net = HostNet()
    bundle = ca_bundle()
    if bundle:
        net.mounts[os.path.realpath(bundle)] = CA_IN_CONTAINER
        for var in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "GIT_SSL_CAINFO", "CURL_CA_BUNDLE"):
            net.environment[var] = CA_IN_CONTAINER
    net.options = pip_options()
    for key, value in net.options.items():
        net.environment["PIP_" + key.upper().replace("-", "_")] = value
        if key in ("index-url", "extra-index-url", "find-links"):
            for path in local_paths(value):
                net.mounts.setdefault(path, path)
    net.environment.update({v: os.environ[v] for v in PROXY_VARS if os.environ.get(v)})
    return net

"""Where commands run: a warm Docker container (default) or a local subprocess."""

from sandbox.base import ExecResult, Sandbox, SandboxError

__all__ = ["ExecResult", "Sandbox", "SandboxError"]

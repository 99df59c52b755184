"""A contract-faithful fake GLM chat-completions server (glm-api.md §8) for tests and `agent demo`."""

from evals.fake_glm.cache import PrefixCache, canonical_text
from evals.fake_glm.script import EXHAUSTED, HTTP_FAULTS, STREAM_FAULTS
from evals.fake_glm.server import FakeGLM, effective_effort

__all__ = ["EXHAUSTED", "HTTP_FAULTS", "STREAM_FAULTS", "FakeGLM", "PrefixCache", "canonical_text",
           "effective_effort"]

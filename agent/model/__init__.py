"""The model boundary: message types, the GLM client, its errors and pricing."""

from agent.model.types import Completion, Mode, ModelClient, ToolCall, Usage

__all__ = ["Completion", "Mode", "ModelClient", "ToolCall", "Usage"]

"""Request validation of the fake server: the 401/1211/1214/1210 answers of glm-api.md §8."""

from __future__ import annotations

import re
from typing import Any

KNOWN_MODELS = frozenset({
    "glm-5.3", "glm-5.2", "glm-5.1", "glm-5", "glm-4.7", "glm-4.7-flash", "glm-4.7-flashx", "glm-4.6",
    "glm-4.5", "glm-4.5-air", "glm-4.5-x", "glm-4.5-airx", "glm-4.5-flash", "glm-4-32b-0414-128k",
})
EFFORTS = frozenset({"max", "xhigh", "high", "medium", "low", "minimal", "none"})
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")



def _err(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


AUTH_MISSING = (401, _err("1001", "Header中未收到Authentication参数，无法进行身份验证"))
AUTH_BAD = (401, _err("1000", "身份验证失败。"))
UNKNOWN_MODEL = (400, _err("1211", "Unknown Model, please check the model code."))
BAD_MESSAGES = (400, _err("1214", "The messages parameter is illegal. Please check the documentation."))
BAD_PARAM = (400, _err("1210", "API 调用参数有误，请检查文档。"))
OVERFLOW = {
    1261: (400, _err("1261", "Prompt exceeds max length")),
    1210: (400, _err("1210", "tokens in request more than max tokens allowed")),
}

Answer = tuple[int, dict[str, Any]]


def check_auth(header: str | None, api_key: str | None) -> Answer | None:
    if not header or not header.startswith("Bearer ") or not header[7:].strip():
        return AUTH_MISSING
    if api_key is not None and header[7:].strip() != api_key:
        return AUTH_BAD
    return None


def _messages_ok(messages: Any) -> bool:
    if not isinstance(messages, list) or not messages:
        return False
    call_ids: set[str] = set()
    roles: set[str] = set()
    for message in messages:
        if not isinstance(message, dict):
            return False
        role = message.get("role")
        roles.add(role)
        content = message.get("content")
        if role == "assistant":
            if content is not None and not isinstance(content, str):
                return False
            for call in message.get("tool_calls") or []:
                if not isinstance(call, dict) or not call.get("id"):
                    return False
                call_ids.add(call["id"])
        elif role in ("system", "user", "tool"):
            if not isinstance(content, str):
                return False
            if role == "tool" and message.get("tool_call_id") not in call_ids:
                return False
        else:
            return False
    return not roles <= {"system", "assistant"}


def _in(value: Any, lo: float, hi: float, integer: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if integer and not isinstance(value, int):
        return False
    return lo <= value <= hi


def _params_ok(body: dict[str, Any]) -> bool:
    if "max_tokens" in body and not _in(body["max_tokens"], 1, 131072, integer=True):
        return False
    if body.get("temperature") is not None and not _in(body["temperature"], 0, 1):
        return False
    if body.get("top_p") is not None and not _in(body["top_p"], 0.01, 1):
        return False
    if "reasoning_effort" in body and body["reasoning_effort"] not in EFFORTS:
        return False
    if "tool_choice" in body and body["tool_choice"] != "auto":
        return False
    if "request_id" in body:
        rid = body["request_id"]
        if not isinstance(rid, str) or not 6 <= len(rid) <= 64:
            return False
    if "stream" in body and not isinstance(body["stream"], bool):
        return False
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or len(tools) > 128:
            return False
        for tool in tools:
            if not isinstance(tool, dict):
                return False
            fn = tool.get("function")
            if tool.get("type") == "function" and (not isinstance(fn, dict)
                                                   or not TOOL_NAME.match(str(fn.get("name", "")))):
                return False
    return True


def check_body(body: Any, models: frozenset[str] | set[str]) -> Answer | None:
    """The error answer for an invalid body, else None (model, then messages, then parameters)."""
    if not isinstance(body, dict):
        return BAD_PARAM
    if body.get("model") not in models:
        return UNKNOWN_MODEL
    if not _messages_ok(body.get("messages")):
        return BAD_MESSAGES
    if not _params_ok(body):
        return BAD_PARAM
    return None

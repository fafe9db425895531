"""The request bodies the server accepts, as pydantic models: types and ranges checked once.

    >>> CompletionRequest.model_validate({"prompt": "ROMEO:", "max_tokens": 20, "top_k": 40})  # doctest: +SKIP

Design choices:
- **OpenAI's fields, OpenAI's ranges** (temperature, top_p, n, stop, seed, max_tokens,
  logprobs, penalties, stream, stream_options), plus byollm's other samplers as extra fields
  (`top_k`, `min_p`, `typical_p`, `repetition_penalty`) and `ignore_eos` (generate exactly
  max_tokens, for benchmarks), as vLLM and llama.cpp's server do.
- **Strict types**: `"5"` is not an integer and `true` is not a number, so a client's bug
  shows up as a 422 naming the field instead of a silently converted value.
- **Unknown fields are ignored** (clients send `user`, `metadata`, ...), except the features
  that would change the answer if silently dropped (tools, JSON mode, logit_bias, best_of,
  suffix): those are refused with a 400 by `unsupported_fields`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from byollm.config import MAX_SEED
from byollm.generate.processors import SamplingConfig

StopText = Annotated[str, StringConstraints(min_length=1)]
# Refused rather than ignored: the client would get an answer to a different question.
UNSUPPORTED = {
    "tools": "tool calls",
    "functions": "function calls",
    "tool_choice": "tool calls",
    "function_call": "function calls",
    "logit_bias": "logit_bias",
    "suffix": "suffix (insertion)",
}


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class StreamOptions(Strict):
    include_usage: bool = False


class SamplingFields(Strict):
    """What completions and chat share: the model, the length, the sampler, streaming."""

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=100.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: StopText | list[StopText] | None = Field(None, max_length=16)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)  # byollm's (and torch's) seed range
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    # byollm's other samplers (extra fields in the openai client: extra_body={...})
    top_k: int | None = Field(None, ge=0)  # 0 or None: no limit, as everywhere in byollm
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    typical_p: float = Field(1.0, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, gt=0.0, le=100.0)
    ignore_eos: bool = False

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            typical_p=self.typical_p,
            repetition_penalty=self.repetition_penalty,
            frequency_penalty=self.frequency_penalty,
            presence_penalty=self.presence_penalty,
        )

    def stop_strings(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def unsupported_fields(self) -> str | None:
        """The first field set to something this server cannot honour, as a message."""
        extra = self.model_extra or {}
        for name, feature in UNSUPPORTED.items():
            if extra.get(name):  # absent, null, {} and [] mean "not used"
                return f"{name}: {feature} is not supported by this server"
        response_format = extra.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") not in (
            None,
            "text",
        ):
            return "response_format: only {'type': 'text'} is supported (no JSON mode)"
        if extra.get("best_of") not in (None, 1):
            return "best_of: only 1 is supported (use n for several samples)"
        return None


class CompletionRequest(SamplingFields):
    """POST /v1/completions: continue a text (or several, or token ids)."""

    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for completions
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False


class TextPart(Strict):
    type: Literal["text"]
    text: str


class Message(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatRequest(SamplingFields):
    """POST /v1/chat/completions: the assistant's next message after `messages`."""

    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)  # the newer name of max_tokens
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)


class InspectRequest(Strict):
    """POST /v1/byollm/inspect: what the model sees and predicts for a text (the playground)."""

    model: str | None = None
    text: str | None = None
    messages: list[Message] | None = Field(None, min_length=1)
    top_k: int = Field(5, ge=0, le=20)
    layer: int | None = Field(0, ge=0)  # whose attention maps to return; None for none


def schema_error_message(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """A one-line message and the offending parameter, from pydantic's error list.

    A value that matches none of a union's types (`prompt: 5`) gives one error per type, each
    located under the type's name: they become one "expected A or B", or, where one type got
    further (`stop: [""]` is a list, of an empty string), that type's own error.
    """
    field = errors[0]["loc"][:1]
    union = [
        e
        for e in errors
        if e["loc"][:1] == field and len(e["loc"]) > 1 and _is_type_tag(e["loc"][1])
    ]
    first, message = errors[0], None
    if len(union) > 1:
        deeper = [e for e in union if len(e["loc"]) > 2]
        if deeper:
            first = deeper[0]
        else:
            types = [_type_name(e["loc"][1]) for e in union]
            message = f"expected {', '.join(types[:-1])} or {types[-1]}"
    loc = [str(part) for part in first["loc"] if not _is_type_tag(part)]
    message = message or first.get("msg", "invalid value")
    if "input" in first and first.get("type") != "missing":
        message += f" (got {_short(first['input'])})"
    param = ".".join(loc)
    return (f"{param}: {message}" if param else message), param or None


def _is_type_tag(part: Any) -> bool:
    """pydantic names a union's member in an error location: 'str', 'list[int]', ..."""
    part = str(part)
    return part in ("str", "int", "float", "bool") or "[" in part or "-" in part


def _type_name(tag: Any) -> str:
    return str(tag).replace("constrained-str", "str")


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

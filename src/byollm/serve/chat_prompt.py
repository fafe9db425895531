"""OpenAI-style chat messages -> one prompt text, with the templates `byollm chat` uses.

    >>> chat_prompt([Message(role="user", content="Say hi")], mode="instruct")  # doctest: +SKIP
    ('Below is an instruction ... ### Instruction:\\nSay hi\\n\\n### Response:\\n', ['\\n### ', ...])

Two modes, as in `byollm.generate.chat`:
- **instruct** (the checkpoint's config.json has an "instruct" key): the Alpaca template the
  fine-tuning stage trains with. A leading system (or developer) message replaces the Alpaca
  preamble; each user message is an instruction, each assistant message its response.
- **continue**, the fallback for plain (base) models: the conversation as one text, each
  message on its own line(s), a leading system message first. The model continues after the
  last user line, and its reply ends at a blank line.

Rules: system messages come first; an assistant message answers a user message; the last
message is the user's (two user messages in a row are joined with a newline).
"""

from __future__ import annotations

from byollm.errors import ByollmError
from byollm.generate.chat import (
    ALPACA_PREAMBLE,
    MODES,
    REPLY_STOPS,
    format_continue,
    format_instruct,
)
from byollm.serve.schemas import Message


def chat_prompt(messages: list[Message], mode: str) -> tuple[str, list[str]]:
    """The prompt text for `messages` and the stop strings where the reply ends."""
    if mode not in MODES:
        raise ByollmError(f"unknown chat mode {mode!r}; choose one of {MODES}")
    system, turns, user = split_turns(messages)
    if mode == "instruct":
        preamble = system if system is not None else ALPACA_PREAMBLE
        return format_instruct(turns, user, preamble), REPLY_STOPS[mode]
    line = lambda text: text if text.endswith("\n") else text + "\n"
    turns = [(line(u), line(r)) for u, r in turns]
    head = "" if system is None else line(system) + "\n"
    return head + format_continue(turns, line(user)), REPLY_STOPS[mode]


def split_turns(messages: list[Message]) -> tuple[str | None, list[tuple[str, str]], str]:
    """(system text or None, earlier (user, assistant) turns, the last user message)."""
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    user: str | None = None
    for i, message in enumerate(messages):
        role, text = message.role, message.text()
        if role in ("system", "developer"):
            if turns or user is not None:
                raise ByollmError(
                    f"messages[{i}]: a {role} message must come before the conversation starts"
                )
            system.append(text)
        elif role == "user":
            user = text if user is None else user + "\n" + text
        elif user is None:
            raise ByollmError(f"messages[{i}]: an assistant message must answer a user message")
        else:
            turns.append((user, text))
            user = None
    if user is None:
        raise ByollmError("the last message must be the user's (there is nothing to answer)")
    return ("\n".join(system) if system else None), turns, user

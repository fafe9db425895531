"""A chat session: turns of user text and model replies, kept within the context window.

Two modes:
- **instruct**, for instruction-tuned checkpoints (config.json has an `"instruct"` key, as the
  fine-tuning stage writes): each turn is formatted with the Alpaca template the fine-tuning
  uses, and earlier turns are kept as earlier instruction/response pairs:

      Below is an instruction that describes a task. Write a response that appropriately
      completes the request.

      ### Instruction:
      {user text}

      ### Response:
      {model reply}

  The reply stops at `<|endoftext|>` or at the start of a new "### " section.
- **continue**, for base models: the conversation is one growing text; the user's line is
  appended and the model continues it (stopping at a blank line).

When the history no longer fits the model's window (with room for the reply), the oldest turns
are dropped; the current turn alone must fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from byollm.errors import ByollmError
from byollm.generate.engine import Engine, seeded_generator
from byollm.generate.processors import SamplingConfig
from byollm.model.checkpoint import read_checkpoint_config, resolve_checkpoint
from byollm.model.interface import model_block_size, model_device

ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)
MODES = ("instruct", "continue")
# Where a reply ends, besides <|endoftext|>: a new "### " section, or a blank line.
REPLY_STOPS = {"instruct": ["\n### ", "### Instruction"], "continue": ["\n\n"]}


def format_instruct(
    turns: list[tuple[str, str]], user: str, preamble: str = ALPACA_PREAMBLE
) -> str:
    """The Alpaca prompt for `user` after the earlier (user, reply) `turns`.

    >>> format_instruct([], "Say hi")
    'Below is ... request.\\n\\n### Instruction:\\nSay hi\\n\\n### Response:\\n'
    """
    text = preamble
    for past_user, reply in turns + [(user, None)]:
        text += f"\n\n### Instruction:\n{past_user}\n\n### Response:\n"
        if reply is not None:
            text += reply
    return text


def checkpoint_chat_mode(checkpoint: str | Path) -> str:
    """ "instruct" for an instruction-tuned checkpoint (its config.json has "instruct"), else
    "continue"."""
    extras = read_checkpoint_config(resolve_checkpoint(checkpoint))
    return "instruct" if extras.get("instruct") else "continue"


def format_continue(turns: list[tuple[str, str]], user: str) -> str:
    return "".join(u + r for u, r in turns) + user


@dataclass
class ChatSession:
    engine: Engine
    mode: str = "continue"
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    max_new_tokens: int = 200
    seed: int | None = None
    turns: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ByollmError(f"unknown chat mode {self.mode!r}; choose one of {MODES}")
        # One random stream for the whole session: the same seed replays the same chat.
        self._generator = seeded_generator(self.seed, model_device(self.engine.model))

    def prompt_for(self, user: str) -> str:
        """The full prompt for this turn, dropping the oldest turns until it fits."""
        fmt = format_instruct if self.mode == "instruct" else format_continue
        if self.mode == "continue" and not user.endswith("\n"):
            user += "\n"
        block_size = model_block_size(self.engine.model)
        turns = list(self.turns)
        while True:
            prompt = fmt(turns, user)
            if block_size is None:
                return prompt
            budget = block_size - min(self.max_new_tokens, block_size // 2)
            if len(self.engine.encode_prompt(prompt)) <= budget or not turns:
                break
            turns.pop(0)
        if len(self.engine.encode_prompt(prompt)) > block_size:
            raise ByollmError(
                f"this message is too long for the model's context window of {block_size} "
                "tokens; send a shorter one"
            )
        return prompt

    def reply(self, user: str, on_text=None) -> str:
        """Generate the reply to `user`, streaming pieces to `on_text`, and remember the turn."""
        prompt = self.prompt_for(user)
        stop = REPLY_STOPS[self.mode]
        pieces = []
        for piece in self.engine.stream(
            prompt,
            max_new_tokens=self.max_new_tokens,
            sampling=self.sampling,
            generator=self._generator,
            stop=stop,
        ):
            pieces.append(piece)
            if on_text is not None:
                on_text(piece)
        reply = "".join(pieces)
        if self.mode == "continue" and not user.endswith("\n"):
            user += "\n"
        self.turns.append((user, reply))
        return reply

    def reset(self):
        self.turns.clear()

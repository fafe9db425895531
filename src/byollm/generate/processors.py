"""Logits processors: small functions that reshape the next-token distribution.

A language model gives, for every row of a batch, one score (logit) per vocabulary entry. A
*sampling strategy* is a chain of processors applied to those logits before one token is drawn:

    logits ──► penalties ──► banned ──► temperature ──► top-k ──► top-p ──► min-p ──► typical-p
           ──► softmax ──► draw (or argmax when temperature == 0)

Design choices:
- Every processor is a tiny class with `__call__(logits, context) -> logits`: `logits` is
  `(B, V)` float, `context` is `(B, T)` long, the ids seen so far (prompt + generated). They never
  modify their input in place, so a notebook can plot the distribution before and after each one.
- Filtering processors set removed entries to `-inf` instead of renormalising probabilities:
  softmax of what is left *is* the renormalised distribution, and the chain stays in logit space.
- Ties are kept, never broken by position: top-k keeps every token as likely as the k-th, top-p
  keeps every token as likely as the last one needed to reach p. The result never depends on the
  order `torch.sort` happens to put equal values in.
- Every filter keeps at least the most likely token, so sampling always has something to draw.
- The order follows Hugging Face transformers (penalties first, then temperature, then the
  truncation filters), so the same settings mean the same thing here and there.
- `SamplingConfig` validates its values once, with messages naming the parameter and the valid
  range; `build_processors(config)` turns it into the chain. The ranges keep every float32
  intermediate finite (`byollm.config.TEMPERATURE_RANGE` and the ranges below), so no NaN reaches the sampler.

    >>> logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    >>> TopK(2)(logits, None)
    tensor([[2., 1., -inf, -inf]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from byollm.config import check_number, check_temperature, check_top_k
from byollm.errors import ByollmError

NEG_INF = float("-inf")

# The ranges of the knobs that scale logits. They lie far outside any useful setting and keep
# every intermediate float32 finite: logits / temperature, logits * repetition_penalty and
# frequency_penalty * count can neither overflow to inf nor (by 0 * inf) become NaN.
PENALTY_FACTOR_RANGE = (1e-2, 1e2)  # repetition_penalty
MAX_ADDITIVE_PENALTY = 100.0  # |frequency_penalty|, |presence_penalty| (OpenAI allows 2)


class Temperature:
    """Divide logits by `t`: t < 1 sharpens the distribution, t > 1 flattens it.

    >>> Temperature(2.0)(torch.tensor([[2.0, 0.0]]), None)
    tensor([[1., 0.]])
    """

    def __init__(self, temperature: float):
        self.temperature = temperature

    def __call__(self, logits: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        return logits / self.temperature


class TopK:
    """Keep the `k` most likely tokens (and any tied with the k-th); drop the rest.

    >>> TopK(1)(torch.tensor([[1.0, 3.0, 3.0, 0.0]]), None)   # the tie at 3.0 is kept
    tensor([[-inf, 3., 3., -inf]])
    """

    def __init__(self, k: int):
        self.k = k

    def __call__(self, logits: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        if self.k >= logits.shape[-1]:
            return logits
        kth_value = torch.topk(logits, self.k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth_value, NEG_INF)


class TopP:
    """Nucleus sampling: keep the smallest set of most likely tokens whose mass reaches `p`.

    With probabilities [0.5, 0.3, 0.2] and p = 0.7, the first two tokens (0.8 >= 0.7) survive.
    p = 1 keeps everything; a tiny p keeps only the most likely token (and its ties).

    >>> TopP(0.7)(torch.log(torch.tensor([[0.5, 0.3, 0.2]])), None).exp()
    tensor([[0.5000, 0.3000, 0.0000]])
    """

    def __init__(self, p: float):
        self.p = p

    def __call__(self, logits: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        if self.p >= 1.0:
            return logits
        probs = torch.softmax(logits.float(), dim=-1)
        sorted_probs, _ = torch.sort(probs, dim=-1, descending=True)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        # A token is needed while the mass of the tokens before it is still below p.
        n_needed = (mass_before < self.p).sum(dim=-1, keepdim=True).clamp(min=1)
        threshold = sorted_probs.gather(-1, n_needed - 1)  # probability of the last one needed
        return logits.masked_fill(probs < threshold, NEG_INF)


class MinP:
    """Keep tokens at least `min_p` times as likely as the most likely one.

    The cut adapts to the model's confidence: a peaked distribution keeps few tokens, a flat one
    keeps many. With probabilities [0.6, 0.3, 0.1] and min_p = 0.25 the cut is 0.15.

    >>> MinP(0.25)(torch.log(torch.tensor([[0.6, 0.3, 0.1]])), None).exp()
    tensor([[0.6000, 0.3000, 0.0000]])
    """

    def __init__(self, min_p: float):
        self.min_p = min_p

    def __call__(self, logits: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        if self.min_p <= 0.0:
            return logits
        probs = torch.softmax(logits.float(), dim=-1)
        cut = self.min_p * probs.max(dim=-1, keepdim=True).values
        return logits.masked_fill(probs < cut, NEG_INF)


class TypicalP:
    """Locally typical sampling (Meister et al., 2022): keep the tokens whose surprise
    (-log p) is closest to the distribution's entropy, until their mass reaches `mass`.

    It drops both the too-predictable and the too-surprising tokens. mass = 1 keeps everything.
    """

    def __init__(self, mass: float):
        self.mass = mass

    def __call__(self, logits: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        if self.mass >= 1.0:
            return logits
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        probs = log_probs.exp()
        entropy = -(probs * log_probs.nan_to_num(neginf=0.0)).sum(dim=-1, keepdim=True)
        distance = (-log_probs - entropy).abs()  # inf for removed tokens: they sort last
        sorted_distance, order = torch.sort(distance, dim=-1)
        sorted_probs = probs.gather(-1, order)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        n_needed = (mass_before < self.mass).sum(dim=-1, keepdim=True).clamp(min=1)
        threshold = sorted_distance.gather(-1, n_needed - 1)  # ties with the last one are kept
        return logits.masked_fill(distance > threshold, NEG_INF)


def _counts(context: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """How often each vocabulary id occurs in each row of `context`: (B, T) -> (B, V)."""
    counts = torch.zeros(context.shape[0], vocab_size, device=context.device)
    return counts.scatter_add_(1, context, torch.ones_like(context, dtype=counts.dtype))


class RepetitionPenalty:
    """CTRL's repetition penalty (Keskar et al., 2019), as in Hugging Face: every token already in
    the context has its logit divided by `penalty` if positive, multiplied if negative, so it
    always becomes less likely (penalty > 1).

    >>> RepetitionPenalty(2.0)(torch.tensor([[4.0, -1.0, 4.0]]), torch.tensor([[0, 1]]))
    tensor([[ 2., -2.,  4.]])
    """

    def __init__(self, penalty: float):
        self.penalty = penalty

    def __call__(self, logits: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        if context is None or context.numel() == 0:
            return logits
        seen = _counts(context, logits.shape[-1]) > 0
        penalised = torch.where(logits > 0, logits / self.penalty, logits * self.penalty)
        return torch.where(seen, penalised, logits)


class FrequencyPresencePenalty:
    """OpenAI-style additive penalties: subtract `frequency * count(token)` and
    `presence * [count(token) > 0]` from each logit, counting over the context.

    >>> FrequencyPresencePenalty(0.5, 1.0)(torch.zeros(1, 3), torch.tensor([[0, 0, 1]]))
    tensor([[-2.0000, -1.5000,  0.0000]])
    """

    def __init__(self, frequency: float = 0.0, presence: float = 0.0):
        self.frequency = frequency
        self.presence = presence

    def __call__(self, logits: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        if context is None or context.numel() == 0:
            return logits
        counts = _counts(context, logits.shape[-1]).to(logits.dtype)
        return logits - self.frequency * counts - self.presence * (counts > 0).to(logits.dtype)


class BannedTokens:
    """Never produce the given ids (e.g. a special token in a base model's samples).

    >>> BannedTokens([1])(torch.tensor([[0.0, 5.0, 1.0]]), None)
    tensor([[0., -inf, 1.]])
    """

    def __init__(self, token_ids: Sequence[int]):
        self.token_ids = list(token_ids)

    def __call__(self, logits: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        vocab_size = logits.shape[-1]
        outside = [t for t in self.token_ids if not 0 <= t < vocab_size]
        if outside:
            raise ByollmError(
                f"banned token ids {outside} are outside the vocabulary (ids 0..{vocab_size - 1})"
            )
        out = logits.clone()
        out[..., self.token_ids] = NEG_INF
        return out


@dataclass
class SamplingConfig:
    """Every knob of the sampler, validated once. The defaults sample from the model unchanged.

    temperature = 0 means greedy decoding (argmax after the penalties and bans); top_k = 0 or
    None means no top-k limit.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    min_p: float = 0.0
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    banned_tokens: tuple[int, ...] = field(default_factory=tuple)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Every rule on the values, in one place; each error names the parameter and its range."""
        check_temperature("temperature", self.temperature)
        self.top_k = check_top_k("top_k", self.top_k)
        check_number("top_p", self.top_p, 0, 1, low_open=True, hint="1 keeps every token")
        check_number("min_p", self.min_p, 0, 1, hint="0 keeps every token")
        check_number("typical_p", self.typical_p, 0, 1, low_open=True, hint="1 keeps every token")
        check_number(
            "repetition_penalty", self.repetition_penalty, *PENALTY_FACTOR_RANGE, hint="1 = off"
        )
        for name in ("frequency_penalty", "presence_penalty"):
            check_number(
                name,
                getattr(self, name),
                -MAX_ADDITIVE_PENALTY,
                MAX_ADDITIVE_PENALTY,
                hint="0 = off",
            )
        if isinstance(self.banned_tokens, (str, bytes)) or not isinstance(
            self.banned_tokens, Sequence
        ):
            raise ByollmError(
                f"banned_tokens={self.banned_tokens!r} is invalid: expected token ids"
            )
        for token in self.banned_tokens:
            check_number("banned_tokens", token, 0, integer=True, hint="token ids")
        self.banned_tokens = tuple(int(t) for t in self.banned_tokens)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1


def build_processors(config: SamplingConfig) -> list:
    """The processor chain for `config`, leaving out every processor that would do nothing."""
    chain: list = []
    if config.repetition_penalty != 1.0:
        chain.append(RepetitionPenalty(config.repetition_penalty))
    if config.frequency_penalty or config.presence_penalty:
        chain.append(FrequencyPresencePenalty(config.frequency_penalty, config.presence_penalty))
    if config.banned_tokens:
        chain.append(BannedTokens(config.banned_tokens))
    if config.greedy:
        return chain  # truncation and temperature cannot change the argmax
    if config.temperature != 1.0:
        chain.append(Temperature(config.temperature))
    if config.top_k is not None:
        chain.append(TopK(config.top_k))
    if config.top_p < 1.0:
        chain.append(TopP(config.top_p))
    if config.min_p > 0.0:
        chain.append(MinP(config.min_p))
    if config.typical_p < 1.0:
        chain.append(TypicalP(config.typical_p))
    return chain


def apply_processors(
    logits: torch.Tensor, context: torch.Tensor | None, processors: Sequence
) -> torch.Tensor:
    """Run `logits` (B, V) through the chain."""
    for processor in processors:
        logits = processor(logits, context)
    return logits


def choose_next_token(
    logits: torch.Tensor,
    context: torch.Tensor | None,
    config: SamplingConfig,
    processors: Sequence | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row: (B, V) logits -> (B,) ids.

    >>> choose_next_token(torch.tensor([[0.0, 3.0, 1.0]]), None, SamplingConfig(temperature=0))
    tensor([1])
    """
    if processors is None:
        processors = build_processors(config)
    logits = apply_processors(logits.float(), context, processors)
    # Only bans can remove every token (the filters always keep the most likely one).
    if config.banned_tokens and torch.isneginf(logits).all(dim=-1).any():
        raise ByollmError(
            "every token is banned or filtered out; ban fewer tokens "
            f"({len(config.banned_tokens)} banned of {logits.shape[-1]})"
        )
    if config.greedy:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)

"""Checks for the sampling exercise, against `byollm.generate.processors` (`Temperature`,
`TopK`, `TopP`, `build_processors`, `choose_next_token`)."""

from __future__ import annotations

import torch

from byollm.exercises.checking import Step, StepFailed, expect_close, learner, show
from byollm.generate.processors import (
    SamplingConfig,
    Temperature,
    TopK,
    TopP,
    apply_processors,
    build_processors,
    choose_next_token,
)


def random_logits(seed: int, shape=(4, 20)) -> torch.Tensor:
    return 2 * torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _call_unchanged(call: str, function, logits: torch.Tensor, *args, **kwargs):
    """Call the learner's function and check it left its input alone."""
    before = logits.clone()
    result = function(logits, *args, **kwargs)
    if not torch.equal(logits, before):
        raise StepFailed(
            f"{call} changed the logits it was given\nhint: return a new tensor "
            "(logits / t, logits.masked_fill(...)), do not modify in place"
        )
    return result


def check_temperature(module) -> None:
    apply_temperature = learner(module, "apply_temperature")
    logits = random_logits(0)
    for t in (0.5, 1.0, 2.0):
        call = f"apply_temperature(logits (4, 20), {t})"
        expect_close(
            call,
            _call_unchanged(call, apply_temperature, logits, t),
            Temperature(t)(logits, None),
            "logits / temperature",
        )


TOP_K_HINT = (
    "the k-th largest value of each row: torch.topk(logits, k, dim=-1).values[..., -1:]; "
    "logits.masked_fill(logits < kth, float('-inf')) keeps ties; k >= V changes nothing"
)


def check_top_k(module) -> None:
    top_k_filter = learner(module, "top_k_filter")
    cases = [
        (random_logits(1), 3),
        (torch.tensor([[1.0, 3.0, 3.0, 0.0]]), 1),
        (random_logits(2, (2, 5)), 5),
        (random_logits(3, (2, 5)), 9),
        (random_logits(4), 1),
    ]
    for logits, k in cases:
        call = f"top_k_filter(logits {tuple(logits.shape)}, k={k})"
        if logits.shape == (1, 4):
            call = f"top_k_filter({logits.tolist()}, k={k})"
        expect_close(
            call, _call_unchanged(call, top_k_filter, logits, k), TopK(k)(logits, None), TOP_K_HINT
        )


TOP_P_HINT = (
    "sort the probabilities in descending order; a token is needed while the mass of the tokens "
    "before it is below p (cumsum - itself < p), at least one; keep every token at least as "
    "likely as the last one needed, set the rest to -inf"
)


def check_top_p(module) -> None:
    top_p_filter = learner(module, "top_p_filter")
    three = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    tied = torch.log(torch.tensor([[0.1, 0.3, 0.3, 0.3]]))
    cases = [
        (three, 0.7),
        (three, 0.4),
        (three, 1.0),
        (three, 0.01),
        (tied, 0.35),
        (random_logits(5), 0.9),
        (random_logits(6), 0.5),
    ]
    for logits, p in cases:
        call = f"top_p_filter(logits {tuple(logits.shape)}, p={p})"
        if logits.shape[-1] <= 4:
            probs = [round(v, 2) for v in logits.exp()[0].tolist()]
            call = f"top_p_filter(log({probs}), p={p})"
        expect_close(
            call, _call_unchanged(call, top_p_filter, logits, p), TopP(p)(logits, None), TOP_P_HINT
        )


CONFIGS = [(1.0, None, 1.0), (0.7, 5, 1.0), (1.5, None, 0.8), (0.8, 10, 0.9), (2.0, None, 0.5)]


def byollm_probs(logits: torch.Tensor, temperature, top_k, top_p) -> torch.Tensor:
    config = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)
    return torch.softmax(apply_processors(logits, None, build_processors(config)), dim=-1)


def check_next_token_probs(module) -> None:
    next_token_probs = learner(module, "next_token_probs")
    logits = random_logits(7)
    for temperature, top_k, top_p in CONFIGS:
        call = (
            f"next_token_probs(logits (4, 20), temperature={temperature}, top_k={top_k}, "
            f"top_p={top_p})"
        )
        got = _call_unchanged(
            call, next_token_probs, logits, temperature=temperature, top_k=top_k, top_p=top_p
        )
        expect_close(
            call,
            got,
            byollm_probs(logits, temperature, top_k, top_p),
            "in this order: temperature, top-k (when top_k is not None), top-p, softmax "
            "over the last dim; top-p sees the distribution after temperature",
        )


def check_sample_next(module) -> None:
    sample_next = learner(module, "sample_next")
    logits = random_logits(8, (64, 20))
    greedy = choose_next_token(logits, None, SamplingConfig(temperature=0))
    expect_close(
        "sample_next(logits (64, 20), temperature=0)",
        sample_next(logits.clone(), temperature=0),
        greedy,
        "temperature 0 is greedy: logits.argmax(dim=-1), shape (B,)",
        atol=0,
    )
    for temperature, top_k, top_p in CONFIGS:
        config = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)
        expected = choose_next_token(
            logits, None, config, generator=torch.Generator().manual_seed(0)
        )
        got = sample_next(
            logits.clone(),
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=torch.Generator().manual_seed(0),
        )
        call = (
            f"sample_next(logits (64, 20), temperature={temperature}, top_k={top_k}, "
            f"top_p={top_p}, generator seeded with 0)"
        )
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            allowed = byollm_probs(logits, temperature, top_k, top_p) > 0
            drawn_allowed = allowed.gather(-1, got.long().clamp(0, 19)[:, None]).all()
            if not torch.equal(got, expected) and not drawn_allowed:
                raise StepFailed(
                    f"{call} drew tokens the filters remove: {show(got)}\n"
                    "hint: draw from next_token_probs(...), not from the raw "
                    "logits"
                )
        expect_close(
            call,
            got,
            expected,
            "probs = next_token_probs(...); torch.multinomial(probs, num_samples=1, "
            "generator=generator).squeeze(-1): the same generator then draws the same "
            "tokens as byollm",
            atol=0,
        )


STEPS = [
    Step("apply_temperature", check_temperature),
    Step("top_k_filter", check_top_k),
    Step("top_p_filter", check_top_p),
    Step(
        "next_token_probs",
        check_next_token_probs,
        needs=("apply_temperature", "top_k_filter", "top_p_filter"),
    ),
    Step("sample_next", check_sample_next, needs=("next_token_probs",)),
]

"""Checks for the gpt_block exercise, against `byollm.model` (`LayerNorm`, `MLP`, `Block`, `GPT`
with GPT-2's settings: LayerNorm with bias, tanh GELU, learned positions, tied head).

The learner's parameters are nudged by random noise before the comparison (a LayerNorm that
starts at weight 1, bias 0 would hide a swapped weight and bias), then loaded into byollm's
module with `load_state_dict`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from byollm.exercises.checking import Step, StepFailed, expect_close, expect_equal, learner
from byollm.model import GPT, GPTConfig
from byollm.model.layers import MLP, Block, LayerNorm


def gpt2_config(**overrides) -> GPTConfig:
    """A tiny GPT-2: the book's architecture at a size that checks in milliseconds."""
    settings = dict(
        vocab_size=50,
        block_size=16,
        n_layer=2,
        n_head=4,
        n_embd=32,
        mlp="gelu",
        bias=True,
        dropout=0.0,
    )
    return GPTConfig(**{**settings, **overrides})


@torch.no_grad()
def nudge(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Add a little noise to every parameter, so that no weight keeps its special start value."""
    generator = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return module.eval()


def load_into(reference: torch.nn.Module, mine: torch.nn.Module, where: str) -> None:
    """Copy the learner's weights into byollm's module; explain a mismatch of names or shapes."""
    got, expected = mine.state_dict(), reference.state_dict()
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        raise StepFailed(
            f"{where}: the parameter names differ from byollm's\n"
            f"  missing: {missing[:6]}{' ...' if len(missing) > 6 else ''}\n"
            f"  unexpected: {extra[:6]}{' ...' if len(extra) > 6 else ''}\n"
            "hint: use the attribute names the template's docstrings give"
        )
    for name, tensor in expected.items():
        if got[name].shape != tensor.shape:
            raise StepFailed(
                f"{where}: {name} has shape {tuple(got[name].shape)}, expected "
                f"{tuple(tensor.shape)}"
            )
    reference.load_state_dict(got)
    reference.eval()


def compare_module(mine, reference, where: str, x: torch.Tensor, hint: str, *extra) -> None:
    """Load the learner's module `mine` into byollm's `reference`; compare them on x.
    `extra` arguments go to byollm's forward only (a Block's `rotary`)."""
    load_into(reference, mine, where)
    with torch.no_grad():
        got, expected = mine(x), reference(x, *extra)
    expect_close(f"{where}(x) with x of shape {tuple(x.shape)}", got, expected, hint)


def check_layer_norm(module) -> None:
    torch.manual_seed(0)
    mine = nudge(learner(module, "LayerNorm")(16), seed=1)
    x = 3 * torch.randn(2, 5, 16) + 5  # far from mean 0, variance 1: normalising matters
    compare_module(
        mine,
        LayerNorm(16, eps=1e-5, bias=True),
        "LayerNorm(16)",
        x,
        "normalise over the last dim; the variance without Bessel's correction "
        "(x.var(dim=-1, keepdim=True, unbiased=False)); eps inside the square root; "
        "then * weight + bias",
    )


def check_gelu(module) -> None:
    gelu = learner(module, "gelu")
    x = torch.linspace(-6, 6, 121)
    got = gelu(x.clone())
    expected = F.gelu(x, approximate="tanh")
    exact = F.gelu(x)  # x * Phi(x), with erf
    if (
        isinstance(got, torch.Tensor)
        and got.shape == x.shape
        and torch.allclose(got, exact, atol=1e-6)
        and not torch.allclose(got, expected)
    ):
        raise StepFailed(
            "gelu(x) is the exact GELU, x * Phi(x) with erf (nanoGPT's nn.GELU(), byollm's "
            "mlp='gelu_exact'); GPT-2, and byollm's mlp='gelu', use the tanh approximation, "
            f"which differs by up to {(exact - expected).abs().max().item():.1e} "
            "(docs/journal.md: the two were once mixed up in byollm's presets)\nhint: "
            "0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))"
        )
    expect_close(
        "gelu(torch.linspace(-6, 6, 121))",
        got,
        expected,
        "0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))",
        atol=1e-6,
    )


def check_mlp(module) -> None:
    torch.manual_seed(2)
    mine = nudge(learner(module, "MLP")(16), seed=3)
    compare_module(
        mine,
        MLP(gpt2_config(n_embd=16)),
        "MLP(16)",
        torch.randn(2, 5, 16),
        "c_proj(gelu(c_fc(x))) with your gelu (the tanh one)",
    )


def check_block(module) -> None:
    torch.manual_seed(4)
    mine = nudge(learner(module, "Block")(32, 4), seed=5)
    compare_module(
        mine,
        Block(gpt2_config(), layer_idx=0),
        "Block(32, 4)",
        torch.randn(2, 7, 32),
        "pre-norm with shortcuts: x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x)); "
        "the norm goes inside the branch, the addition outside",
        None,  # byollm's Block takes the rotary embedding too: none for GPT-2
    )


def check_gpt(module) -> None:
    GPTModel = learner(module, "GPTModel")
    config = gpt2_config()
    torch.manual_seed(6)
    mine = GPTModel(
        config.vocab_size, config.block_size, config.n_layer, config.n_head, config.n_embd
    )
    where = "GPTModel(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_embd=32)"
    try:
        tied = mine.lm_head.weight is mine.transformer.wte.weight
    except AttributeError as e:
        raise StepFailed(f"{where}: {e}\nhint: see the attribute names in the docstring") from None
    if not tied:
        raise StepFailed(
            f"{where}: lm_head.weight is not the token embedding's weight\n"
            "hint: tie them, as GPT-2 does: self.lm_head.weight = self.transformer.wte.weight "
            "(the same Parameter, not a copy)"
        )
    nudge(mine, seed=7)
    reference = GPT(config)
    load_into(reference, mine, where)
    expect_equal(
        f"the number of parameters of {where} (tied weights counted once)",
        sum(p.numel() for p in mine.parameters()),
        reference.num_params(),
        "wte, wpe, n_layer blocks, ln_f; lm_head shares wte's weight",
    )
    idx = torch.randint(0, config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        expect_close(
            f"{where}(idx) with idx of shape (2, 16)",
            mine(idx),
            reference(idx)[0],
            "x = wte(idx) + wpe(positions 0..T-1); every block in order; ln_f; lm_head",
            atol=1e-4,
        )


def check_generate(module) -> None:
    generate_greedy = learner(module, "generate_greedy")
    config = gpt2_config()
    torch.manual_seed(9)
    model = GPT(config).eval()
    prompt = torch.randint(
        0, config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(10)
    )

    def logits_of(idx):  # the learner's generate gets logits, as from their GPTModel
        return model(idx)[0]

    with torch.no_grad():
        expected = model.generate(prompt, 10, temperature=0, use_cache=False)
    got = generate_greedy(logits_of, prompt.clone(), 10, config.block_size)
    expect_close(
        "generate_greedy(model, idx of shape (2, 12), max_new_tokens=10, block_size=16)",
        got,
        expected,
        "each step: logits = model(idx[:, -block_size:]), take the argmax of the last "
        "position's logits, append it (torch.cat along dim 1); 12 + 10 tokens exceed "
        "block_size, so the cropping matters",
        atol=0,
    )


STEPS = [
    Step("LayerNorm", check_layer_norm),
    Step("gelu", check_gelu),
    Step("MLP", check_mlp, needs=("gelu",)),
    Step("Block", check_block, needs=("LayerNorm", "MLP")),
    Step("GPTModel", check_gpt, needs=("Block",)),
    Step("generate_greedy", check_generate),
]

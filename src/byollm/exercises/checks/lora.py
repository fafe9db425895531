"""Checks for the lora exercise, against `byollm.finetune.lora` (`LoRALinear`, `apply_lora`,
`lora_tensors`, `count_parameters`; `merge_lora` is checked by its outputs).

The learner's layer keeps byollm's names (`base`, `lora_A`, `lora_B`, `scaling`), so its matrices
can be copied into byollm's layer and both compared on the same input. B starts at zero, which
would hide a swapped A and B or a missing scale, so the forward and merge checks first fill A and
B with random values.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from byollm.exercises.checking import Step, StepFailed, expect_close, expect_equal, learner
from byollm.finetune.lora import LoRAConfig, LoRALinear, apply_lora, count_parameters
from byollm.model import GPT, GPTConfig

TARGETS = ("*attn.c_attn", "*mlp.c_fc")


def tiny_gpt(seed: int) -> GPT:
    """A 2-block GPT-2 that checks in milliseconds."""
    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    return GPT(config).eval()


def tokens(seed: int) -> torch.Tensor:
    return torch.randint(0, 40, (2, 9), generator=torch.Generator().manual_seed(seed))


def new_layer(module, base: nn.Linear, rank: int, alpha: float):
    made = learner(module, "LoRALinear")(base, rank, alpha)
    for name in ("base", "lora_A", "lora_B", "scaling"):
        if not hasattr(made, name):
            raise StepFailed(
                f"LoRALinear(nn.Linear(12, 10), rank={rank}, alpha={alpha}) has no attribute "
                f"`{name}`\nhint: keep the frozen layer as self.base, the two matrices as "
                "self.lora_A and self.lora_B (nn.Parameter), and alpha / rank as self.scaling"
            )
    return made


@torch.no_grad()
def randomize(layer, seed: int) -> None:
    """Give A and B random values (B starts at zero, which hides most mistakes)."""
    generator = torch.Generator().manual_seed(seed)
    for p in (layer.lora_A, layer.lora_B):
        p.copy_(0.3 * torch.randn(p.shape, generator=generator))


def check_layer_init(module) -> None:
    torch.manual_seed(0)
    base = nn.Linear(12, 10)
    layer = new_layer(module, base, 4, 8.0)
    call = "LoRALinear(nn.Linear(12, 10), rank=4, alpha=8.0)"
    if layer.base is not base:
        raise StepFailed(f"{call}: self.base is not the layer it was given\nhint: self.base = base")
    expect_equal(f"{call}.lora_A.shape", tuple(layer.lora_A.shape), (4, 12), "A is rank x in")
    expect_equal(f"{call}.lora_B.shape", tuple(layer.lora_B.shape), (10, 4), "B is out x rank")
    expect_equal(
        f"{call}.scaling",
        layer.scaling,
        2.0,
        "alpha / rank: the update is scaled so that changing the rank does not change its size",
    )
    trains = {name: p.requires_grad for name, p in layer.named_parameters()}
    expected = {"base.weight": False, "base.bias": False, "lora_A": True, "lora_B": True}
    expect_equal(
        f"{{name: p.requires_grad}} of {call}",
        trains,
        expected,
        "freeze the base (p.requires_grad_(False) for its parameters); A and B are "
        "nn.Parameter, which train",
    )
    if not torch.equal(layer.lora_B, torch.zeros(10, 4)):
        raise StepFailed(
            f"{call}.lora_B is not all zeros\nhint: B starts at zero so that B A = 0 and the "
            "wrapped layer computes exactly what the base computed (A is random)"
        )
    if torch.equal(layer.lora_A, torch.zeros(4, 12)):
        raise StepFailed(
            f"{call}.lora_A is all zeros\nhint: A starts random (nn.init.kaiming_uniform_); "
            "with A and B both zero, no gradient reaches either and nothing ever trains"
        )


def check_layer_forward(module) -> None:
    torch.manual_seed(1)
    base = nn.Linear(12, 10)
    x = torch.randn(3, 5, 12)
    layer = new_layer(module, base, 4, 8.0)
    with torch.no_grad():
        expect_close(
            "LoRALinear(base, rank=4, alpha=8.0)(x) at initialisation",
            layer(x),
            base(x),
            "B = 0, so the update is zero: the output is exactly base(x)",
        )
    randomize(layer, seed=2)
    reference = LoRALinear(copy.deepcopy(base), 4, 8.0)
    with torch.no_grad():
        reference.lora_A.copy_(layer.lora_A)
        reference.lora_B.copy_(layer.lora_B)
        expect_close(
            "LoRALinear(base, rank=4, alpha=8.0)(x), x (3, 5, 12), A and B set to random values",
            layer(x),
            reference(x),
            "base(x) + (x @ A.T @ B.T) * scaling: A maps in -> rank, B maps rank -> out",
        )


def check_apply(module) -> None:
    apply = learner(module, "apply_lora")
    mine, reference = tiny_gpt(3), tiny_gpt(3)
    call = f"apply_lora(gpt, rank=4, alpha=8.0, targets={TARGETS})"
    wrapped = apply(mine, 4, 8.0, TARGETS)
    expected = apply_lora(reference, LoRAConfig(rank=4, alpha=8.0, targets=TARGETS))
    expect_equal(
        f"the names {call} returns",
        sorted(wrapped) if isinstance(wrapped, list | tuple) else wrapped,
        sorted(expected),
        "wrap every nn.Linear whose name (model.named_modules()) matches a pattern with "
        "fnmatch.fnmatchcase, and return those names",
    )
    trainable = sorted(n for n, p in mine.named_parameters() if p.requires_grad)
    expect_equal(
        f"the parameters that train after {call}",
        trainable,
        sorted(n for n, p in reference.named_parameters() if p.requires_grad),
        "freeze every parameter of the model first, then wrap: only lora_A and lora_B train",
    )
    with torch.no_grad():
        expect_close(
            f"gpt(tokens) after {call}",
            mine(tokens(4))[0],
            reference(tokens(4))[0],
            "at initialisation the wrapped model computes exactly what the base computed",
        )


def check_count(module) -> None:
    count = learner(module, "count_parameters")
    gpt = tiny_gpt(5)
    apply_lora(gpt, LoRAConfig(rank=4, alpha=8.0, targets=TARGETS))
    expected = count_parameters(gpt)
    got = count(gpt)
    expect_equal(
        "count_parameters(gpt with LoRA on c_attn and c_fc, rank 4)",
        tuple(got) if isinstance(got, list | tuple) else got,
        expected,
        "(trainable, total): sum p.numel() over model.parameters(), trainable where "
        "p.requires_grad; model.parameters() lists the tied embedding and head once",
    )


def check_merged(module) -> None:
    torch.manual_seed(6)
    base = nn.Linear(12, 10)
    x = torch.randn(4, 12)
    layer = new_layer(module, copy.deepcopy(base), 4, 8.0)
    randomize(layer, seed=7)
    with torch.no_grad():
        before = layer(x)
        merged = layer.merged()
        if not isinstance(merged, nn.Linear):
            raise StepFailed(
                f"layer.merged() returned a {type(merged).__name__}, expected an nn.Linear\n"
                "hint: add scaling * B @ A to self.base.weight and return self.base"
            )
        expect_close(
            "layer.merged()(x) against the LoRA layer's own output before merging",
            merged(x),
            before,
            "W' = W + scaling * (B @ A): a (out x rank) @ (rank x in) = out x in update; "
            "the bias is unchanged",
        )


def check_merge_model(module) -> None:
    merge = learner(module, "merge_lora")
    gpt = tiny_gpt(8)
    base_names = sorted(n for n, _ in gpt.named_parameters())
    learner(module, "apply_lora")(gpt, 4, 8.0, TARGETS)
    for layer in (m for m in gpt.modules() if hasattr(m, "lora_A")):
        randomize(layer, seed=9)
    x = tokens(10)
    with torch.no_grad():
        before = gpt(x)[0]
    got = merge(gpt)
    if got is not None and got is not gpt:
        raise StepFailed("merge_lora(gpt) must change gpt in place (and may return it)")
    left = [n for n, m in gpt.named_modules() if hasattr(m, "lora_A")]
    if left:
        raise StepFailed(
            f"after merge_lora(gpt), LoRA layers are still in the model: {left[:4]}"
            "\nhint: replace each wrapped layer by layer.merged() on its parent "
            "(setattr(parent, child_name, layer.merged()))"
        )
    expect_equal(
        "the parameter names after merge_lora(gpt)",
        sorted(n for n, _ in gpt.named_parameters()),
        base_names,
        "the merged model has the base model's names again (no lora_A / lora_B)",
    )
    with torch.no_grad():
        expect_close(
            "gpt(tokens) after merge_lora(gpt), against gpt(tokens) before",
            gpt(x)[0],
            before,
            "every wrapped layer is merged; merging changes the weights, never the outputs",
        )


def check_adapter(module) -> None:
    adapter = learner(module, "adapter_state")
    from byollm.finetune.lora import lora_tensors

    gpt = tiny_gpt(11)
    apply_lora(gpt, LoRAConfig(rank=4, alpha=8.0, targets=TARGETS))
    for layer in (m for m in gpt.modules() if isinstance(m, LoRALinear)):
        randomize(layer, seed=12)
    got = adapter(gpt)
    expected = lora_tensors(gpt)
    if not isinstance(got, dict):
        raise StepFailed(f"adapter_state(gpt) returned a {type(got).__name__}, expected a dict")
    expect_equal(
        "the names in adapter_state(gpt)",
        sorted(got),
        sorted(expected),
        "only the LoRA matrices: the names from model.named_parameters() that end in "
        "'.lora_A' or '.lora_B' (the base weights are the base checkpoint's, not the adapter's)",
    )
    for name, tensor in expected.items():
        expect_close(f"adapter_state(gpt)[{name!r}]", got[name], tensor, "p.detach()")
    total = sum(p.numel() for p in gpt.parameters())
    kept = sum(t.numel() for t in got.values())
    if not kept < total / 5:
        raise StepFailed(f"the adapter holds {kept} of {total} numbers; it should be a sliver")


STEPS = [
    Step("LoRALinear.__init__", check_layer_init),
    Step("LoRALinear.forward", check_layer_forward, needs=("LoRALinear.__init__",)),
    Step("apply_lora", check_apply, needs=("LoRALinear.forward",)),
    Step("count_parameters", check_count),
    Step("LoRALinear.merged", check_merged, needs=("LoRALinear.forward",)),
    Step("merge_lora", check_merge_model, needs=("apply_lora", "LoRALinear.merged")),
    Step("adapter_state", check_adapter),
]

"""Exercises: build each stage yourself, then check your code against byollm's.

    byollm exercise list                       # the exercises, in the order of the stages
    byollm exercise show tokenizer             # the statement: what to build, in steps, hints
    byollm exercise start tokenizer            # copy the blank template to ./tokenizer.py
    byollm exercise check tokenizer            # run the checks on ./tokenizer.py (or --file PATH)

    >>> [e.name for e in EXERCISES.values()]
    ['tokenizer', 'attention', 'gpt_block', 'training', 'sampling', 'lora', 'scaling']

Design choices:
- **Everything a learner needs ships with the package**: the statements (`statements/*.md`),
  the blank templates (`templates/*.py`) and the checkers (`checks/*.py`), so `pip install
  byollm` is enough. The solutions do not ship: they live in the repository's
  `exercises/solutions/`, where the tests check that they pass (and that the templates fail).
- **The reference is byollm itself**: each checker calls the learner's functions and byollm's
  (`merge_pair`, `attention_explicit`, `MLP`, `lr_multiplier`, `TopP`, ...) on the same inputs,
  and loads the learner's weights into byollm's modules where there are weights, so passing an
  exercise means computing exactly what the package computes.
- **Names follow byollm's**: a learner's `MultiHeadAttention` has `c_attn` and `c_proj`, a
  `GPTModel` has `transformer.wte` ..., so one `load_state_dict` carries weights across.
- The order follows Raschka's *Build a Large Language Model From Scratch* (chapters 2 to 5,
  then appendix E: LoRA, checked against byollm's fine-tuning stage), then the scaling laws,
  which the book does not cover (checked against byollm's scaling stage).
"""

from __future__ import annotations

import importlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from byollm.errors import ByollmError
from byollm.exercises.checking import Report, load_learner_module, run_steps

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Exercise:
    name: str
    title: str
    chapter: str  # where the book covers it
    functions: str  # what the learner writes, in one line

    @property
    def statement_path(self) -> Path:
        return HERE / "statements" / f"{self.name}.md"

    @property
    def template_path(self) -> Path:
        return HERE / "templates" / f"{self.name}.py"

    def steps(self):
        return importlib.import_module(f"byollm.exercises.checks.{self.name}").STEPS


EXERCISES: dict[str, Exercise] = {
    e.name: e
    for e in [
        Exercise(
            "tokenizer",
            "byte-level BPE: count pairs, merge, train, encode, decode",
            "ch. 2",
            "get_stats, merge, train, build_vocab, decode, encode, train_regex, encode_regex",
        ),
        Exercise(
            "attention",
            "self-attention, from no weights to causal multi-head",
            "ch. 3",
            "simple_attention, causal_mask, attention_weights, attention, CausalAttention, "
            "MultiHeadAttention",
        ),
        Exercise(
            "gpt_block",
            "LayerNorm, GELU, the MLP, the residual block, the whole GPT",
            "ch. 4",
            "LayerNorm, gelu, MLP, Block, GPTModel, generate_greedy",
        ),
        Exercise(
            "training",
            "one training step: loss, schedule, clipping, AdamW",
            "ch. 5, appendix D",
            "cross_entropy, lr_at, decay_groups, clip_grad_norm, adamw_update, train_step",
        ),
        Exercise(
            "sampling",
            "temperature, top-k, top-p, drawing the next token",
            "ch. 5.3",
            "apply_temperature, top_k_filter, top_p_filter, next_token_probs, sample_next",
        ),
        Exercise(
            "lora",
            "LoRA from scratch: the wrapper, wrapping a GPT, merging, the adapter",
            "appendix E",
            "LoRALinear (init, forward, merged), apply_lora, count_parameters, merge_lora, "
            "adapter_state",
        ),
        Exercise(
            "scaling",
            "scaling laws: power laws, isoFLOP floors, L(N, D), its optimum, the bent frontier",
            "not in the book",
            "fit_power_law, isoflop_floor, parametric_loss, compute_optimal, bent_frontier",
        ),
    ]
}


def get_exercise(name: str) -> Exercise:
    if name not in EXERCISES:
        raise ByollmError(f"unknown exercise {name!r}; choose one of {', '.join(EXERCISES)}")
    return EXERCISES[name]


def statement(name: str) -> str:
    """The statement of exercise `name` (markdown)."""
    return get_exercise(name).statement_path.read_text(encoding="utf-8")


def start(name: str, folder: str | Path = ".", *, overwrite: bool = False) -> Path:
    """Copy exercise `name`'s blank template into `folder` as `<name>.py`; return its path."""
    exercise = get_exercise(name)
    target = Path(folder) / f"{name}.py"
    if target.exists() and not overwrite:
        raise ByollmError(
            f"{target} already exists (your work?); check it with `byollm exercise check "
            f"{name} --file {target}`, or pass --overwrite to start again"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exercise.template_path, target)
    return target


def check(name: str, path: str | Path | None = None) -> Report:
    """Run exercise `name`'s checks on the learner's file (default `./<name>.py`)."""
    exercise = get_exercise(name)
    path = Path(path) if path is not None else Path(f"{name}.py")
    if not path.is_file():
        raise ByollmError(
            f"no file {path}: copy the template with `byollm exercise start {name}`, "
            "or point --file at your code"
        )
    module = load_learner_module(path)
    return run_steps(name, path, module, exercise.steps())


__all__ = ["EXERCISES", "Exercise", "Report", "check", "get_exercise", "start", "statement"]

"""Pictures of what each logits processor does to a real next-token distribution.

    python -m byollm.generate.plots docs/assets/04-processors.png   # trains ~1 min, then plots

Used by `docs/04-sampling-and-evaluation.md` and `notebooks/04_sampling.ipynb`. The model is a
tiny character-level GPT trained for a few hundred steps on Shakespeare by `quick_char_model`
(a plain AdamW loop, nothing more: the real trainer is `byollm train`), so its distributions are
those of a real, if weak, language model -- not made-up numbers.
"""

from __future__ import annotations

import sys
import time

import torch

from byollm.generate.processors import (
    FrequencyPresencePenalty,
    MinP,
    RepetitionPenalty,
    Temperature,
    TopK,
    TopP,
    TypicalP,
)
from byollm.model.interface import model_block_size, next_token_logits

# (title, processor) pairs shown side by side; the first panel is the model's own distribution.
DEFAULT_PANELS = [
    ("temperature 0.5", Temperature(0.5)),
    ("temperature 1.5", Temperature(1.5)),
    ("top-k 5", TopK(5)),
    ("top-p 0.8", TopP(0.8)),
    ("min-p 0.2", MinP(0.2)),
    ("typical-p 0.8", TypicalP(0.8)),
    ("repetition penalty 2", RepetitionPenalty(2.0)),
    ("frequency penalty 1", FrequencyPresencePenalty(frequency=1.0)),
]


def quick_char_model(text: str, *, steps: int = 300, seconds: float | None = None, seed: int = 0):
    """Train a tiny char-level GPT on `text` for `steps` steps (or `seconds`); return
    `(model, tokenizer, losses)`. Two layers, 64 wide, a 64-character window."""
    from byollm.model import GPT, GPTConfig
    from byollm.tokenizer import CharTokenizer

    torch.manual_seed(seed)
    tokenizer = CharTokenizer.train(text)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=64, dropout=0.0
    )
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    losses, start = [], time.perf_counter()
    for _ in range(steps):
        starts = torch.randint(0, len(data) - 65, (32,), generator=generator)
        x = torch.stack([data[s : s + 64] for s in starts])
        y = torch.stack([data[s + 1 : s + 65] for s in starts])
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if seconds is not None and time.perf_counter() - start > seconds:
            break
    return model.eval(), tokenizer, losses


def next_token_logits_for(model, tokenizer, prompt: str):
    """`(logits (1, V), context (1, T))` for the token after `prompt`."""
    context = torch.tensor([tokenizer.encode(prompt)])
    with torch.inference_mode():
        logits = next_token_logits(model, context[:, -model_block_size(model) :])
    return logits, context


def plot_processors(model, tokenizer, prompt: str, panels=None, top: int = 12, path=None):
    """Bar charts of the next-token distribution after `prompt`, before and after each processor.

    Bars show the `top` most likely tokens of the original distribution, in the same order in
    every panel, so a bar that vanishes was filtered out and one that grows took its mass.
    """
    panels = DEFAULT_PANELS if panels is None else panels
    logits, context = next_token_logits_for(model, tokenizer, prompt)
    original = torch.softmax(logits, dim=-1)[0]
    order = original.argsort(descending=True)[:top]
    labels = [repr(tokenizer.decode([int(i)]))[1:-1] or "?" for i in order]
    shown = [("model", logits)] + [(t, p(logits, context)) for t, p in panels]
    cols = 3
    rows = (len(shown) + cols - 1) // cols
    figsize = (4 * cols, 2.6 * rows)
    if path is None:  # for a notebook: a pyplot figure, shown inline
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize)
    else:  # for a file: a bare Agg figure, without touching the process's pyplot backend
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, sharey=True)
    for ax, (title, processed) in zip(axes.flat, shown):
        probs = torch.softmax(processed, dim=-1)[0]
        kept = int((~torch.isneginf(processed[0])).sum())
        ax.bar(
            range(top),
            probs[order].tolist(),
            color="tab:blue" if title == "model" else "tab:orange",
        )
        ax.set_xticks(range(top), labels, fontsize=8)
        ax.set_title(f"{title} ({kept} tokens kept)", fontsize=9)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.suptitle(f"next character after {prompt[-30:]!r}", fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else "04-processors.png"
    from byollm.corpora import read_corpus_text

    text = read_corpus_text("tinyshakespeare")[:300_000]
    model, tokenizer, losses = quick_char_model(text, steps=400)
    print(f"trained {len(losses)} steps, loss {losses[0]:.2f} -> {losses[-1]:.2f}")
    plot_processors(model, tokenizer, "ROMEO:\nWhat light is this? I see th", path=path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

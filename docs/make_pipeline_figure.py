"""Draw docs/assets/text-to-next-token.png: the path from text to the next-token distribution.

    python docs/make_pipeline_figure.py                         # GPT-2 124M, GPT-2's tokenizer
    python docs/make_pipeline_figure.py --text "ROMEO: What light" --out /tmp/pipeline.png

text -> tokenizer -> token ids -> embedding -> transformer stack -> output head -> next-token
distribution, and the loop that appends the chosen token. The pieces and ids are GPT-2's real
tokenization of the text (byollm's `load_tokenizer("gpt2")`, so its files must be downloadable or
in `BYOLLM_MIRROR`), and every size is read from `GPTConfig.from_preset("gpt2")`. The bars of the
distribution are a sketch: an untrained GPT-2 gives a flat one, and the figure makes no claim about
a trained model's probabilities (notebook 04 plots real ones).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
from make_transformer_figure import COLORS as ARCHITECTURE_COLORS  # sets the Agg backend
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from byollm.model import GPTConfig  # importable once make_transformer_figure put src/ on the path
from byollm.tokenizer import load_tokenizer

# The architecture figure's colours, so that the two figures read alike, and a few of our own.
COLORS = {
    **ARCHITECTURE_COLORS,
    "text": "#ffffff",
    "tokenizer": "#fde2c8",
    "ids": "#f4f4f4",
    "block": ARCHITECTURE_COLORS["attn"],
    "dist": ARCHITECTURE_COLORS["mlp"],
}
BOX_W, BOX_H, GAP, Y = 2.05, 2.3, 0.55, 2.6


def _box(ax, x, title, body, color, shape="", code=""):
    ax.add_patch(FancyBboxPatch((x, Y), BOX_W, BOX_H, boxstyle="round,pad=0.02,rounding_size=0.1",
                                fc=color, ec="#444", lw=1))  # fmt: skip
    ax.text(x + BOX_W / 2, Y + BOX_H - 0.3, title, ha="center", va="center", fontsize=10,
            weight="bold")  # fmt: skip
    ax.text(x + BOX_W / 2, Y + BOX_H / 2 - 0.2, body, ha="center", va="center", fontsize=7.8,
            linespacing=1.45)  # fmt: skip
    ax.text(x + BOX_W / 2, Y - 0.18, shape, ha="center", va="top", fontsize=8, color="#1f5fa8",
            family="monospace")  # fmt: skip
    ax.text(x + BOX_W / 2, Y - 0.48, code, ha="center", va="top", fontsize=7.5, color="#777",
            family="monospace")  # fmt: skip


def _arrow(ax, x0, x1, y=Y + BOX_H / 2):
    ax.annotate("", xy=(x1, y), xytext=(x0, y),
                arrowprops=dict(arrowstyle="->", color="#333", lw=1.2))  # fmt: skip


def _short(items: list, limit: int = 34) -> str:
    text = ", ".join(items)
    return text if len(text) <= limit else text[: limit - 4] + ", ..."


def draw(text: str, out: Path) -> Path:
    config = GPTConfig.from_preset("gpt2")
    tokenizer = load_tokenizer("gpt2")
    ids = tokenizer.encode(text)
    pieces = [tokenizer.decode([i]) for i in ids]
    C, V, L = config.n_embd, config.vocab_size, config.n_layer

    fig, ax = plt.subplots(figsize=(16, 5.4))
    xs = [0.2 + i * (BOX_W + GAP) for i in range(7)]
    ax.set_xlim(0, xs[6] + BOX_W + 0.2)  # before anything is placed in data coordinates
    ax.set_ylim(0.8, Y + BOX_H + 1.35)
    ax.axis("off")
    _box(ax, xs[0], "text", "\n".join(_wrap(repr(text), 22)), COLORS["text"], "str")
    _box(ax, xs[1], "tokenizer",
         "byte-level BPE\nregex split, then merges\n" + f"{V:,} ids (GPT-2's)",
         COLORS["tokenizer"], "", "byollm.tokenizer")  # fmt: skip
    _box(
        ax, xs[2], "token ids", "\n".join(_wrap(str(ids), 20)), COLORS["ids"], f"(B, T={len(ids)})"
    )
    _box(ax, xs[3], "embedding",
         f"token table\n{V:,} x {C}\n+ position table\n{config.block_size:,} x {C}",
         COLORS["embed"], f"(B, T, {C})", "byollm.model")  # fmt: skip
    _box(ax, xs[4], f"transformer\nx {L} blocks",
         f"\n\nx = x + attn(norm(x))\nx = x + mlp(norm(x))\n{config.n_head} heads x "
         f"{config.head_dim}\nMLP {C} → {config.hidden_dim} → {C}",
         COLORS["block"], f"(B, T, {C})", "GPT.forward")  # fmt: skip
    _box(ax, xs[5], "output head",
         f"final LayerNorm\nlinear {C} → {V:,}\n(tied to the\ntoken table)",
         COLORS["head"], f"(B, T, {V:,})", "logits")  # fmt: skip
    _box(ax, xs[6], "next token", "\n\n\n\nsoftmax of the last\nposition's logits",
         COLORS["dist"], f"(B, {V:,}), rows sum to 1", "byollm.generate")  # fmt: skip
    _bars(fig, ax, xs[6])
    for a, b in zip(xs, xs[1:]):
        _arrow(ax, a + BOX_W + 0.04, b - 0.04)

    # the pieces the tokenizer cut the text into, as chips under the tokenizer and the ids
    chips = "  ".join(f"[{p}]" for p in pieces)
    ax.text((xs[1] + xs[2] + BOX_W) / 2, Y + BOX_H + 0.35, "pieces: " + chips, ha="center",
            fontsize=8.5, family="monospace", color="#7a4a00")  # fmt: skip

    # generation: pick a token, append its id, run again
    loop = FancyArrowPatch((xs[6] + BOX_W / 2, Y - 0.8), (xs[2] + BOX_W / 2, Y - 0.8),
                           connectionstyle="arc3,rad=-0.1", arrowstyle="->", color="#1f7a3a",
                           lw=1.3, mutation_scale=12)  # fmt: skip
    ax.add_patch(loop)
    ax.text((xs[2] + xs[6] + BOX_W) / 2, Y - 1.55,
            "generation: sample (or take the argmax of) the distribution, append the new id, "
            "run again (docs/04)", ha="center", fontsize=8.5, color="#1f7a3a")  # fmt: skip

    notes = ["", "docs/01", "", "docs/02", "docs/02", "docs/02", "docs/04"]
    for x, note in zip(xs, notes):
        ax.text(x + BOX_W / 2, Y + BOX_H + 0.05, note, ha="center", va="bottom", fontsize=7.5,
                color="#777")  # fmt: skip
    ax.text(xs[0], Y + BOX_H + 1.0, f"From text to the next token: GPT-2 124M ({L} layers, "
            f"{C} wide, {V:,}-token vocabulary)", fontsize=12, weight="bold")  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line][:4]


def _bars(fig, ax, x):
    """A sketch of a peaked distribution over the vocabulary, inside the last box."""
    x0, y0 = ax.transData.transform((x + 0.2, Y + 0.95))
    x1, y1 = ax.transData.transform((x + BOX_W - 0.2, Y + BOX_H - 0.55))
    (fx0, fy0), (fx1, fy1) = fig.transFigure.inverted().transform([(x0, y0), (x1, y1)])
    inset = fig.add_axes((fx0, fy0, fx1 - fx0, fy1 - fy0))
    heights = [0.9 * 0.62**i for i in range(12)]
    inset.bar(range(12), heights, color="#2e8b57", width=0.75)
    inset.set_xticks([])
    inset.set_yticks([])
    inset.set_xlabel("vocabulary (sketch)", fontsize=7, labelpad=1)
    for side in ("top", "right"):
        inset.spines[side].set_visible(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", default="Hello, world! It's")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "assets" / "text-to-next-token.png")  # fmt: skip
    args = parser.parse_args()
    print(draw(args.text, args.out))


if __name__ == "__main__":
    main()

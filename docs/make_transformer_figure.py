"""Draw docs/assets/llm-architecture.png from model configs (not by hand).

    python docs/make_transformer_figure.py                  # GPT-2 124M beside llama-tiny
    python docs/make_transformer_figure.py --presets gpt2 --out /tmp/gpt2.png

Every label (widths, head counts, MLP kind, norm, positions, parameter counts) is read from the
`GPTConfig` and `model_info`, so the figure changes when the presets do.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from byollm.model import GPTConfig, model_info  # noqa: E402

COLORS = {
    "embed": "#cfe2ff",
    "norm": "#fff3cd",
    "attn": "#f8d7da",
    "mlp": "#d1e7dd",
    "head": "#e2d9f3",
    "block": "#f4f4f4",
}


def _box(ax, x, y, w, h, text, color, fontsize=8.5):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=color, ec="#444", lw=1))  # fmt: skip
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax, x, y0, y1):
    ax.annotate(
        "", xy=(x, y1), xytext=(x, y0), arrowprops=dict(arrowstyle="->", color="#333", lw=1)
    )


def describe(c: GPTConfig) -> dict[str, str]:
    """The label of every box, computed from the config."""
    norm = "LayerNorm" if c.norm == "layernorm" else "RMSNorm"
    heads = f"{c.n_head} heads x {c.head_dim}"
    if c.kv_heads != c.n_head:
        heads += f", {c.kv_heads} KV heads (GQA)"
    extras = []
    if c.pos == "rope":
        extras.append(f"RoPE on q, k (theta={c.rope_theta:g})")
    if c.qk_norm:
        extras.append("QK-norm")
    mlp = {
        "gelu": f"MLP: {c.n_embd} -> {c.hidden_dim}, GELU(tanh) -> {c.n_embd}",
        "gelu_exact": f"MLP: {c.n_embd} -> {c.hidden_dim}, GELU(erf) -> {c.n_embd}",
        "relu2": f"MLP: {c.n_embd} -> {c.hidden_dim}, ReLU^2 -> {c.n_embd}",
        "swiglu": f"SwiGLU: silu(gate) * up, {c.n_embd} -> {c.hidden_dim} -> {c.n_embd}",
    }[c.mlp]
    embed = f"token embedding {c.vocab_size} x {c.n_embd}"
    if c.pos == "learned":
        embed += f"\n+ position embedding {c.block_size} x {c.n_embd}"
    head = f"linear head {c.n_embd} -> {c.vocab_size}"
    head += " (tied to token embedding)" if c.tie_embeddings else " (untied)"
    return {
        "embed": embed,
        "norm": norm,
        "attn": "causal self-attention\n" + heads + ("\n" + ", ".join(extras) if extras else ""),
        "mlp": mlp,
        "head": head,
    }


def draw_column(ax, x: float, name: str, c: GPTConfig) -> None:
    labels = describe(c)
    info = model_info(c)
    w = 4.2
    ax.text(x, 11.6, name, ha="center", fontsize=12, weight="bold")
    ax.text(x, 11.15, f"{info['params'] / 1e6:,.1f}M parameters, context {c.block_size}",
            ha="center", fontsize=8.5, color="#555")  # fmt: skip
    ax.text(x, 0.15, "token ids (B, T)", ha="center", fontsize=8.5)
    _arrow(ax, x, 0.35, 0.75)
    _box(ax, x, 1.25, w, 0.9, labels["embed"], COLORS["embed"])
    _arrow(ax, x, 1.7, 2.25)
    # the repeated block, with its two residual branches
    ax.add_patch(FancyBboxPatch((x - w / 2 - 0.35, 2.25), w + 0.7, 6.1,
                                boxstyle="round,pad=0.02,rounding_size=0.15",
                                fc=COLORS["block"], ec="#888", lw=1, ls="--"))  # fmt: skip
    ax.text(x - w / 2 - 0.2, 8.1, f"x {c.n_layer} blocks", fontsize=9, weight="bold", ha="left")
    _box(ax, x, 2.9, w * 0.6, 0.5, labels["norm"], COLORS["norm"])
    _box(ax, x, 4.0, w, 1.1, labels["attn"], COLORS["attn"], fontsize=8)
    ax.text(x, 4.95, "(+) residual: x = x + attn(norm(x))", ha="center", fontsize=7.5, color="#555")
    _box(ax, x, 5.8, w * 0.6, 0.5, labels["norm"], COLORS["norm"])
    _box(ax, x, 6.85, w, 0.8, labels["mlp"], COLORS["mlp"], fontsize=8)
    ax.text(x, 7.6, "(+) residual: x = x + mlp(norm(x))", ha="center", fontsize=7.5, color="#555")
    for y0, y1 in ((3.15, 3.45), (4.55, 5.55), (6.05, 6.45)):
        _arrow(ax, x, y0, y1)
    for y0, y1 in ((2.45, 4.95), (5.2, 7.6)):  # the residual stream skips around each branch
        side = x + w / 2 + 0.18
        ax.plot([x, side, side], [y0, y0, y1], color="#1f5fa8", lw=1.2)
        ax.annotate("", xy=(x + 1.9, y1), xytext=(side, y1),
                    arrowprops=dict(arrowstyle="->", color="#1f5fa8", lw=1.2))  # fmt: skip
    _arrow(ax, x, 8.35, 8.85)
    _box(ax, x, 9.1, w * 0.6, 0.5, "final " + labels["norm"], COLORS["norm"])
    _arrow(ax, x, 9.35, 9.75)
    _box(ax, x, 10.1, w, 0.6, labels["head"], COLORS["head"])
    ax.text(x, 10.65, f"logits (B, T, {c.vocab_size})", ha="center", fontsize=8.5)


def draw(presets: list[str], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.2 * len(presets), 8.5))
    for i, name in enumerate(presets):
        draw_column(ax, 2.6 + 5.2 * i, name, GPTConfig.from_preset(name))
    ax.set_xlim(0, 5.2 * len(presets))
    ax.set_ylim(0, 12)
    ax.axis("off")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["gpt2", "llama-tiny"])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "assets" / "llm-architecture.png")  # fmt: skip
    args = parser.parse_args()
    print(draw(args.presets, args.out))


if __name__ == "__main__":
    main()

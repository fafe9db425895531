"""TEMPORARY stand-ins for the model, tokenizer and corpora stages, used only by the train tests
until those stages land on main. `install()` adds a name only where the real one is missing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from byollm.errors import ByollmError


@dataclasses.dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 1
    n_head: int = 1
    n_kv_head: int | None = None
    n_embd: int = 16
    mlp: str = "gelu"
    mlp_hidden: int | None = None
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    pos: str = "learned"
    rope_theta: float = 10000.0
    qk_norm: bool = False
    tie_embeddings: bool = False
    bias: bool = False
    dropout: float = 0.0


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(
            nn.Linear(config.n_embd, config.n_embd, bias=False) for _ in range(config.n_layer)
        )
        self.ln = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, idx, targets=None, *, kv_cache=None):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.blocks:
            # causal mean of the past, to make the model a (weak) language model
            weights = torch.tril(torch.ones(T, T, device=idx.device))
            weights = weights / weights.sum(1, keepdim=True)
            x = x + F.relu(block(weights @ x))
        logits = self.lm_head(self.ln(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, use_cache=True):
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.config.block_size :])
            probs = F.softmax(logits[:, -1] / temperature, dim=-1)
            idx = torch.cat([idx, torch.multinomial(probs, 1)], dim=1)
        return idx


def model_info(config, seq_len=None):
    params = sum(p.numel() for p in GPT(config).parameters())
    return {"params": params, "flops_per_token_train": 6 * params}


def save_model(model, directory, *, extra=None):
    from safetensors.torch import save_file

    directory = Path(directory)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, directory / "model.safetensors"
    )
    cfg = {"format": "byollm-model", "version": 1, "model": dataclasses.asdict(model.config)}
    (directory / "config.json").write_text(json.dumps({**cfg, **(extra or {})}))


def load_model(directory, *, device="cpu"):
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg = json.loads((directory / "config.json").read_text())["model"]
    model = GPT(GPTConfig(**cfg))
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    return model.to(device)


class CharTokenizer:
    def __init__(self, chars):
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}
        self.special_tokens = {}
        self.eot_id = None

    @classmethod
    def train(cls, text):
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self):
        return len(self.chars)

    @property
    def content_hash(self):
        return hashlib.sha256(self.chars.encode()).hexdigest()

    def encode(self, text, *, allowed_special=frozenset()):
        return [self.stoi[c] for c in text]

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)

    def save(self, path):
        Path(path).write_text(json.dumps({"type": "char", "chars": self.chars}))


def load_tokenizer(spec, *, mirror=None):
    path = Path(spec)
    if not path.is_file():
        raise ByollmError(f"stand-in tokenizer: {spec} not a file")
    return CharTokenizer(json.loads(path.read_text())["chars"])


class OfflineError(ByollmError):
    pass


def get_corpus(name, *, mirror=None, progress=True):
    path = Path(name)
    if path.exists():
        return path
    if name == "tinyshakespeare":
        shared = (
            Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare.txt"
        )
        if shared.exists():
            return shared
        raise OfflineError("no network")
    raise ByollmError(f"unknown corpus {name}")


def corpus_files(name, *, mirror=None, progress=True):
    path = get_corpus(name, mirror=mirror, progress=progress)
    return sorted(p for p in path.rglob("*.txt")) if path.is_dir() else [path]


def byollm_home():
    return Path(os.environ.get("BYOLLM_HOME", Path.home() / ".cache" / "byollm"))


def install():
    import importlib
    import sys
    import types

    def module(name):
        try:
            return importlib.import_module(name)
        except ImportError:
            mod = types.ModuleType(name)
            sys.modules[name] = mod
            parent, _, leaf = name.rpartition(".")
            setattr(importlib.import_module(parent), leaf, mod)
            return mod

    g = globals()
    for mod_name, names in {
        "byollm.model": ["GPTConfig", "GPT", "model_info", "save_model", "load_model"],
        "byollm.tokenizer": ["CharTokenizer", "load_tokenizer"],
        "byollm.data.corpora": ["OfflineError", "get_corpus", "corpus_files"],
        "byollm.paths": ["byollm_home"],
    }.items():
        mod = module(mod_name)
        for name in names:
            if not hasattr(mod, name):
                setattr(mod, name, g[name])


def single_thread():
    """Tiny models on a shared 2-core box run fastest (and steadiest) on one thread."""
    import contextlib

    @contextlib.contextmanager
    def ctx():
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    return ctx()

"""Hugging Face <-> byollm: load GPT-2 / Llama checkpoints, export ours for `from_pretrained`.

    >>> model = from_hf("path/to/gpt2")          # a folder with config.json + model.safetensors
    >>> to_hf(model, "exported")                  # AutoModelForCausalLM.from_pretrained("exported")

Nothing here imports `transformers`: a Hugging Face folder is just a `config.json` and weight
files, and the mapping is a table of names. What differs between the two layouts:

- GPT-2 stores its linear layers as `Conv1D` with the weight transposed, (in, out); ours are
  `nn.Linear`, (out, in). The original OpenAI checkpoints also lack the `transformer.` prefix and
  carry the causal-mask buffers `h.N.attn.bias`, which we drop.
- Llama keeps q, k, v and gate, up as separate matrices; we fuse each group into one matrix
  (`c_attn`, `c_fc`) so a block does one multiply instead of three or two. Both use the
  "rotate_half" RoPE layout, so no rows need permuting.

`convert_from_hf` and `convert_to_hf` (the `byollm convert` verb) add the folder safety a command
needs: the whole input is read and checked (weights against config, tokenizer against vocabulary)
before anything is written; the result is written into a temporary folder beside `out` and
renamed into place, so `out` is never a mix of new weights and an old tokenizer. `out` may not be
the input (or hold it), and an existing non-empty `out` is replaced only if it is a folder this
command wrote earlier: its `config.json` says `"written_by": "byollm convert"` and it holds
nothing else.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from byollm.errors import ByollmError
from byollm.model.checkpoint import (
    CONFIG_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    load_model,
    save_checkpoint,
    write_folder_atomically,
)
from byollm.model.config import GPTConfig
from byollm.model.gpt import GPT
from byollm.model.weights import check_weights_match, expected_weight_shapes, load_state, unwrap

# Hugging Face GPT-2 activation_function -> our mlp kind: the tanh approximation (three spellings
# of one formula) or the exact erf GELU (PyTorch's kernel, or the same written out in Python)
GPT2_ACTIVATIONS = {
    "gelu_new": "gelu",
    "gelu_pytorch_tanh": "gelu",
    "gelu_fast": "gelu",
    "gelu": "gelu_exact",
    "gelu_python": "gelu_exact",
}


# --- reading a Hugging Face folder ---------------------------------------------------------------


def read_hf_config(directory: str | Path) -> dict:
    directory = Path(directory)
    path = directory / "config.json"
    if not directory.is_dir():
        raise ByollmError(f"Hugging Face model folder not found: {directory}")
    if not path.is_file():
        raise ByollmError(f"{path}: missing (a Hugging Face model folder has config.json)")
    try:
        hf = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ByollmError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(hf, dict) or "model_type" not in hf:
        raise ByollmError(f"{path}: no 'model_type'; is this a Hugging Face config?")
    return hf


def read_hf_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a folder: model.safetensors, sharded safetensors, or pytorch_model.bin."""
    directory = Path(directory)
    single = directory / "model.safetensors"
    index = directory / "model.safetensors.index.json"
    if single.is_file():
        return _load_safetensors(single)
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as e:
            raise ByollmError(f"{index}: not a valid safetensors index ({e})") from None
        tensors: dict[str, torch.Tensor] = {}
        for shard in shards:
            if not (directory / shard).is_file():
                raise ByollmError(f"{index} lists {shard}, which is missing from {directory}")
            tensors.update(_load_safetensors(directory / shard))
        return tensors
    legacy = directory / "pytorch_model.bin"
    if legacy.is_file():
        try:
            return torch.load(legacy, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a damaged or unsafe file
            raise ByollmError(f"{legacy}: cannot read ({e})") from None
    raise ByollmError(
        f"{directory}: no weights found (expected model.safetensors, "
        "model.safetensors.index.json or pytorch_model.bin)"
    )


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ByollmError(f"{path}: cannot read ({e}); the file may be partial") from None


def _get(hf: dict, key: str, source: str, default=None):
    if key in hf and hf[key] is not None:
        return hf[key]
    if default is None:
        raise ByollmError(f"{source}: missing key {key!r}")
    return default


# --- Hugging Face -> byollm ----------------------------------------------------------------------


def hf_to_gpt_config(hf: dict, source: str = "config.json") -> GPTConfig:
    """Translate a Hugging Face GPT-2 or Llama config into a `GPTConfig`."""
    kind = hf.get("model_type")
    if kind == "gpt2":
        act = hf.get("activation_function", "gelu_new")
        if act not in GPT2_ACTIVATIONS:
            raise ByollmError(f"{source}: activation_function {act!r} is not supported "
                              f"(supported: {', '.join(GPT2_ACTIVATIONS)})")  # fmt: skip
        if hf.get("scale_attn_by_inverse_layer_idx") or hf.get("scale_attn_weights") is False:
            raise ByollmError(f"{source}: non-standard attention scaling is not supported")
        return GPTConfig(
            vocab_size=_get(hf, "vocab_size", source),
            block_size=_get(hf, "n_positions", source),
            n_layer=_get(hf, "n_layer", source),
            n_head=_get(hf, "n_head", source),
            n_embd=_get(hf, "n_embd", source),
            mlp=GPT2_ACTIVATIONS[act],
            mlp_hidden=hf.get("n_inner"),
            norm_eps=hf.get("layer_norm_epsilon", 1e-5),
            tie_embeddings=hf.get("tie_word_embeddings", True),
        )
    if kind == "llama":
        if hf.get("hidden_act", "silu") != "silu":
            raise ByollmError(f"{source}: hidden_act {hf['hidden_act']!r} is not supported (silu)")
        rope = hf.get("rope_parameters") or {}
        scaling = hf.get("rope_scaling") or {}
        rope_type = rope.get("rope_type") or scaling.get("rope_type") or scaling.get("type")
        if rope_type not in (None, "default"):
            raise ByollmError(f"{source}: RoPE scaling {rope_type!r} is not supported")
        if hf.get("attention_bias", False) != hf.get("mlp_bias", False):
            raise ByollmError(f"{source}: attention_bias and mlp_bias differ; byollm has one bias")
        n_embd, n_head = _get(hf, "hidden_size", source), _get(hf, "num_attention_heads", source)
        head_dim = hf.get("head_dim")
        if head_dim is not None and head_dim * n_head != n_embd:
            raise ByollmError(f"{source}: head_dim {head_dim} x {n_head} heads != hidden_size "
                              f"{n_embd}; byollm needs head_dim = hidden_size / heads")  # fmt: skip
        return GPTConfig(
            vocab_size=_get(hf, "vocab_size", source),
            block_size=_get(hf, "max_position_embeddings", source),
            n_layer=_get(hf, "num_hidden_layers", source),
            n_head=n_head,
            n_kv_head=hf.get("num_key_value_heads") or n_head,
            n_embd=n_embd,
            mlp="swiglu",
            mlp_hidden=_get(hf, "intermediate_size", source),
            norm="rmsnorm",
            norm_eps=hf.get("rms_norm_eps", 1e-6),
            pos="rope",
            rope_theta=float(rope.get("rope_theta") or hf.get("rope_theta") or 10000.0),
            tie_embeddings=hf.get("tie_word_embeddings", False),
            bias=bool(hf.get("attention_bias", False)),
        )
    raise ByollmError(
        f"{source}: model_type {kind!r} is not supported; byollm reads gpt2 and llama"
    )


def _gpt2_weights_to_ours(sd: dict, config: GPTConfig) -> dict[str, torch.Tensor]:
    out = {}
    for name, t in sd.items():
        name = name.removeprefix("transformer.")
        if re.fullmatch(r"h\.\d+\.attn\.(masked_)?bias", name):
            continue  # causal-mask buffers of old checkpoints, not weights
        if name == "lm_head.weight":
            if not config.tie_embeddings:
                out[name] = t
            continue
        if re.fullmatch(r"h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight", name):
            t = t.t()  # Conv1D (in, out) -> Linear (out, in)
        out["transformer." + name] = t
    return out


def _llama_weights_to_ours(sd: dict, config: GPTConfig) -> dict[str, torch.Tensor]:
    out, rest = {}, dict(sd)

    def take(name):
        if name not in rest:
            raise KeyError(name)
        return rest.pop(name)

    try:
        out["transformer.wte.weight"] = take("model.embed_tokens.weight")
        out["transformer.ln_f.weight"] = take("model.norm.weight")
        if config.tie_embeddings:
            rest.pop("lm_head.weight", None)
        else:
            out["lm_head.weight"] = take("lm_head.weight")
        suffixes = ["weight", "bias"] if config.bias else ["weight"]
        for i in range(config.n_layer):
            src, dst = f"model.layers.{i}.", f"transformer.h.{i}."
            out[dst + "ln_1.weight"] = take(src + "input_layernorm.weight")
            out[dst + "ln_2.weight"] = take(src + "post_attention_layernorm.weight")
            for s in suffixes:
                attn, mlp = src + "self_attn.", src + "mlp."
                qkv = [take(attn + f"{p}_proj.{s}") for p in "qkv"]
                out[dst + f"attn.c_attn.{s}"] = torch.cat(qkv, dim=0)
                out[dst + f"attn.c_proj.{s}"] = take(attn + f"o_proj.{s}")
                gate_up = [take(mlp + f"{p}_proj.{s}") for p in ("gate", "up")]
                out[dst + f"mlp.c_fc.{s}"] = torch.cat(gate_up, dim=0)
                out[dst + f"mlp.c_proj.{s}"] = take(mlp + f"down_proj.{s}")
    except KeyError as e:
        raise ByollmError(
            f"weights lack {e.args[0]!r} (a partial or mismatched checkpoint?)"
        ) from None
    rest = {k: v for k, v in rest.items() if not k.endswith("rotary_emb.inv_freq")}
    out.update(rest)  # leftovers are reported as unexpected by load_state
    return out


def from_hf(directory: str | Path) -> GPT:
    """Load a Hugging Face GPT-2 (`GPT2LMHeadModel`) or Llama (`LlamaForCausalLM`) folder."""
    directory = Path(directory)
    hf = read_hf_config(directory)
    config = hf_to_gpt_config(hf, str(directory / "config.json"))
    sd = read_hf_weights(directory)
    convert = _gpt2_weights_to_ours if hf["model_type"] == "gpt2" else _llama_weights_to_ours
    try:
        tensors = convert(sd, config)
    except ByollmError as e:
        raise ByollmError(f"{directory}: {e}") from None
    tensors = {k: v.float() for k, v in tensors.items()}
    source = f"{directory} (weights vs config.json)"
    # shapes first: a config.json that does not fit the weights never allocates its model
    check_weights_match(expected_weight_shapes(config),
                        {k: tuple(v.shape) for k, v in tensors.items()}, source)  # fmt: skip
    model = GPT(config)
    load_state(model, tensors, source)
    return model.eval()


# --- byollm -> Hugging Face ----------------------------------------------------------------------


def hf_kind(config: GPTConfig) -> str:
    """'gpt2' or 'llama': the Hugging Face architecture that computes exactly what `config` does."""
    c = config
    if c.norm == "layernorm" and c.pos == "learned" and c.mlp in ("gelu", "gelu_exact"):
        problems = [
            msg
            for bad, msg in (
                (c.kv_heads != c.n_head, "grouped-query attention"),
                (c.qk_norm, "QK-norm"),
                (not c.bias, "bias=false"),
            )
            if bad
        ]
        if not problems:
            return "gpt2"
        raise ByollmError(f"cannot export to GPT-2: it has no {', '.join(problems)}")
    if c.norm == "rmsnorm" and c.pos == "rope" and c.mlp == "swiglu" and not c.qk_norm:
        return "llama"
    raise ByollmError(
        f"cannot export norm={c.norm}, pos={c.pos}, mlp={c.mlp}, qk_norm={c.qk_norm} to Hugging "
        "Face: GPT-2 needs layernorm+learned+gelu or gelu_exact, Llama needs rmsnorm+rope+swiglu "
        "without qk_norm"
    )


def to_hf(model: torch.nn.Module, directory: str | Path) -> Path:
    """Write `config.json` + `model.safetensors` that `AutoModelForCausalLM` loads as ours."""
    model = unwrap(model)
    c = model.config
    kind = hf_kind(c)
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    if c.tie_embeddings:
        sd.pop("lm_head.weight")
    if kind == "gpt2":
        hf_config = {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": c.vocab_size,
            "n_positions": c.block_size,
            "n_ctx": c.block_size,
            "n_embd": c.n_embd,
            "n_layer": c.n_layer,
            "n_head": c.n_head,
            "n_inner": c.hidden_dim,
            "activation_function": "gelu" if c.mlp == "gelu_exact" else "gelu_new",
            "layer_norm_epsilon": c.norm_eps,
            "resid_pdrop": c.dropout,
            "embd_pdrop": c.dropout,
            "attn_pdrop": c.dropout,
            "tie_word_embeddings": c.tie_embeddings,
        }
        tensors = {}
        for name, t in sd.items():
            if re.search(r"\.(c_attn|c_proj|c_fc)\.weight$", name):
                t = t.t()  # Linear (out, in) -> Conv1D (in, out)
            tensors[name] = t
    else:
        hf_config = {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": c.vocab_size,
            "hidden_size": c.n_embd,
            "intermediate_size": c.hidden_dim,
            "num_hidden_layers": c.n_layer,
            "num_attention_heads": c.n_head,
            "num_key_value_heads": c.kv_heads,
            "head_dim": c.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": c.block_size,
            "rms_norm_eps": c.norm_eps,
            "rope_theta": c.rope_theta,
            "rope_parameters": {"rope_theta": c.rope_theta, "rope_type": "default"},
            "attention_bias": c.bias,
            "mlp_bias": c.bias,
            "attention_dropout": c.dropout,
            "tie_word_embeddings": c.tie_embeddings,
        }
        tensors = _ours_to_llama(sd, c)
    hf_config["torch_dtype"] = "float32"
    hf_config["written_by"] = WRITTEN_BY  # lets a later `byollm convert` replace this folder
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(directory / "model.safetensors"),
              metadata={"format": "pt"})  # fmt: skip
    (directory / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
    return directory


def _ours_to_llama(sd: dict, c: GPTConfig) -> dict[str, torch.Tensor]:
    out = {"model.embed_tokens.weight": sd["transformer.wte.weight"],
           "model.norm.weight": sd["transformer.ln_f.weight"]}  # fmt: skip
    if not c.tie_embeddings:
        out["lm_head.weight"] = sd["lm_head.weight"]
    kv = c.kv_heads * c.head_dim
    for i in range(c.n_layer):
        src, dst = f"transformer.h.{i}.", f"model.layers.{i}."
        out[dst + "input_layernorm.weight"] = sd[src + "ln_1.weight"]
        out[dst + "post_attention_layernorm.weight"] = sd[src + "ln_2.weight"]
        for s in ["weight", "bias"] if c.bias else ["weight"]:
            q, k, v = sd[src + f"attn.c_attn.{s}"].split([c.n_embd, kv, kv], dim=0)
            out.update({dst + f"self_attn.q_proj.{s}": q, dst + f"self_attn.k_proj.{s}": k,
                        dst + f"self_attn.v_proj.{s}": v})  # fmt: skip
            out[dst + f"self_attn.o_proj.{s}"] = sd[src + f"attn.c_proj.{s}"]
            gate, up = sd[src + f"mlp.c_fc.{s}"].chunk(2, dim=0)
            out[dst + f"mlp.gate_proj.{s}"], out[dst + f"mlp.up_proj.{s}"] = gate, up
            out[dst + f"mlp.down_proj.{s}"] = sd[src + f"mlp.c_proj.{s}"]
    return out


# --- the `byollm convert` verb: check everything, then write a whole folder --------------------

WRITTEN_BY = "byollm convert"  # the config.json marker of a folder this module wrote
CONVERT_FILES = {CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE}


def convert_from_hf(source: str | Path, out: str | Path, tokenizer: str | None = None) -> GPT:
    """`from_hf(source)` saved as a byollm checkpoint in `out` (with `tokenizer` as its
    tokenizer file); refuses an unsafe `out` and writes nothing unless every input is good."""
    source, out = Path(source), Path(out)
    check_convert_out(out, source)
    model = from_hf(source)
    tok = None
    if tokenizer is not None:
        from byollm.tokenizer import load_tokenizer

        tok = load_tokenizer(tokenizer)
        if tok.vocab_size > model.config.vocab_size:
            raise ByollmError(
                f"tokenizer {tokenizer} has {tok.vocab_size} tokens but the model in {source} "
                f"only knows {model.config.vocab_size}: the tokenizer does not belong to it"
            )
    extra = {"source": {"hf": str(source)}, "written_by": WRITTEN_BY}
    save_checkpoint(out, model, tok, extra=extra)
    return model


def convert_to_hf(checkpoint: str | Path, out: str | Path) -> Path:
    """The byollm checkpoint `checkpoint` written as a Hugging Face folder `out`, safely."""
    checkpoint, out = Path(checkpoint), Path(out)
    check_convert_out(out, checkpoint)
    model = load_model(checkpoint)
    hf_kind(model.config)  # an architecture Hugging Face cannot express is refused before writing
    write_folder_atomically(out, lambda folder: to_hf(model, folder))
    return out


def check_convert_out(out: Path, source: Path) -> None:
    """Refuse an `out` that is the input or holds it, a file, or a non-empty folder that
    `byollm convert` did not write (see the module docstring)."""
    out_real, source_real = out.resolve(), source.resolve()
    if out_real == source_real:
        raise ByollmError(f"--out {out} is the input {source} itself; write to a new folder")
    if out_real in source_real.parents:
        raise ByollmError(f"--out {out} holds the input {source}; write to a new folder")
    if not out.exists():
        return
    if not out.is_dir():
        raise ByollmError(f"--out {out} is a file; give a new or empty folder")
    names = {entry.name for entry in out.iterdir()}
    if names and not (names <= CONVERT_FILES and _written_by_convert(out)):
        raise ByollmError(
            f"--out {out} is a non-empty folder that byollm convert did not write "
            f"({', '.join(sorted(names)[:3])}{', ...' if len(names) > 3 else ''}); "
            "give a new or empty folder, or delete it first"
        )


def _written_by_convert(folder: Path) -> bool:
    try:
        meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("written_by") == WRITTEN_BY

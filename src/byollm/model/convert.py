"""Hugging Face <-> byollm: load GPT-2 / Llama checkpoints, export ours for `from_pretrained`.

    >>> model = from_hf("path/to/gpt2")  # a folder: config.json + model.safetensors  # doctest: +SKIP
    >>> to_hf(model, "exported")  # AutoModelForCausalLM.from_pretrained("exported")  # doctest: +SKIP

Nothing here imports `transformers`: a Hugging Face folder is just a `config.json` and weight
files, and the mapping is a table of names. What differs between the two layouts:

- GPT-2 stores its linear layers as `Conv1D` with the weight transposed, (in, out); ours are
  `nn.Linear`, (out, in). The original OpenAI checkpoints also lack the `transformer.` prefix and
  carry the causal-mask buffers `h.N.attn.bias`, which we drop.
- Llama keeps q, k, v and gate, up as separate matrices; we fuse each group into one matrix
  (`c_attn`, `c_fc`) so a block does one multiply instead of three or two. Both use the
  "rotate_half" RoPE layout, so no rows need permuting.

The `byollm convert` verb: `convert_from_hf` (a local folder), `convert_from_hub` (fetched by
`hub.py`, checked against the Hub's listing) and `convert_to_hf`. A model keeps its own
tokenizer both ways: a Hugging Face folder's `vocab.json` + `merges.txt` or `tokenizer.json`
becomes the checkpoint's tokenizer (`hf_folder_tokenizer`), and export writes the checkpoint's
tokenizer as `tokenizer.json` + `tokenizer_config.json` + `special_tokens_map.json` (via
`tokenizer/export.py`) and `generation_config.json` (stop at `<|endoftext|>`, as `byollm sample`
does), so `AutoTokenizer` and `pipeline("text-generation")` work on the folder. These add the
folder safety a command needs: the whole input is read and checked (weights against config, tokenizer against vocabulary)
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
from byollm.formats import read_json_file
from byollm.model.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    load_model,
    save_checkpoint,
    write_folder_atomically,
)
from byollm.model.config import GPTConfig
from byollm.model.gpt import GPT
from byollm.model.hub import (
    GPT2_TOKENIZER_FILES,
    HF_CONFIG,
    HF_LEGACY_WEIGHTS,
    HF_TOKENIZER,
    HF_WEIGHTS,
    HF_WEIGHTS_INDEX,
)
from byollm.model.weights import check_weights_match, expected_weight_shapes, load_state, unwrap
from byollm.tokenizer import LEGACY_TOKENIZER_FILE, TOKENIZER_FILE
from byollm.tokenizer.export import HF_TOKENIZER_FILES

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
    path = directory / HF_CONFIG
    if not directory.is_dir():
        raise ByollmError(f"Hugging Face model folder not found: {directory}")
    hf = read_json_file(path, missing=f"missing (a Hugging Face model folder has {HF_CONFIG})")
    if not isinstance(hf, dict) or "model_type" not in hf:
        raise ByollmError(f"{path}: no 'model_type'; is this a Hugging Face config?")
    return hf


def read_hf_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a folder: model.safetensors, sharded safetensors, or pytorch_model.bin."""
    directory = Path(directory)
    single = directory / HF_WEIGHTS
    index = directory / HF_WEIGHTS_INDEX
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
    legacy = directory / HF_LEGACY_WEIGHTS
    if legacy.is_file():
        try:
            return torch.load(legacy, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a damaged or unsafe file
            raise ByollmError(f"{legacy}: cannot read ({e})") from None
    raise ByollmError(
        f"{directory}: no weights found (expected {HF_WEIGHTS}, {HF_WEIGHTS_INDEX} or "
        f"{HF_LEGACY_WEIGHTS})"
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


def hf_to_gpt_config(hf: dict, source: str = HF_CONFIG) -> GPTConfig:
    """Translate a Hugging Face GPT-2 or Llama config into a `GPTConfig`."""
    kind = hf.get("model_type")
    if kind == "gpt2":
        act = hf.get("activation_function", "gelu_new")
        if act not in GPT2_ACTIVATIONS:
            raise ByollmError(
                f"{source}: activation_function {act!r} is not supported "
                f"(supported: {', '.join(GPT2_ACTIVATIONS)})"
            )
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
            raise ByollmError(
                f"{source}: head_dim {head_dim} x {n_head} heads != hidden_size "
                f"{n_embd}; byollm needs head_dim = hidden_size / heads"
            )
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
    config = hf_to_gpt_config(hf, str(directory / HF_CONFIG))
    sd = read_hf_weights(directory)
    convert = _gpt2_weights_to_ours if hf["model_type"] == "gpt2" else _llama_weights_to_ours
    try:
        tensors = convert(sd, config)
    except ByollmError as e:
        raise ByollmError(f"{directory}: {e}") from None
    tensors = {k: v.float() for k, v in tensors.items()}
    source = f"{directory} (weights vs config.json)"
    # shapes first: a config.json that does not fit the weights never allocates its model
    check_weights_match(
        expected_weight_shapes(config), {k: tuple(v.shape) for k, v in tensors.items()}, source
    )
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


def to_hf(
    model: torch.nn.Module, directory: str | Path, *, eos_token_id: int | None = None
) -> Path:
    """Write `config.json` + `model.safetensors` that `AutoModelForCausalLM` loads as ours
    (`eos_token_id`: the tokenizer's end-of-text id, recorded as bos and eos, as GPT-2 does)."""
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
        if not c.bias:  # GPT-2 always has biases: zeros compute exactly what none do
            for name, t in list(tensors.items()):
                if re.search(r"\.(c_attn|c_proj|c_fc)\.weight$", name):
                    tensors[name.removesuffix("weight") + "bias"] = torch.zeros(t.shape[1])
                elif re.search(r"\.ln_(1|2|f)\.weight$", name):
                    tensors[name.removesuffix("weight") + "bias"] = torch.zeros_like(t)
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
    if eos_token_id is not None:
        hf_config["bos_token_id"] = hf_config["eos_token_id"] = eos_token_id
    hf_config["written_by"] = WRITTEN_BY  # lets a later `byollm convert` replace this folder
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(directory / HF_WEIGHTS),
        metadata={"format": "pt"},
    )
    (directory / HF_CONFIG).write_text(json.dumps(hf_config, indent=2) + "\n")
    return directory


def _ours_to_llama(sd: dict, c: GPTConfig) -> dict[str, torch.Tensor]:
    out = {
        "model.embed_tokens.weight": sd["transformer.wte.weight"],
        "model.norm.weight": sd["transformer.ln_f.weight"],
    }
    if not c.tie_embeddings:
        out["lm_head.weight"] = sd["lm_head.weight"]
    kv = c.kv_heads * c.head_dim
    for i in range(c.n_layer):
        src, dst = f"transformer.h.{i}.", f"model.layers.{i}."
        out[dst + "input_layernorm.weight"] = sd[src + "ln_1.weight"]
        out[dst + "post_attention_layernorm.weight"] = sd[src + "ln_2.weight"]
        for s in ["weight", "bias"] if c.bias else ["weight"]:
            q, k, v = sd[src + f"attn.c_attn.{s}"].split([c.n_embd, kv, kv], dim=0)
            out.update(
                {
                    dst + f"self_attn.q_proj.{s}": q,
                    dst + f"self_attn.k_proj.{s}": k,
                    dst + f"self_attn.v_proj.{s}": v,
                }
            )
            out[dst + f"self_attn.o_proj.{s}"] = sd[src + f"attn.c_proj.{s}"]
            gate, up = sd[src + f"mlp.c_fc.{s}"].chunk(2, dim=0)
            out[dst + f"mlp.gate_proj.{s}"], out[dst + f"mlp.up_proj.{s}"] = gate, up
            out[dst + f"mlp.down_proj.{s}"] = sd[src + f"mlp.c_proj.{s}"]
    return out


# --- the `byollm convert` verb: check everything, then write a whole folder --------------------

WRITTEN_BY = "byollm convert"  # the config.json marker of a folder this module wrote
GENERATION_CONFIG = "generation_config.json"
# every file either direction writes (tokenizer.json: byollm's or Hugging Face's format)
CONVERT_FILES = {
    CONFIG_FILE,
    WEIGHTS_FILE,
    TOKENIZER_FILE,  # byollm's own format, in a byollm checkpoint
    LEGACY_TOKENIZER_FILE,  # byollm's, in old checkpoints
    *HF_TOKENIZER_FILES,  # Hugging Face's tokenizer.json and the rest, in an export
    GENERATION_CONFIG,
}


def convert_from_hf(
    source: str | Path, out: str | Path, tokenizer=None, *, origin: dict | None = None
) -> GPT:
    """`from_hf(source)` saved as a byollm checkpoint in `out` (with `tokenizer`, a name, a path
    or a Tokenizer, as byollm-tokenizer.json); refuses an unsafe `out` and writes nothing unless every
    input is good. `origin` is recorded as the checkpoint's "source" (default: the folder)."""
    from byollm.tokenizer import Tokenizer, load_tokenizer

    source, out = Path(source), Path(out)
    check_convert_out(out, source)
    model = from_hf(source)
    tok = tokenizer
    if tokenizer is not None and not isinstance(tokenizer, Tokenizer):
        tok = load_tokenizer(tokenizer)
    if tok is not None and tok.vocab_size > model.config.vocab_size:
        raise ByollmError(
            f"tokenizer {tokenizer} has {tok.vocab_size} tokens but the model in {source} "
            f"only knows {model.config.vocab_size}: the tokenizer does not belong to it"
        )
    extra = {"source": origin or {"hf": str(source)}, "written_by": WRITTEN_BY}
    save_checkpoint(out, model, tok, extra=extra)
    return model


def hf_folder_tokenizer(directory: str | Path):
    """`(tokenizer, None)` from a Hugging Face folder's own files, or `(None, why not)`.

    GPT-2's `vocab.json` + `merges.txt` are exactly OpenAI's `encoder.json` + `vocab.bpe`
    (`tokenizer/pretrained.py` reads them); otherwise a `tokenizer.json` that byollm can
    represent (`tokenizer/export.py` `from_huggingface`)."""
    from byollm.tokenizer.base import ENDOFTEXT
    from byollm.tokenizer.bpe import BPETokenizer
    from byollm.tokenizer.export import from_huggingface
    from byollm.tokenizer.patterns import GPT2_PATTERN
    from byollm.tokenizer.pretrained import read_gpt2_files

    directory = Path(directory)
    vocab, merges, hf_json = (directory / f for f in (*GPT2_TOKENIZER_FILES, HF_TOKENIZER))
    if vocab.is_file() and merges.is_file():
        try:  # read_gpt2_files checks the pair: a vocabulary of another shape is reported
            ranks = read_gpt2_files(vocab, merges)
        except ByollmError as e:
            return None, str(e)
        encoder = json.loads(vocab.read_text(encoding="utf-8"))  # read_gpt2_files parsed it
        specials = {ENDOFTEXT: encoder[ENDOFTEXT]} if ENDOFTEXT in encoder else {}
        is_gpt2 = len(ranks) == 50256 and specials == {ENDOFTEXT: 50256}
        return BPETokenizer(
            ranks, pattern=GPT2_PATTERN, special_tokens=specials, name="gpt2" if is_gpt2 else None
        ), None
    if hf_json.is_file():
        try:
            return from_huggingface(hf_json), None
        except ByollmError as e:
            return None, str(e)
    return None, f"{directory} has no {' + '.join(GPT2_TOKENIZER_FILES)} or {HF_TOKENIZER}"


def convert_from_hub(
    name: str,
    out: str | Path,
    *,
    revision: str = "main",
    mirror: str | None = None,
    via: str = "byollm",
    tokenizer=None,
):
    """Fetch `name` from the Hugging Face Hub (checked, see `hub.py`) and convert it into `out`,
    keeping the repo's own tokenizer unless `tokenizer` is given.

    Returns `(model, the tokenizer saved or None, why none)`."""
    from byollm.model.hub import download_from_hub, hub_repo

    repo = hub_repo(name)
    check_convert_out(Path(out))  # a bad --out is refused before a download of gigabytes
    folder = download_from_hub(repo, revision=revision, mirror=mirror, via=via)
    tok, why_not = (tokenizer, None) if tokenizer is not None else hf_folder_tokenizer(folder)
    origin = {"hub": repo, "revision": revision}
    return convert_from_hf(folder, out, tok, origin=origin), tok, why_not


def convert_to_hf(checkpoint: str | Path, out: str | Path) -> list[str]:
    """The byollm checkpoint `checkpoint` written as a Hugging Face folder `out`, safely: the
    weights, and with the checkpoint's tokenizer the files `AutoTokenizer` and `pipeline` read.
    Returns the names of the files written."""
    from byollm.tokenizer import find_tokenizer_file, load_tokenizer
    from byollm.tokenizer.export import to_huggingface_folder

    checkpoint, out = Path(checkpoint), Path(out)
    check_convert_out(out, checkpoint)
    model = load_model(checkpoint)
    hf_kind(model.config)  # an architecture Hugging Face cannot express is refused before writing
    tok = None
    if find_tokenizer_file(checkpoint).is_file():
        tok = load_tokenizer(find_tokenizer_file(checkpoint))
    written = [HF_CONFIG, HF_WEIGHTS]

    def write(folder: Path) -> None:
        eot = None if tok is None else tok.eot_id
        to_hf(model, folder, eos_token_id=eot)
        if tok is not None:
            written.extend(
                to_huggingface_folder(tok, folder, model_max_length=model.config.block_size)
            )
        if eot is not None:  # generate() stops where `byollm sample` stops: at <|endoftext|>
            generation = {"bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot}
            (folder / GENERATION_CONFIG).write_text(json.dumps(generation, indent=2) + "\n")
            written.append(GENERATION_CONFIG)

    write_folder_atomically(out, write)
    return written


def check_convert_out(out: Path, source: Path | None = None) -> None:
    """Refuse an `out` that is the input `source`, holds it or lies inside it, a file, or a
    non-empty folder that `byollm convert` did not write (see the module docstring)."""
    if source is not None:
        out_real, source_real = out.resolve(), source.resolve()
        if out_real == source_real:
            raise ByollmError(f"--out {out} is the input {source} itself; write to a new folder")
        if out_real in source_real.parents:
            raise ByollmError(f"--out {out} holds the input {source}; write to a new folder")
        if source_real in out_real.parents:  # it would change the input (and a run's next save
            # of that checkpoint would delete it)
            raise ByollmError(
                f"--out {out} is inside the input {source}; write to a new folder outside it"
            )
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
        meta = json.loads((folder / HF_CONFIG).read_text(encoding="utf-8"))  # or byollm's
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("written_by") == WRITTEN_BY

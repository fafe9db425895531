"""What the playground's "look inside" panel shows: tokens, predictions, attention maps.

    >>> report = look_inside(model, tokenizer, tokenizer.encode("To be, or"), top_k=3, layer=0)  # doctest: +SKIP
    >>> report["tokens"][1]  # doctest: +SKIP
    {'id': 17, 'text': 'o', 'prob': 0.021}          # prob: what the model gave this token
    >>> report["predictions"][-1]                   # after "To be, or": the next token  # doctest: +SKIP
    [{'id': 0, 'text': ' ', 'prob': 0.61}, ...]
    >>> len(report["attention"]["heads"]), len(report["attention"]["heads"][0][3])  # doctest: +SKIP
    (4, 4)                                          # n_head maps; row i has i + 1 weights

Design choices:
- One forward pass over the whole text answers "what did the model predict at every step":
  position i's distribution is the one the token at i + 1 was drawn from (before the sampler's
  temperature and filters).
- Attention maps come from `GPT.attention_maps`, an explicit softmax(QK^T) pass that the fast
  path never runs. One layer per request: all heads of a layer are n_head x T x T numbers, and
  every layer of a large model at once would be tens of megabytes of JSON. Rows are cut at the
  diagonal (query i only sees keys 0..i) and rounded to 4 decimals.
- A text longer than the context window is inspected over its last `block_size` tokens, and
  `truncated` says how many were left out.
"""

from __future__ import annotations

import torch

from byollm.errors import ByollmError
from byollm.model.interface import model_device


def token_bytes(tokenizer, token_id: int) -> bytes:
    """The bytes of one token (U+FFFD's for an id the tokenizer does not know)."""
    return tokenizer.decode_bytes([token_id])


def token_text(tokenizer, token_id: int) -> str:
    """One token as text; a piece of a multi-byte character shows as U+FFFD."""
    return token_bytes(tokenizer, token_id).decode("utf-8", errors="replace")


def look_inside(model, tokenizer, ids: list[int], *, top_k: int = 5, layer: int | None = 0) -> dict:
    """Tokens (with the probability the model gave each), the top-k next-token candidates at
    every position, and the attention weights of every head of `layer` (None: no maps)."""
    config = model.config
    if layer is not None and not 0 <= layer < config.n_layer:
        raise ByollmError(
            f"layer={layer} is invalid: this model has layers 0..{config.n_layer - 1}"
        )
    if not ids:
        raise ByollmError("nothing to inspect: the text is empty")
    truncated = max(0, len(ids) - config.block_size)
    ids = ids[truncated:]
    idx = torch.tensor([ids], device=model_device(model))
    with torch.inference_mode():
        if layer is None:
            logits, maps = model(idx)[0], None
        else:
            logits, maps = model.attention_maps(idx)
    probs = torch.softmax(logits[0].float(), dim=-1)  # (T, V)
    seen = probs[:-1].gather(1, torch.tensor(ids[1:], device=probs.device)[:, None])[:, 0]
    texts = {i: token_text(tokenizer, i) for i in set(ids)}
    tokens = [{"id": i, "text": texts[i], "prob": None} for i in ids]
    for token, p in zip(tokens[1:], seen.tolist()):
        token["prob"] = round(p, 4)
    predictions = []
    if top_k:
        values, top_ids = torch.topk(probs, min(top_k, probs.size(-1)), dim=-1)
        for row_ids, row_values in zip(top_ids.tolist(), values.tolist()):
            predictions.append(
                [
                    {"id": i, "text": token_text(tokenizer, i), "prob": round(p, 4)}
                    for i, p in zip(row_ids, row_values)
                ]
            )
    report = {
        "tokens": tokens,
        "predictions": predictions,
        "truncated": truncated,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "attention": None,
    }
    if maps is not None:
        weights = (maps[layer][0].float() * 1e4).round() / 1e4  # (H, T, T)
        heads = [[row[: i + 1] for i, row in enumerate(head)] for head in weights.tolist()]
        report["attention"] = {"layer": layer, "heads": heads}
    return report

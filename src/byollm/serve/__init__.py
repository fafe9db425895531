"""byollm.serve: an OpenAI-compatible HTTP server with batched decoding, and a playground page.

    >>> from byollm.serve import create_app  # doctest: +SKIP
    >>> app = create_app(model, tokenizer, model_name="shakespeare")   # an ASGI app  # doctest: +SKIP
    $ byollm serve --checkpoint runs/shakespeare-char                   # the same, under uvicorn

Read in this order: `batcher.py` (one decode loop shared by every request, over the model's
`BatchKVCache`), `schemas.py` (the request bodies), `chat_prompt.py` (messages -> prompt),
`look_inside.py` (what the playground's panel shows), `app.py` (routes, streaming, errors),
`static/` (the page), `cli.py` (`byollm serve`). Needs the `serve` extra (starlette, uvicorn).
"""

from byollm.serve.app import create_app
from byollm.serve.batcher import Batcher

__all__ = ["Batcher", "create_app"]

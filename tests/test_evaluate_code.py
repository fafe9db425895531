"""The python-code task on real held-out stdlib modules: its fixed samples, how a body ends,
the decoder against a plain uncached loop, and the scores of a model that memorized the modules
(high) against an untrained one (nil). The CLI runs it on a saved tiny checkpoint."""

from __future__ import annotations

import ast
import dataclasses
import json
import warnings
from types import SimpleNamespace

import pytest
import torch
import train_helpers

from byollm.cli import main
from byollm.corpora.documents import iter_documents
from byollm.data.prepare import document_split
from byollm.evaluate.tasks import code, registry
from byollm.model import GPT, GPTConfig, save_checkpoint
from byollm.tokenizer import CharTokenizer

SMALL_STDLIB = "python-stdlib:1MB"  # its val split: 6 modules, 40 KB
N_SHORT_FUNCTIONS = 100  # their functions with a body of at most 400 bytes


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BYOLLM_HOME", str(tmp_path_factory.mktemp("home")))
        return code.held_out_modules(SMALL_STDLIB)


@pytest.fixture(scope="module")
def tokenizer(modules):
    return CharTokenizer.train("".join(m.text for m in modules))


def tiny_gpt(tokenizer, block_size=96):
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, block_size=block_size, n_layer=1, n_head=2, n_embd=32
    )
    return GPT(config).eval()


class Memorized(torch.nn.Module):
    """A model that learned the text by heart: after `order` tokens seen in `ids`, the token that
    followed them gets all the probability. With a KV cache it keeps each row's tokens."""

    def __init__(self, ids: list[int], vocab_size: int, order: int = 40, block_size: int = 96):
        super().__init__()
        self.config = SimpleNamespace(block_size=block_size)
        self.vocab_size, self.order = vocab_size, order
        self.follows = {}
        for i in range(order, len(ids)):
            self.follows.setdefault(tuple(ids[i - order : i]), ids[i])
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # so the model has a device

    def new_kv_cache(self, batch_size, max_seq_len=None):
        return SimpleNamespace(rows=[[] for _ in range(batch_size)])

    def forward(self, idx, kv_cache=None):
        rows = idx.tolist()
        if kv_cache is not None:
            for seen, new in zip(kv_cache.rows, rows):
                seen += new
            rows = [seen[-idx.shape[1] - self.order :] for seen in kv_cache.rows]
        offset = self.order if kv_cache is not None else 0
        logits = torch.full((idx.shape[0], idx.shape[1], self.vocab_size), -50.0)
        for b, row in enumerate(rows):
            for t in range(idx.shape[1]):
                end = min(len(row), offset + t + 1) if kv_cache is not None else t + 1
                nxt = self.follows.get(tuple(row[max(0, end - self.order) : end]))
                if nxt is not None:
                    logits[b, t, nxt] = 50.0
        return logits


def test_held_out_modules_are_the_modules_prepare_holds_out(modules):
    names = [m.name for m in modules]
    assert names == [
        "__future__.py",
        "__phello__/spam.py",
        "_aix_support.py",
        "antigravity.py",
        "asyncio/events.py",
        "asyncio/format_helpers.py",
    ]
    # exactly the modules prepare's document split holds out (6 of 46, whole)
    everything = [doc.name for doc in iter_documents(SMALL_STDLIB, progress=False)]
    assert names == [n for n in everything if document_split(n, code.VAL_FRACTION) == "val"]
    assert len(everything) == 46
    for module in modules:
        ast.parse(module.text)
        assert not module.text.startswith("# file:")  # the corpus's header line is not code


def test_samples_are_real_lines_and_headers_spread_in_file_order(modules):
    lines = code.next_line_items(modules, 50)
    assert len(lines) == 50 and len({item.where for item in lines}) == 50
    names = [m.name for m in modules]
    assert lines[0].where.startswith(names[0]) and lines[-1].where.startswith(names[-1])
    by_name = {m.name: m.text for m in modules}
    for item in lines:
        name, number = item.where.rsplit(":", 1)
        assert item.line.strip()
        assert by_name[name].splitlines()[int(number) - 1] == item.line
        assert by_name[name].startswith(item.before + item.line + "\n")
    functions = code.function_items(modules, 40)
    assert len(functions) == 40
    for item in functions:
        assert item.header.lstrip().startswith(("def ", "async def "))
        assert item.before.endswith(item.header)
        assert item.indent == len(item.header) - len(item.header.lstrip())
    # the same sample every time; only short functions
    assert code.function_items(modules, 40) == functions
    assert len(code.function_items(modules, 10**6)) == N_SHORT_FUNCTIONS


def test_a_body_ends_at_a_dedent_the_end_of_text_or_the_token_limit():
    header = "    def f(self, x):\n"
    body, ended = code.body_end("        y = x\n        return y\n    def g(self):\n", 4, False)
    assert (body, ended) == ("        y = x\n        return y\n", True)
    assert code.parses(header, body)
    # a blank line inside the body and a deeper block do not end it
    text = "        if x:\n\n            return 1\n        return 2\nclass B:\n"
    assert code.body_end(text, 4, False) == (text[: text.index("class")], True)
    # at the token limit, the unfinished last line is dropped and the body did not end itself
    assert code.body_end("        y = [\n        1, 2", 4, False) == ("        y = [\n", False)
    assert not code.parses(header, "        y = [\n")
    # at <|endoftext|> the last line counts as written
    assert code.body_end("        return x", 4, True) == ("        return x", True)
    assert not code.parses(header, "")  # an empty body is not Python
    with warnings.catch_warnings():  # a model's odd text is judged quietly
        warnings.simplefilter("error")
        assert code.parses(header, "        return 1if x else 2\n")


def test_complete_is_greedy_decoding_as_a_plain_uncached_loop(modules, tokenizer):
    model = tiny_gpt(tokenizer)
    prompts = [tokenizer.encode(m.text[:40]) for m in modules] + [tokenizer.encode("import a")]
    got = code.complete(model, prompts, 12, done=lambda ids: False)
    for prompt, new in zip(prompts, got):
        ids = list(prompt)
        with torch.no_grad():
            for _ in range(12):
                logits, _ = model(torch.tensor([ids]))
                ids.append(int(logits[0, -1].argmax()))
        assert new == ids[len(prompt) :]
    # sampling with the fixed seed is reproducible, and `done` stops a row
    sampled = code.complete(model, prompts, 8, done=lambda ids: False, temperature=1.0)
    assert sampled == code.complete(model, prompts, 8, done=lambda ids: False, temperature=1.0)
    assert code.complete(model, prompts, 8, done=lambda ids: len(ids) == 3)[0] == got[0][:3]


def test_a_model_that_knows_the_modules_scores_high_and_an_untrained_one_nil(modules, tokenizer):
    ids = tokenizer.encode("".join(m.text for m in modules))
    knows = Memorized(ids, tokenizer.vocab_size, block_size=2048)
    sizes = dict(next_lines=40, functions=12, bpb_bytes=3000)
    good = code.evaluate_code(knows, tokenizer, modules, log=lambda line: None, **sizes)
    # not 1.0: code repeats, so 40 characters of context do not always tell the next line
    assert good["acc"] >= 0.6 and good["parse_rate"] >= 0.75
    assert good["bits_per_byte"] < 1.0
    assert good["lines"] == 40 and good["functions"] == 12 and good["modules"] == 6
    bad = code.evaluate_code(tiny_gpt(tokenizer), tokenizer, modules, log=print, **sizes)
    assert bad["acc"] == 0.0 and bad["parse_rate"] <= 0.2
    assert bad["bits_per_byte"] > 4.0  # about log2 of the vocabulary, untrained
    assert "python-code: bits per byte" in code.format_code(bad)


def test_cli_runs_the_registered_task_with_a_limit(modules, tokenizer, tmp_path, capsys):
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, tiny_gpt(tokenizer, block_size=256), tokenizer)  # no line too long
    spec = registry.TASKS["python-code"]
    assert spec.asset == "python-stdlib"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BYOLLM_HOME", str(tmp_path / "home"))
        # held-out modules from the small corpus's val split, which this tokenizer covers
        patch.setitem(registry.TASKS, "python-code", dataclasses.replace(spec, asset=SMALL_STDLIB))
        args = ["eval", "--checkpoint", str(folder), "--task", "python-code"]
        assert main([*args, "--limit", "6"]) == 0
        out = capsys.readouterr().out
        assert "next-line exact match 0.0000 (6 lines)" in out
        assert "(6 functions," in out and "6 held-out modules" in out
        assert main([*args, "--limit", "3", "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["kind"] == "code" and result["functions"] == 3 and result["lines"] == 3
        assert len(result["samples"]) == 3 and result["bits_per_byte"] > 4.0


def test_during_training_it_is_one_more_metric(modules, tokenizer, tmp_path):
    spec = registry.TASKS["python-code"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BYOLLM_HOME", str(tmp_path / "home"))
        patch.setitem(registry.TASKS, "python-code", dataclasses.replace(spec, asset=SMALL_STDLIB))
        model = tiny_gpt(tokenizer, block_size=256).train()  # as the trainer has it
        metrics = registry.training_metrics(model, tokenizer, "python-code:4", log=lambda *a: None)
    assert metrics == {"python-code_acc": 0.0}  # the headline: next-line exact match
    assert model.training  # left in the mode it was in

"""Benchmark tasks: scoring against an independent scorer and transformers, every file format
through the loopback server, bad input, the CLI and evaluation during training.

The independent scorer below feeds each (context, continuation) through the model alone, with no
batching, padding or KV cache, and reads the formats' texts its own way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import socket
import string
import zipfile
from contextlib import redirect_stderr, redirect_stdout

import pytest
import torch
import train_helpers
from conftest import SHARED_DATA, shared_file
from data_server import LoopbackServer
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.cli import main
from byollm.corpora import CORPORA
from byollm.errors import ByollmError
from byollm.evaluate.tasks import (
    Request,
    ScoringOptions,
    load_task,
    parse_eval_tasks,
    run_task,
    score_requests,
    scoring,
    training_metrics,
)
from byollm.evaluate.tasks.cloze import evaluate_cloze, read_cloze_items
from byollm.evaluate.tasks.records import read_records, spread
from byollm.evaluate.tasks.scoring import fit_to_window
from byollm.model import GPT, GPTConfig, save_checkpoint
from byollm.tokenizer import CharTokenizer

ALPHABET = string.ascii_letters + string.digits + " .,;:'?!-\n"


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield


@pytest.fixture(scope="module")
def tokenizer():
    return CharTokenizer.train(ALPHABET)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size,
        block_size=128,
        n_layer=2,
        n_head=2,
        n_embd=32,
        pos="rope",
        norm="rmsnorm",
        mlp="relu2",
        bias=False,
    )
    model = GPT(config).eval()
    with torch.no_grad():  # sharper predictions than at init, so choices and argmaxes differ
        model.lm_head.weight.mul_(20)
    return model


def naive_score(model, context: list[int], continuation: list[int]):
    """(sum of log-probs, tokens, greedy?) from one plain forward pass over the whole text."""
    with torch.no_grad():
        logits = model(torch.tensor([context + continuation[:-1]]))[0][0]
    logp = torch.log_softmax(logits.double(), dim=-1)
    rows = range(len(context) - 1, len(context) - 1 + len(continuation))
    total = sum(logp[r, t].item() for r, t in zip(rows, continuation))
    greedy = all(logp[r].argmax().item() == t for r, t in zip(rows, continuation))
    return total, len(continuation), greedy


def first_max(values):
    return values.index(max(values))


# --- the scorer --------------------------------------------------------------------------------

VOCAB = 11
_toy = None


def toy_model():
    global _toy
    if _toy is None:
        torch.manual_seed(1)
        _toy = GPT(GPTConfig(vocab_size=VOCAB, block_size=24, n_layer=2, n_head=2, n_embd=16))
        with torch.no_grad():
            _toy.lm_head.weight.mul_(10)
        _toy.eval()
    return _toy


tokens = st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=6)


@st.composite
def requests(draw):
    context = draw(tokens)
    shared = draw(st.lists(st.integers(0, VOCAB - 1), max_size=3))  # a common prefix, often
    continuations = draw(st.lists(tokens.map(lambda t: shared + t), min_size=1, max_size=4))
    if draw(st.booleans()):  # identical continuations must score identically
        continuations.append(list(continuations[0]))
    return Request(context, continuations)


@settings(max_examples=30, deadline=None)
@given(st.lists(requests(), min_size=1, max_size=6), st.integers(1, 80), st.booleans())
def test_batched_scores_equal_one_text_at_a_time(batch, batch_tokens, share):
    model = toy_model()
    with pytest.MonkeyPatch.context() as patch:  # both paths: shared prompts, sequences whole
        patch.setattr(scoring, "MIN_SHARED_SAVING", 0.0 if share else math.inf)
        scores = score_requests(model, batch, ScoringOptions(batch_tokens=batch_tokens))
    for request, request_scores in zip(batch, scores):
        assert len(request_scores) == len(request.continuations)
        for continuation, score in zip(request.continuations, request_scores):
            logprob, n, greedy = naive_score(model, list(request.context), list(continuation))
            assert score.logprob == pytest.approx(logprob, abs=1e-5)
            assert (score.n_tokens, score.greedy) == (n, greedy)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(4, 40), min_size=1, max_size=120), st.integers(1, 400))
def test_texts_fed_whole_are_batched_by_length_with_little_padding(lengths, batch_tokens):
    plans = [scoring._plan(Request([0], [[1] * (n - 1), [2] * (n - 1)])) for n in lengths]
    assert all(plan.shared == 0 for plan in plans)  # two different texts: nothing to share
    rows = sorted(((i, j) for i in range(len(plans)) for j in (0, 1)), key=lambda r: lengths[r[0]])
    batches = list(scoring._row_batches(rows, plans, batch_tokens, logit_budget=10**9))
    assert [row for batch in batches for row in batch] == rows  # every text once, in order
    for batch in batches:
        fed = [lengths[i] - 1 for i, _ in batch]  # the last token is never fed
        padded = len(batch) * max(fed)
        assert len(batch) == 1 or padded <= batch_tokens
        assert padded - sum(fed) <= scoring.MAX_WASTE * padded
    if len(set(lengths)) == 1:  # one length: no padding anywhere
        assert all(len({lengths[i] for i, _ in batch}) == 1 for batch in batches)


def test_blimp_like_lengths_get_batches_of_one_length():
    lengths = [n for n in range(10, 30) for _ in range(50)]  # many texts of every length
    plans = [scoring._plan(Request([0], [[1] * (n - 1), [2] * (n - 1)])) for n in lengths]
    rows = sorted(((i, j) for i in range(len(plans)) for j in (0, 1)), key=lambda r: lengths[r[0]])
    batches = list(scoring._row_batches(rows, plans, batch_tokens=512, logit_budget=10**9))
    mixed = [b for b in batches if len({lengths[i] for i, _ in b}) > 1]
    padding = sum(len(b) * (max(lengths[i] for i, _ in b) - 1) for b in batches) - sum(
        2 * (n - 1) for n in lengths
    )
    assert len(mixed) <= 20 and padding <= 0.01 * sum(2 * (n - 1) for n in lengths)


def test_log_likelihoods_equal_transformers_on_a_converted_gpt2(tmp_path):
    pytest.importorskip("transformers")
    from test_model_hf_parity import make_hf_gpt2

    from byollm.model.convert import from_hf

    hf = make_hf_gpt2(tmp_path)  # vocab 96, 32 positions, random weights
    ours = from_hf(tmp_path / "hf").eval()
    g = torch.Generator().manual_seed(0)
    batch = []
    for _ in range(12):
        context = torch.randint(0, 96, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g)
        common = torch.randint(0, 96, (int(torch.randint(0, 4, (1,), generator=g)),), generator=g)
        continuations = [
            common.tolist() + torch.randint(0, 96, (n,), generator=g).tolist() for n in (1, 3, 6)
        ]
        batch.append(Request(context.tolist(), continuations))
    scores = score_requests(ours, batch, ScoringOptions(batch_tokens=48))
    worst = 0.0
    for request, request_scores in zip(batch, scores):
        for continuation, score in zip(request.continuations, request_scores):
            ids = torch.tensor([list(request.context) + continuation[:-1]])
            with torch.no_grad():
                logp = torch.log_softmax(hf(ids).logits[0].double(), dim=-1)
            first = len(request.context) - 1
            expected = sum(logp[first + i, t].item() for i, t in enumerate(continuation))
            worst = max(worst, abs(score.logprob - expected))
    assert worst <= 1e-4


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_long_contexts_lose_their_oldest_tokens_and_say_so(model, tokenizer, tmp_path):
    text = "the quick brown fox jumps over the lazy dog " * 4  # 176 characters, window 128
    path = write_jsonl(tmp_path / "items.jsonl", [{"text": text + "again"}, {"text": "a b"}])
    notes = []
    result = evaluate_cloze(
        model, tokenizer, read_cloze_items(read_records(path)), log=notes.append
    )
    assert result["truncated"] == 1 and len(notes) == 1
    assert "1 of 2 contexts were longer than the model's 128-token window" in notes[0]
    assert f"{path}:1 lost 52" in notes[0]  # 175 context tokens, 128 + 1 - 6 of them fit
    kept = tokenizer.encode(text.rstrip(" "))[52:]
    long_logprob, _, _ = naive_score(model, kept, tokenizer.encode(" again"))
    short_logprob, _, _ = naive_score(model, tokenizer.encode("a"), tokenizer.encode(" b"))
    assert math.log(result["ppl"]) == pytest.approx(-(long_logprob + short_logprob) / 2, abs=1e-4)


# --- every registered format, served by the loopback server ------------------------------------

HELLASWAG = [
    {
        "ind": 4,
        "activity_label": "Baking cookies",
        "ctx_a": "A woman pours flour into a bowl.",
        "ctx_b": "she",
        "endings": [
            "adds two eggs and stirs.",
            "paints the wall.",
            "sings to the oven.",
            "throws the bowl away.",
        ],
        "label": 0,
        "split": "val",
    },
    {
        "ind": 9,
        "activity_label": "Home and Garden",
        "ctx_a": "[header] How to plant a tree [title] Dig a hole.",
        "ctx_b": "",
        "endings": [
            "[step] Make it twice as wide as the roots.",
            "Eat the tree.",
            "Dig [substeps] under the sea.",
            "Plant it in the sky.",
        ],
        "label": 3,
        "split": "val",
    },
]
# lm-evaluation-harness's text for the two items above, written out by hand (its preprocess strips
# before it deletes "[step]", so that ending keeps a leading space)
HELLASWAG_TEXT = [
    (
        "Baking cookies: A woman pours flour into a bowl. She",
        [
            "adds two eggs and stirs.",
            "paints the wall.",
            "sings to the oven.",
            "throws the bowl away.",
        ],
    ),
    (
        "Home and Garden: How to plant a tree. Dig a hole.",
        [
            " Make it twice as wide as the roots.",
            "Eat the tree.",
            "Dig under the sea.",
            "Plant it in the sky.",
        ],
    ),
]


def arc_line(stem, texts, keys, answer):
    choices = [{"text": t, "label": k} for t, k in zip(texts, keys)]
    return {"id": stem[:8], "question": {"stem": stem, "choices": choices}, "answerKey": answer}


ARC_EASY = [
    arc_line("Which is a liquid?", ["rock", "water", "wood"], "ABC", "B"),
    arc_line("How many legs has a cat?", ["two", "four", "six", "eight"], "1234", "2"),
]
ARC_CHALLENGE = [arc_line("What melts ice?", ["heat", "cold"], "AB", "A")]
PIQA = [
    {"id": "a", "goal": "Open a jar.", "sol1": "Twist the lid.", "sol2": "Eat the lid."},
    {"id": "b", "goal": "Dry wet hands.", "sol1": "Use a towel.", "sol2": "Use a lake."},
]
PIQA_LABELS = "0\n1\n"
LAMBADA = [
    {"text": "She opened the door and saw her old friend standing there, smiling at her"},
    {"text": "He looked at the clock. It was late, so he went to bed"},
]


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture
def mirror(tmp_path, monkeypatch, model, tokenizer):
    """A loopback mirror holding small files in each benchmark's format, registered under the
    real names with their own sha256 and size (the origins refuse connections)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{s.getsockname()[1]}"
    # One passage whose last word the model itself completes greedily, so accuracy is not 0.
    context = "the cat sat on the"
    generated = model.generate(torch.tensor([tokenizer.encode(context)]), 4, temperature=0)
    target = tokenizer.decode(generated[0, len(context) :].tolist())
    lambada = [*LAMBADA, {"context": context, "target": target}]
    files = {
        "hellaswag-val": jsonl(HELLASWAG),
        "arc": zip_bytes(
            {
                "ARC-V1-Feb2018-2/ARC-Easy/ARC-Easy-Test.jsonl": jsonl(ARC_EASY),
                "ARC-V1-Feb2018-2/ARC-Easy/ARC-Easy-Dev.jsonl": jsonl(ARC_CHALLENGE),
                "ARC-V1-Feb2018-2/ARC-Challenge/ARC-Challenge-Test.jsonl": jsonl(ARC_CHALLENGE),
                "__MACOSX/ARC-V1-Feb2018-2/ARC-Easy/._ARC-Easy-Test.jsonl": b"\x00\x05\x16\x07",
            }
        ),
        "piqa": zip_bytes(
            {
                "physicaliqa-train-dev/dev.jsonl": jsonl(PIQA),
                "physicaliqa-train-dev/dev-labels.lst": PIQA_LABELS.encode(),
                "physicaliqa-train-dev/train.jsonl": jsonl(PIQA[:1]),
            }
        ),
        "lambada-openai": jsonl(lambada),
    }
    blimp = SHARED_DATA / "eval/blimp/BLiMP.zip"  # test_blimp_... skips without it
    if blimp.is_file():
        with zipfile.ZipFile(blimp) as archive:  # the first 2 pairs of each of the 67 paradigms
            subset = {
                name: b"".join(archive.read(name).splitlines(keepends=True)[:2])
                for name in archive.namelist()
                if name.startswith("data/") and name.endswith(".jsonl")
            }
        junk = {"__MACOSX/data/._adjunct_island.jsonl": b"\x00\x05\x16"}
        files["blimp"] = zip_bytes({**subset, **junk})
    root = tmp_path / "mirror"
    for name, data in files.items():
        corpus = CORPORA[name]
        (root / corpus.mirror_path).parent.mkdir(parents=True, exist_ok=True)
        (root / corpus.mirror_path).write_bytes(data)
        monkeypatch.setitem(
            CORPORA,
            name,
            dataclasses.replace(
                corpus,
                url=f"{refused}/{corpus.filename}",
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            ),
        )
    server = LoopbackServer(root)
    yield server
    server.stop()


def independent_choices(model, tokenizer, questions):
    """acc, acc_norm, acc_per_token for (context, choices, label) triples, one text at a time."""
    right = [0, 0, 0]
    for context, choices, label in questions:
        scores = [
            naive_score(model, tokenizer.encode(context), tokenizer.encode(" " + c))
            for c in choices
        ]
        rules = (
            [s for s, _, _ in scores],
            [s / len(c) for (s, _, _), c in zip(scores, choices)],
            [s / n for s, n, _ in scores],
        )
        for i, values in enumerate(rules):
            right[i] += first_max(values) == label
    return [r / len(questions) for r in right]


def test_multiple_choice_formats_through_the_loopback_mirror(mirror, model, tokenizer):
    cases = {
        "hellaswag": [(c, e, item["label"]) for (c, e), item in zip(HELLASWAG_TEXT, HELLASWAG)],
        "arc-easy": [
            (
                "Question: How many legs has a cat?\nAnswer:"
                if i
                else "Question: Which is a liquid?\nAnswer:",
                texts,
                1,
            )
            for i, texts in enumerate([["rock", "water", "wood"], ["two", "four", "six", "eight"]])
        ],
        "arc-challenge": [("Question: What melts ice?\nAnswer:", ["heat", "cold"], 0)],
        "piqa": [
            (f"Question: {p['goal']}\nAnswer:", [p["sol1"], p["sol2"]], label)
            for p, label in zip(PIQA, (0, 1))
        ],
    }
    for task, questions in cases.items():
        result = run_task(model, tokenizer, task, mirror=mirror.url)
        assert result["items"] == len(questions) and result["kind"] == "multiple_choice"
        expected = independent_choices(model, tokenizer, questions)
        assert [result["acc"], result["acc_norm"], result["acc_per_token"]] == expected, task
        assert result["chance"] == pytest.approx(
            sum(1 / len(q[1]) for q in questions) / len(questions)
        )
    # downloaded once, verified, then read from the cache: a second run needs no server
    requests_before = len(mirror.requests)
    run_task(model, tokenizer, "piqa")
    assert len(mirror.requests) == requests_before


def test_lambada_counts_only_exact_greedy_words(mirror, model, tokenizer):
    result = run_task(model, tokenizer, "lambada", mirror=mirror.url)
    _, _, items = load_task("lambada")
    assert (
        len(items) == 3 and items[0].target == " her" and items[2].context == "the cat sat on the"
    )
    scores = [
        naive_score(model, tokenizer.encode(i.context), tokenizer.encode(i.target)) for i in items
    ]
    assert result["acc"] == pytest.approx(sum(g for _, _, g in scores) / 3)
    assert result["acc"] >= 1 / 3  # the passage the model completes itself is right
    assert math.log(result["ppl"]) == pytest.approx(-sum(s for s, _, _ in scores) / 3, abs=1e-4)


def test_blimp_subset_by_field_phenomenon_and_paradigm(mirror, model, tokenizer):
    shared_file("eval/blimp/BLiMP.zip")
    result = run_task(model, tokenizer, "blimp", mirror=mirror.url)
    _, _, pairs = load_task("blimp")
    assert result["items"] == len(pairs) == 134  # 2 pairs x 67 paradigms, macOS junk skipped
    start = tokenizer.encode("\n")  # a character model without <|endoftext|> starts at a newline
    correct = []
    for pair in pairs:
        good, _, _ = naive_score(model, start, tokenizer.encode(pair.good))
        bad, _, _ = naive_score(model, start, tokenizer.encode(pair.bad))
        correct.append(good > bad)
    assert result["acc"] == pytest.approx(sum(correct) / len(correct))
    for key, attribute, count in (
        ("by_field", "field", 4),
        ("by_phenomenon", "phenomenon", 12),
        ("by_paradigm", "paradigm", 67),
    ):
        groups = {}
        for pair, right in zip(pairs, correct):
            groups.setdefault(getattr(pair, attribute), []).append(right)
        assert len(result[key]) == count
        assert result[key] == pytest.approx({k: sum(v) / len(v) for k, v in groups.items()})
    capped = run_task(model, tokenizer, "blimp", limit=67)  # spread: one pair per paradigm
    assert capped["items"] == 67 and len(capped["by_paradigm"]) == 67 and capped["limit"] == 67


def test_spread_keeps_the_order_and_covers_the_whole_list():
    assert spread(list(range(10)), 3) == [0, 3, 6]
    assert spread(list(range(4)), None) == spread(list(range(4)), 9) == [0, 1, 2, 3]


# --- bad input: one clear line each ------------------------------------------------------------

BAD_FILES = [
    ([{"context": "Hi", "label": 0}], r"items.jsonl:1: missing field 'choices'"),
    (
        [{"context": "Hi", "choices": ["a", "b"], "label": 2}],
        r"items.jsonl:1: label 2 is out of range for 2 choices \(valid: 0\.\.1\)",
    ),
    (
        [{"context": "Hi", "choices": [], "label": 0}],
        r"items.jsonl:1: the list of choices is empty",
    ),
    ([{"context": "Hi", "choices": ["a", " "], "label": 0}], r"items.jsonl:1: choice 1 is empty"),
    (
        [{"context": 3, "choices": ["a"], "label": 0}],
        r"items.jsonl:1: field 'context' should be str, got int 3",
    ),
    ([{"context": "Hi", "choices": ["a"], "label": "x"}], r"label 'x' is not a choice number"),
    ([{**HELLASWAG[0], "label": ""}], r"items.jsonl:1: no label \(an unlabelled test split"),
    (
        [arc_line("Q?", ["a", "b"], "AB", "E")],
        r"answerKey 'E' is not one of the choice labels \['A', 'B'\]",
    ),
    ([{"sentence_good": "A cat sleeps."}], r"items.jsonl:1: missing field 'sentence_bad'"),
    ([{"text": "oneword"}], r"items.jsonl:1: the text needs a context and a last word"),
    ([{"question": "what?"}], r"items.jsonl:1: cannot tell which task this line is for"),
]


@pytest.mark.parametrize("rows, message", BAD_FILES)
def test_bad_task_files_are_one_line_errors_naming_file_and_line(rows, message, tmp_path):
    path = write_jsonl(tmp_path / "items.jsonl", rows)
    with pytest.raises(ByollmError, match=message) as error:
        load_task(str(path))
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_more_bad_input(tmp_path, model, tokenizer):
    path = tmp_path / "items.jsonl"
    path.write_text('{"context": "a", "choices": ["b"], "label": 0}\n{not json\n')
    with pytest.raises(ByollmError, match=r"items.jsonl:2: not valid JSON"):
        load_task(str(path))
    with pytest.raises(ByollmError, match=r"unknown task 'blimpp'; did you mean 'blimp'\?"):
        load_task("blimpp")
    with pytest.raises(ByollmError, match="does not fit the model's context window of 128"):
        fit_to_window([Request([1], [[2] * 130])], 128)
    notes = []
    too_long = {"context": "a", "target": " " + "x" * 130}
    path = write_jsonl(path, [too_long, {"context": "a", "target": " b"}])
    assert run_task(model, tokenizer, str(path), log=notes.append)["skipped"] == 1
    assert notes == [
        f"items: skipped 1 of 2 items with a continuation longer than the model's "
        f"128-token window (first: {path}:1, 131 tokens)"
    ]
    with pytest.raises(ByollmError, match="no item could be scored .0 cannot be encoded .*, 1 do"):
        run_task(model, tokenizer, str(write_jsonl(path, [too_long])), log=notes.append)
    notes = []
    path = write_jsonl(
        path,
        [{"context": "Hi", "choices": ["caf\u00e9", "tea"], "label": 1}] * 2
        + [{"context": "Hi", "choices": ["tea", "milk"], "label": 0}],
    )
    result = run_task(model, tokenizer, str(path), log=notes.append)
    assert result["items"] == 1 and result["skipped"] == 2
    assert notes == [
        f"items: skipped 2 of 3 items the tokenizer cannot encode (first: {path}:1: "
        + notes[0].split(f"{path}:1: ", 1)[1]
    ]
    with pytest.raises(ByollmError, match="no item could be scored .1 cannot be encoded"):
        run_task(
            model,
            tokenizer,
            str(write_jsonl(path, [{"text": "caf\u00e9 au lait"}])),
            log=notes.append,
        )
    piqa = tmp_path / "piqa.zip"
    piqa.write_bytes(zip_bytes({"p/dev.jsonl": jsonl(PIQA), "p/dev-labels.lst": b"0\n"}))
    from byollm.evaluate.tasks.multiple_choice import read_choice_items
    from byollm.evaluate.tasks.records import read_lines

    with pytest.raises(ByollmError, match="2 items but 1 labels in the label list"):
        read_choice_items(read_records(piqa, "p/dev.jsonl"), read_lines(piqa, "p/dev-labels.lst"))


# --- the CLI and training ----------------------------------------------------------------------


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_eval_cli_runs_task_files_and_keeps_perplexity_mode(tmp_path, model, tokenizer):
    checkpoint = tmp_path / "ckpt"
    save_checkpoint(checkpoint, model, tokenizer)
    pairs = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"sentence_good": "The cats sleep.", "sentence_bad": "The cats sleeps.", "field": "m"},
            {"sentence_good": "She has left.", "sentence_bad": "She have left.", "field": "m"},
        ],
    )
    code, out, _ = run_cli("eval", "--checkpoint", str(checkpoint), "--task", str(pairs), "--json")
    result = json.loads(out)
    assert code == 0 and result["task"] == "pairs" and result["items"] == 2
    assert result["acc"] == run_task(model, tokenizer, str(pairs))["acc"]
    code, out, _ = run_cli("eval", str(checkpoint), "--task", str(pairs))
    assert code == 0 and out.startswith("pairs: accuracy") and "by field: m" in out
    text = tmp_path / "text.txt"
    text.write_text("To be or not to be, that is the question.\n" * 4)
    code, out, _ = run_cli("eval", str(checkpoint), "--corpus", str(text), "--json")
    assert code == 0 and json.loads(out)["tokens"] == len(text.read_text()) - 1
    code, out, _ = run_cli(
        "eval", str(checkpoint), "--task", str(pairs), "--json", "--dtype", "bfloat16"
    )
    assert code == 0 and json.loads(out)["dtype"] == "bfloat16"
    for argv, message in [
        (["--task", "nope"], "unknown task 'nope'"),
        (["--task", str(pairs), "--dtype", "float8"], "unknown dtype 'float8'"),
        (["--task", str(pairs), "--corpus", str(text)], "not both"),
        ([], "give --corpus (perplexity) or --task (benchmarks)"),
    ]:
        code, _, err = run_cli("eval", str(checkpoint), *argv)
        assert code == 2 and message in err and err.count("\n") == 1


def test_training_logs_plots_and_reports_task_accuracy(tmp_path):
    from test_train_loop import tiny_config

    from byollm.train import TrainConfig, train
    from byollm.train.metrics import read_metrics

    corpus = train_helpers.shakespeare_excerpt(tmp_path, 20_000)
    pairs = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"sentence_good": f"The {n} cats sleep.", "sentence_bad": f"The {n} cats sleeps."}
            for n in ("two", "three", "four", "five", "six")
        ],
    )
    config = tiny_config(
        corpus, tmp_path, max_steps=4, eval_interval=2, sample_tokens=0, eval_tasks=f"{pairs}:4"
    )
    train(config, progress=False, log=lambda *a: None)
    run = tmp_path / "runs" / config.name
    evals = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(r["pairs_acc"] in (0, 0.25, 0.5, 0.75, 1) for r in evals)
    assert (run / "loss.png").stat().st_size > 0
    # the run's card shows the scores, first and final
    first, final = evals[0]["pairs_acc"], evals[-1]["pairs_acc"]
    report = (run / "report.md").read_text(encoding="utf-8")
    assert f"| pairs_acc | {first:.4f} (step 2) | {final:.4f} (step 4) |" in report
    with pytest.raises(ByollmError, match="eval_tasks: unknown task 'blimpp'; did you mean"):
        TrainConfig(eval_tasks="blimpp")


def test_eval_tasks_spec():
    assert parse_eval_tasks("blimp") == [("blimp", 1000)]
    assert parse_eval_tasks("blimp:all, lambada:200") == [("blimp", None), ("lambada", 200)]
    with pytest.raises(ByollmError, match="bad item cap '0'"):
        parse_eval_tasks("blimp:0")


def test_training_metrics_reads_files_once_and_restores_the_mode(tmp_path, model, tokenizer):
    pairs = write_jsonl(
        tmp_path / "few.jsonl",
        [
            {"sentence_good": "A dog runs.", "sentence_bad": "A dog run."},
        ],
    )
    model.train()
    first = training_metrics(model, tokenizer, f"{pairs}:all")
    pairs.unlink()  # read once per process: the second evaluation does not need the file
    assert training_metrics(model, tokenizer, f"{pairs}:all") == first
    assert model.training and set(first) == {"few_acc"}
    model.eval()

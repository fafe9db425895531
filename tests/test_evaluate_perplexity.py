"""Loss, perplexity and bits per byte against hand computations and Hugging Face."""

from __future__ import annotations

import math

import pytest
import torch
from test_generate_toys import BigramToy

from byollm.errors import ByollmError
from byollm.evaluate.perplexity import evaluate_ids, plan_windows


class PositionToy(torch.nn.Module):
    """Predicts token 0 with logit j at window position j (so the score shows the context)."""

    def __init__(self, vocab_size=3, block_size=4):
        super().__init__()
        self.vocab_size = vocab_size
        self.config = type("Config", (), {"block_size": block_size})()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, idx, targets=None, *, kv_cache=None):
        B, T = idx.shape
        logits = torch.zeros(B, T, self.vocab_size)
        logits[:, :, 0] = torch.arange(T, dtype=torch.float32)
        return logits, None


def nll_at(j, vocab_size=3):
    return -math.log(math.exp(j) / (math.exp(j) + vocab_size - 1))


def test_plan_windows_scores_every_pair_once():
    assert plan_windows(11, 4, 2) == [(0, 4, 0), (2, 6, 4), (4, 8, 6), (6, 10, 8)]
    assert plan_windows(11, 4, 4) == [(0, 4, 0), (4, 8, 4), (8, 10, 8)]
    assert plan_windows(3, 4, 4) == [(0, 2, 0)]
    for n, block, stride in [(50, 8, 3), (9, 8, 8), (100, 16, 1), (17, 4, 4)]:
        scored = []
        for begin, end, first in plan_windows(n, block, stride):
            assert end - begin <= block and begin <= first
            scored += range(first, end)
        assert scored == list(range(n - 1))
    with pytest.raises(ByollmError, match="stride"):
        plan_windows(10, 4, 5)


def test_sliding_window_by_hand():
    model = PositionToy()
    # 11 tokens, block 4, stride 2: window positions of the scored pairs are 0 1 2 3 2 3 2 3 2 3
    result = evaluate_ids(model, [0] * 11, stride=2, progress=False)
    expected = sum(nll_at(j) for j in [0, 1, 2, 3, 2, 3, 2, 3, 2, 3]) / 10
    assert result["loss"] == pytest.approx(expected, rel=1e-6)
    assert result["perplexity"] == pytest.approx(math.exp(expected))
    assert result["tokens"] == 10 and result["windows"] == 4
    # stride = block: 0 1 2 3 | 0 1 2 3 | 0 1
    result = evaluate_ids(model, [0] * 11, stride=4, batch_size=1, progress=False)
    expected = sum(nll_at(j) for j in [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]) / 10
    assert result["loss"] == pytest.approx(expected, rel=1e-6)


def test_bigram_loss_and_bits_per_byte_by_hand():
    probs = [[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]]
    model = BigramToy(probs, block_size=3)
    ids = [0, 1, 1, 2, 0, 0]
    nll = -sum(math.log(probs[a][b]) for a, b in zip(ids, ids[1:]))
    token_bytes = [1, 2, 2, 3, 1, 1]  # the first token is context only: 9 bytes scored
    for stride in (1, 2, 3):  # a bigram does not care about context: same for every stride
        result = evaluate_ids(model, ids, token_bytes=token_bytes, stride=stride, progress=False)
        assert result["loss"] == pytest.approx(nll / 5)
        assert result["bytes"] == 9
        assert result["bits_per_byte"] == pytest.approx(nll / math.log(2) / 9)


def test_deterministic_and_batch_independent():
    torch.manual_seed(0)
    model = PositionToy(vocab_size=5, block_size=8)
    ids = torch.randint(0, 5, (200,)).tolist()
    a = evaluate_ids(model, ids, stride=3, batch_size=1, progress=False)
    b = evaluate_ids(model, ids, stride=3, batch_size=64, progress=False)
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert a == evaluate_ids(model, ids, stride=3, batch_size=1, progress=False)


def test_too_short_text_is_an_error():
    with pytest.raises(ByollmError, match="at least 2"):
        evaluate_ids(PositionToy(), [1], progress=False)


class HFAsModel(torch.nn.Module):
    """A Hugging Face GPT-2 behind the interface the evaluator drives."""

    def __init__(self, hf, block_size):
        super().__init__()
        self.hf = hf
        self.config = type("Config", (), {"block_size": block_size})()

    def forward(self, idx, targets=None, *, kv_cache=None):
        return self.hf(idx).logits, None


def hf_guide_perplexity(hf, ids, max_length, stride):
    """The loop of Hugging Face's "Perplexity of fixed-length models" guide.

    One fix: the guide weights each window's mean loss by `num_valid_tokens - 1`, but Hugging
    Face's loss averages over the labels after the shift, `target_ids[:, 1:] != -100`, which is
    one more whenever the first position is masked. We weight by the number really averaged.
    """
    encodings = torch.tensor([ids])
    seq_len = encodings.size(1)
    nll_sum, n_tokens, prev_end_loc = 0.0, 0, 0
    for begin_loc in range(0, seq_len, stride):
        end_loc = min(begin_loc + max_length, seq_len)
        trg_len = end_loc - prev_end_loc
        input_ids = encodings[:, begin_loc:end_loc]
        target_ids = input_ids.clone()
        target_ids[:, :-trg_len] = -100
        with torch.no_grad():
            neg_log_likelihood = hf(input_ids, labels=target_ids).loss
        num_loss_tokens = (target_ids[:, 1:] != -100).sum().item()
        nll_sum += neg_log_likelihood * num_loss_tokens
        n_tokens += num_loss_tokens
        prev_end_loc = end_loc
        if end_loc == seq_len:
            break
    return torch.exp(nll_sum / n_tokens).item(), n_tokens


@pytest.mark.parametrize("stride", [4, 16])
def test_matches_hugging_face_guide(stride):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=97, n_positions=32)
    hf = transformers.GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, 97, (150,)).tolist()
    # Our window of 16 (input, target) pairs is the guide's window of 17 tokens.
    ours = evaluate_ids(HFAsModel(hf, 16), ids, stride=stride, progress=False)
    theirs, n_tokens = hf_guide_perplexity(hf, ids, max_length=17, stride=stride)
    assert ours["tokens"] == n_tokens == 149
    assert ours["perplexity"] == pytest.approx(theirs, rel=1e-5)

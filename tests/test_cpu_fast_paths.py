"""The CPU speed tricks: the few-rows product equals nn.Linear's, the memory setting saves faults."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest
import torch
from torch import nn

from byollm.cpu_fast_paths import FewRowsLinear, use_few_rows_linear
from byollm.model import GPT, GPTConfig


# -- the few-rows matrix product (decoding, speculative checks) --------------------------------
@pytest.mark.parametrize("rows", [1, 2, 5, 16, 17, 300])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_few_rows_path_equals_nn_linear(rows, bias):
    torch.manual_seed(0)
    layer = FewRowsLinear(24, 40, bias=bias)
    x = torch.randn(1, rows, 24, requires_grad=True)
    y = layer(x)
    reference = torch.nn.functional.linear(x, layer.weight, layer.bias)
    assert y.shape == (1, rows, 40)
    torch.testing.assert_close(y, reference, rtol=1e-5, atol=1e-6)
    y.sum().backward()  # gradients flow through either path
    torch.testing.assert_close(x.grad, layer.weight.sum(0).expand(1, rows, 24))


def test_many_rows_take_nn_linear_path_bit_for_bit():
    """Training's products (more than few_rows rows) are exactly nn.Linear's: same val losses."""
    torch.manual_seed(0)
    plain = nn.Linear(24, 40)
    x = torch.randn(4, 32, 24)
    expected = plain(x)
    assert torch.equal(use_few_rows_linear(plain)(x), expected)


def test_gpt_opts_in_without_changing_parameters_or_state_dict_keys():
    config = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32)
    torch.manual_seed(0)
    model = GPT(config)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears and all(type(m) is FewRowsLinear for m in linears)
    # Swapping the class again leaves everything as it was; the tied head stays tied.
    before = {k: v.clone() for k, v in model.state_dict().items()}
    use_few_rows_linear(model)
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.lm_head.weight is model.transformer.wte.weight  # tie_embeddings defaults on

    # Subclasses of nn.Linear keep their own forward.
    class OwnForward(nn.Linear):
        pass

    assert type(use_few_rows_linear(nn.Sequential(OwnForward(2, 2)))[0]) is OwnForward


# -- keeping freed memory (training on the CPU) --------------------------------------------------
def test_keep_freed_cpu_memory_reuses_a_freed_block_instead_of_refaulting_it():
    """After keep_freed_cpu_memory(), a freed 8 MB block is reused: no page faults the 2nd time.

    In a fresh interpreter, since the setting is process-wide. The 'before' pins glibc's
    starting mmap threshold (128 KB): glibc's default moves that threshold as blocks come and
    go, so how often it returns memory depends on the history (715 or 101 faults per reuse in
    two runs here); pinned, every freed 8 MB block goes back to the OS and faults in again.
    """
    try:
        glibc = hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    except (OSError, TypeError):
        glibc = False
    if not glibc:
        pytest.skip("keep_freed_cpu_memory only applies to glibc's malloc")
    script = """
import ctypes, resource, torch
from byollm.cpu_fast_paths import keep_freed_cpu_memory
def faults_per_round():
    for _ in range(10):  # 8 MB, allocated and freed: glibc takes a few rounds to settle
        torch.ones(2 << 20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        torch.ones(2 << 20)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20
ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: glibc's starting value
default = faults_per_round()
assert keep_freed_cpu_memory()
print(default, faults_per_round())
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    default, kept = map(float, out.split())
    assert default > 1000  # 8 MB = 2048 pages of 4 KB, all faulted in again (measured: 2049)
    assert kept < 50  # measured: 0

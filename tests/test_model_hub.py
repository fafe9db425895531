"""`byollm convert --from-hub`: a small random GPT-2 served in the Hub's layout on 127.0.0.1,
fetched by byollm's own downloader and through huggingface_hub, checked, converted, with its
own tokenizer."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch
from conftest import shared_file
from hub_server import HubServer

from byollm.cli import main
from byollm.errors import ByollmError
from byollm.model import GPT, GPTConfig, load_model, save_checkpoint
from byollm.model.hub import download_from_hub, hub_repo
from byollm.tokenizer import TOKENIZER_FILE, BPETokenizer, load_tokenizer

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

REPO = "tiny-org/gpt2-tiny"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The server, and the Hugging Face model it serves as REPO."""
    root = tmp_path_factory.mktemp("hub")
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=50257, n_positions=64, n_embd=32, n_layer=2, n_head=2
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    model.save_pretrained(root / REPO, safe_serialization=True)
    shutil.copy(shared_file("gpt2/encoder.json"), root / REPO / "vocab.json")
    shutil.copy(shared_file("gpt2/vocab.bpe"), root / REPO / "merges.txt")
    server = HubServer(root)
    server.publish(REPO)
    yield server, model
    server.stop()


def same_logits(checkpoint, hf_model) -> bool:
    ours = load_model(checkpoint)
    idx = torch.tensor([[15496, 995, 11, 50256, 7]])
    with torch.no_grad():
        return torch.allclose(ours(idx)[0], hf_model(idx).logits, atol=1e-4)


def test_from_hub_with_byollm_downloader(hub, tmp_path, capsys):
    server, hf_model = hub
    out = tmp_path / "ck"
    assert main(["convert", "--from-hub", REPO, "--mirror", server.url, "--out", str(out)]) == 0
    assert "the model's own tokenizer" in capsys.readouterr().out
    assert same_logits(out, hf_model)
    tok = load_tokenizer(out / TOKENIZER_FILE)
    assert tok.encode("Hello world") == [15496, 995] and tok.eot_id == 50256
    meta = json.loads((out / "config.json").read_text())
    assert meta["source"] == {"hub": REPO, "revision": "main"}
    # a second conversion reuses the verified cache: only the listing is asked for again
    server.requests.clear()
    assert main(["convert", "--from-hub", REPO, "--mirror", server.url, "--out", str(out)]) == 0
    assert [p for _, p in server.requests] == [f"api/models/{REPO}/tree/main"]


def test_hf_endpoint_is_the_default_server(hub, tmp_path, monkeypatch):
    server, hf_model = hub
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    assert main(["convert", "--from-hub", REPO, "--out", str(tmp_path / "ck")]) == 0
    assert same_logits(tmp_path / "ck", hf_model)


def test_from_hub_through_huggingface_hub(hub, tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    server, hf_model = hub
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    out = tmp_path / "ck"
    assert main(["convert", "--from-hub", REPO, "--via", "huggingface_hub", "--out", str(out)]) == 0
    assert same_logits(out, hf_model)
    assert load_tokenizer(out / TOKENIZER_FILE).encode("Hello world") == [15496, 995]
    assert ("GET", f"{REPO}/resolve/main/model.safetensors") in server.requests


@pytest.mark.parametrize("via", ["byollm", "huggingface_hub"])
def test_a_corrupt_download_is_refused_and_nothing_written(hub, tmp_path, monkeypatch, via):
    if via == "huggingface_hub":
        huggingface_hub = pytest.importorskip("huggingface_hub")
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    server, _ = hub
    weights = server.root / REPO / "model.safetensors"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-4] + b"\0\0\0\0")  # same size, other bytes
        with pytest.raises(ByollmError, match="checksum mismatch"):
            download_from_hub(REPO, mirror=server.url, via=via)
    finally:
        weights.write_bytes(original)
    assert not (tmp_path / "ck").exists()


def test_clear_errors(hub, tmp_path, capsys, monkeypatch):
    server, _ = hub

    def run(*argv):
        code = main(["convert", *argv, "--out", str(tmp_path / "ck")])
        return code, capsys.readouterr().err.strip()

    code, err = run("--from-hub", "nobody/nothing", "--mirror", server.url)
    assert code == 2 and "nobody/nothing (revision main) not found" in err and "\n" not in err
    code, err = run("--from-hub", "../etc", "--mirror", server.url)
    assert code == 2 and "not a Hub repo id" in err
    code, err = run("--from-hub", REPO, "--mirror", server.url, "--revision", "a/../b")
    assert code == 2 and "--revision" in err
    code, err = run("--from-hf", str(tmp_path), "--mirror", server.url)
    assert code == 2 and "--mirror only applies to --from-hub" in err
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    code, err = run("--from-hub", REPO, "--via", "huggingface_hub")
    assert code == 2 and "pip install huggingface_hub" in err
    assert not (tmp_path / "ck").exists()


def test_a_repo_with_only_tokenizer_json_keeps_it(hub, tmp_path):
    """What `convert --to-hf` writes, published and fetched back: the same model and ids."""
    server, _ = hub
    ck = tmp_path / "ck"
    tok = BPETokenizer.train("a tiny corpus, a tiny tokenizer. " * 20, 290, progress=False)
    model = GPT(GPTConfig(vocab_size=290, block_size=32, n_layer=1, n_head=2, n_embd=16))
    save_checkpoint(ck, model, tok)
    assert main(["convert", "--to-hf", str(ck), "--out", str(server.root / "me/exported")]) == 0
    server.publish("me/exported")
    back = tmp_path / "back"
    assert (
        main(["convert", "--from-hub", "me/exported", "--mirror", server.url, "--out", str(back)])
        == 0
    )
    text = "a tiny corpus<|endoftext|>, tiny!"
    assert load_tokenizer(back / TOKENIZER_FILE).encode(text, allowed_special="all") == (
        tok.encode(text, allowed_special="all")
    )
    idx = torch.tensor([tok.encode(text)])
    assert torch.allclose(load_model(back)(idx)[0], load_model(ck)(idx)[0], atol=1e-6)


def test_other_weights_under_gpt2s_name_are_refused(hub, tmp_path):
    server, _ = hub
    shutil.copytree(server.root / REPO, server.root / "openai-community/gpt2")
    server.publish("openai-community/gpt2")
    server.requests.clear()
    with pytest.raises(ByollmError, match="real weights are 248dfc39") as e:
        download_from_hub("gpt2", mirror=server.url)
    assert "548,105,171 bytes" in str(e.value)
    assert [path for _, path in server.requests] == ["api/models/openai-community/gpt2/tree/main"]


def test_a_tokenizer_byollm_cannot_read_leaves_a_note_not_a_failure(hub, tmp_path, capsys):
    server, hf_model = hub
    folder = tmp_path / "hf"
    shutil.copytree(server.root / REPO, folder)
    (folder / "merges.txt").write_text("#version: 0.2\nx y\n")  # not GPT-2's merge list
    assert main(["convert", "--from-hf", str(folder), "--out", str(tmp_path / "ck")]) == 0
    assert "note: no tokenizer saved (GPT-2 merges file" in capsys.readouterr().out
    assert same_logits(tmp_path / "ck", hf_model)
    assert not (tmp_path / "ck" / TOKENIZER_FILE).exists()


def test_gpt2_sizes_are_openai_community_repos():
    assert hub_repo("gpt2") == "openai-community/gpt2"
    assert hub_repo("gpt2-xl") == "openai-community/gpt2-xl"
    assert hub_repo("someone/model") == "someone/model"

"""The folder a fine-tuning run writes, and reading it back (full weights or a LoRA adapter).

Full fine-tuning (`--train head|last:N|all`) writes an ordinary byollm checkpoint, so `sample`,
`chat`, `eval` and `--init-from` read it as they read any other:

    model.safetensors + config.json + byollm-tokenizer.json (byollm.model.save_model)
    config.json gains the task's key: "instruct" (the prompt template) or "classifier" (labels)
    head.safetensors                                      a classifier's new head, if any

LoRA (`--lora`) writes the adapter alone, a few MB at most, which names its base checkpoint:

    adapter.safetensors + adapter.json (+ byollm-tokenizer.json) (byollm.finetune.lora)

`byollm merge-lora` turns the second kind into the first.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from byollm.errors import ByollmError
from byollm.finetune.heads import Classifier, check_pool
from byollm.finetune.lora import LoRAConfig, is_adapter, load_adapter, read_adapter, save_adapter
from byollm.model.interface import model_device
from byollm.tokenizer import TOKENIZER_FILE

HEAD_FILE = "head.safetensors"
TASK_KEYS = ("classifier", "instruct")


def save_finetuned(
    out: str | Path,
    root: nn.Module,
    tokenizer,
    task: dict,
    *,
    lora: LoRAConfig | None = None,
    base: str | Path | None = None,
) -> Path:
    """Write a fine-tuned model: `root` is the GPT itself or a module holding it as `.gpt`
    plus a new `.head`; `task` is {"classifier": {...}} or {"instruct": {...}}.

    The folder appears whole or not at all (`write_folder_atomically`): a run killed while
    saving leaves no folder that loads as half a model."""
    from byollm.download import sha256_file
    from byollm.model import save_model
    from byollm.model.checkpoint import write_folder_atomically

    gpt = getattr(root, "gpt", root)
    head = getattr(root, "head", None)
    head_tensors = {} if head is None else {f"head.{k}": v for k, v in head.state_dict().items()}

    def write(folder: Path) -> None:
        tokenizer.save(folder / TOKENIZER_FILE)
        if lora is not None:
            save_adapter(folder, root, lora, base=base, extra_tensors=head_tensors, extra=task)
            return
        written = [TOKENIZER_FILE]
        if head_tensors:
            tensors = {k: v.detach().contiguous().cpu() for k, v in head_tensors.items()}
            save_file(tensors, str(folder / HEAD_FILE))
            written.append(HEAD_FILE)
        # config.json last, with the checksums of the files written before it
        checksums = {name: sha256_file(folder / name) for name in written}
        save_model(gpt, folder, extra=task, checksums=checksums)

    return write_folder_atomically(out, write, what="fine-tuned model")


def load_finetuned(path: str | Path, device: str = "auto"):
    """(root, tokenizer, task meta) of a folder written by `save_finetuned`.

    `root` is the GPT (instruction tuning) or the classifier holding it; a LoRA adapter is
    loaded onto its base, which must be the very checkpoint it was trained from.
    """
    from byollm.model.checkpoint import load_for_inference, read_checkpoint_config, verify_checksums
    from byollm.model.checkpoint import resolve_checkpoint as resolve

    path = Path(path)
    if is_adapter(path):
        meta, _ = read_adapter(path)
        base = Path(meta["base"])
        gpt, tokenizer = load_for_inference(base, device=device)
        root = _build_root(gpt, meta)
        _, rest = load_adapter(root, path, base)
        _load_head(root, rest, path / "adapter.safetensors")
    else:
        checkpoint = resolve(path)
        gpt, tokenizer = load_for_inference(checkpoint, device=device)
        meta = read_checkpoint_config(checkpoint)
        root = _build_root(gpt, meta)
        head_path = checkpoint / HEAD_FILE
        if getattr(root, "head", None) is not None:
            verify_checksums(checkpoint, [HEAD_FILE])
            try:
                tensors = load_file(str(head_path))
            except (SafetensorError, OSError) as e:
                raise ByollmError(f"{head_path}: cannot read the classifier head ({e})") from None
            _load_head(root, tensors, head_path)
    root.to(model_device(gpt)).eval()
    return root, tokenizer, {k: meta[k] for k in TASK_KEYS if k in meta}


def _build_root(gpt, meta: dict) -> nn.Module:
    if "classifier" in meta:
        classifier = meta["classifier"]
        # folders from before `pool` read the last token
        pool = check_pool(classifier.get("pool", "last"), "config.json: classifier pool")
        if not isinstance(classifier.get("lowercase", False), bool):
            raise ByollmError("config.json: classifier lowercase must be true or false")
        return Classifier(gpt, len(classifier["labels"]), pool=pool)
    return gpt


def _load_head(root: nn.Module, tensors: dict[str, torch.Tensor], where: Path) -> None:
    head = getattr(root, "head", None)
    expected = {} if head is None else {f"head.{k}": v for k, v in head.state_dict().items()}
    if set(tensors) != set(expected):
        raise ByollmError(
            f"{where}: holds {sorted(tensors) or 'no tensors'} besides the model, expected "
            f"{sorted(expected) or 'none'}"
        )
    with torch.no_grad():
        for name, value in tensors.items():
            if value.shape != expected[name].shape:
                raise ByollmError(f"{where}: {name} has shape {tuple(value.shape)}")
            expected[name].copy_(value)

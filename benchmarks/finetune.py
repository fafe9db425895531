"""Fine-tuning benchmark: SMS spam classification, instruction tuning, and loop throughput.

    python benchmarks/finetune.py --base runs/english/best          # a pretrained checkpoint
    python benchmarks/finetune.py --pretrain-steps 500              # or pretrain one first
    python benchmarks/finetune.py --quick                           # a small check of the pipeline

Parts (each prints a markdown table):
- `spam`: SMS spam on the book's balanced split (and `--full` the stratified split of all 5,574),
  the pretrained model fine-tuned head-only, last 1 and 2 blocks, all, and LoRA; the same
  architecture from random init (all layers); and, on the very same split, a multinomial naive
  Bayes and a TF-IDF + logistic regression baseline (scikit-learn, a benchmark-only dependency:
  `pip install scikit-learn`). Test accuracy, macro F1, wall time.
- `instruct`: `instruction-data` (the book's 1,100 records, 85/5/10): held-out answer loss and
  ROUGE-L before and after, prompt in the loss vs masked, full vs LoRA, wall time and peak memory.
- `throughput`: the fine-tuning loop (`byollm.finetune.loop.fit`) against a bare PyTorch loop
  over the same model and batches, in tokens per second.

Without `--base`, a small English model is pretrained first with `byollm train` (the default
preset's model, a 4,096-id BPE, the TinyStories sample and WikiText-2 valid + test: see
`pretrain`). Data comes through the registry (BYOLLM_MIRROR=file:///path/to/shared/data
reads a local copy). Record `uptime` with the numbers: on a shared machine they move a lot.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from byollm.finetune import classify, finetune_classifier, finetune_instruct
from byollm.finetune.classify import Classifier, padded_batch
from byollm.finetune.heads import POOLS
from byollm.finetune.loop import SCHEDULES, choose_trainable, fit
from byollm.finetune.lora import LoRAConfig
from byollm.finetune.records import balanced_split, columns, read_records, stratified_split

ENGLISH = {  # the pretraining corpus: the English text the registry holds, ~3.3 MB
    "tinystories.txt": "tinystories-sample",
    "wikitext2-test.txt": "wikitext-2-test",
    "wikitext2-valid.txt": "wikitext-2-valid",
}


def train_run(workdir: Path, name: str, corpus: Path, steps: int, **settings) -> tuple[dict, Path]:
    """`byollm train` without output: run `name` on `corpus` in `workdir`; (summary, best/)."""
    from byollm.train import load_train_config, train

    overrides = {
        "name": name,
        "out_dir": str(workdir),
        "corpus": str(corpus),
        "data_dir": str(workdir / f"{name}-tokens"),
        "max_steps": str(steps),
        "sample_tokens": "0",
        "eval_tasks": "",
        "batch_size": "16",
        **{key: str(value) for key, value in settings.items()},
    }
    summary = train(load_train_config(None, overrides), progress=False, log=lambda *a: None)
    return summary, Path(summary["best"])


def pretrain(workdir: Path, steps: int, block_size: int = 128) -> Path:
    """The default preset's model (4 layers, 128 wide) with a 4,096-id BPE, trained on the
    TinyStories sample and WikiText-2's validation and test splits (one folder, one file each;
    the last 10% of the folder, the end of WikiText-2 valid, is held out)."""
    import shutil

    from byollm.corpora import get_corpus

    corpus = workdir / "english-text"
    corpus.mkdir(parents=True, exist_ok=True)
    for name, registered in ENGLISH.items():
        shutil.copyfile(get_corpus(registered, progress=False), corpus / name)
    summary, best = train_run(
        workdir,
        "english",
        corpus,
        steps,
        tokenizer="bpe:4096",
        eval_interval=max(50, steps // 5),
        **{"model.block_size": block_size},
    )
    print(
        f"pretrained {steps} steps: val loss {summary['best_val_loss']:.3f} "
        f"in {summary['elapsed_s']:.0f}s"
    )
    return best


def adapt_to_sms(base: Path, workdir: Path, steps: int) -> Path:
    """Continued pretraining (`--init-from base`) on the SMS texts, without their labels.

    Every message goes in except those of the balanced split's validation and test sets (and
    their duplicates elsewhere in the collection), so nothing scored was ever read."""
    rows = columns(read_records("sms-spam"), ["text", "label"], "sms-spam")
    _, val, test = balanced_split(rows, lambda r: r[1], seed=123)  # finetune_classifier's seed
    held_out = set(val) | set(test)
    corpus = workdir / "sms-unlabelled"
    corpus.mkdir(parents=True, exist_ok=True)
    texts = [text for text, label in rows if (text, label) not in held_out]
    (corpus / "sms.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    summary, best = train_run(
        workdir, "english-sms", corpus, steps, init_from=base, eval_interval=max(50, steps // 2)
    )
    print(
        f"adapted to {len(texts)} SMS texts for {steps} steps: val loss "
        f"{summary['best_val_loss']:.3f} in {summary['elapsed_s']:.0f}s"
    )
    return best


def baselines(split: str) -> list[tuple[str, float, float, float]]:
    """(name, accuracy, macro F1, seconds) of naive Bayes and TF-IDF + logistic regression."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.naive_bayes import MultinomialNB

    rows = columns(read_records("sms-spam"), ["text", "label"], "sms-spam")
    splitter = balanced_split if split == "balanced" else stratified_split
    train, _, test = splitter(rows, lambda r: r[1])
    out = []
    for name, vectorizer, model in (
        ("multinomial naive Bayes", CountVectorizer(), MultinomialNB()),
        (
            "TF-IDF + logistic regression",
            TfidfVectorizer(sublinear_tf=True),
            LogisticRegression(C=10, max_iter=1000),
        ),
    ):
        started = time.perf_counter()
        model.fit(vectorizer.fit_transform([t for t, _ in train]), [y for _, y in train])
        predicted = model.predict(vectorizer.transform([t for t, _ in test]))
        truth = [y for _, y in test]
        out.append(
            (
                name,
                accuracy_score(truth, predicted),
                f1_score(truth, predicted, average="macro"),
                time.perf_counter() - started,
            )
        )
    return out


SPAM_ROWS = (
    "pretrained:head,pretrained:last:1,pretrained:last:2,pretrained:all,pretrained:lora,random:all"
)


def spam(
    base: Path,
    workdir: Path,
    epochs: int,
    split: str,
    lr: float,
    rows: str,
    lora_lr: float,
    seeds: tuple[int, ...] = (123,),
    schedule: str = "constant",
    pool: str = "last",
    lowercase: bool = False,
) -> None:
    """One table row per `rows` entry (`pretrained:WHAT` or `random:WHAT`) and seed, then the
    baselines.

    LoRA trains at `lora_lr`: its update starts at zero and is scaled by alpha / rank, so it
    needs a larger step than full fine-tuning (the LoRA paper's lrs are 10-100x full FT's).
    With several `seeds` (the training's; the split stays the book's), each row also gets its
    mean and spread over the seeds and the accuracy of their ensemble (the seeds' spam
    probabilities averaged), all on the same test messages."""
    reads = "the head on the " + ("last real token" if pool == "last" else "tokens' mean")
    reads += ", texts lowercased" if lowercase else ""
    print(f"\n### SMS spam, {split} split, {epochs} epoch(s), {schedule} learning rate, {reads}\n")
    print("| model | trains | trainable params | lr | val acc | test acc | macro F1 | wall s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    splitter = balanced_split if split == "balanced" else stratified_split
    _, _, test = splitter(columns(read_records("sms-spam"), ["text", "label"], "sms-spam"), _label)
    for i, row in enumerate(rows.split(",")):
        source, _, trainable = row.partition(":")
        row_lr = lora_lr if trainable == "lora" else lr
        name = "random init" if source == "random" else "pretrained"
        scores, spam_probability = [], []
        for seed in seeds:
            started = time.perf_counter()
            out = workdir / f"spam-{split}-{i}-{seed}"
            s = finetune_classifier(
                base,
                "sms-spam",
                out=out,
                trainable=trainable,
                lora=LoRAConfig(rank=16, alpha=16) if trainable == "lora" else None,
                split=split,
                epochs=epochs,
                lr=row_lr,
                seed=seed,
                schedule=schedule,
                pool=pool,
                lowercase=lowercase,
                random_init=source == "random",
                device="cpu",
                log=lambda *a: None,
            )
            label = name if len(seeds) == 1 else f"{name}, seed {seed}"
            print(
                f"| {label} | {trainable} | {s['parameters']['trainable']:,} | {row_lr:g} | "
                f"{100 * s['val']['accuracy']:.2f}% | {100 * s['test']['accuracy']:.2f}% | "
                f"{s['test']['macro_f1']:.4f} | {time.perf_counter() - started:.0f} |",
                flush=True,
            )
            epochs_seen = [round(100 * h["val_accuracy"], 2) for h in s["history"]]
            print(f"<!-- {row} seed {seed}: val accuracy by epoch {epochs_seen} -->", flush=True)
            scores.append(100 * s["test"]["accuracy"])
            if len(seeds) > 1:
                predicted = classify(out, [text for text, _ in test], device="cpu")
                spam_probability.append(
                    torch.tensor([p if y == "spam" else 1 - p for y, p in predicted])
                )
        if len(seeds) > 1:
            mean = torch.tensor(scores).mean().item()
            spread = torch.tensor(scores).std().item()
            ensemble = torch.stack(spam_probability).mean(0) > 0.5
            right = sum(int(says) == (y == "spam") for says, (_, y) in zip(ensemble.tolist(), test))
            print(
                f"| {name}, mean of {len(seeds)} seeds | {trainable} | | | | "
                f"{mean:.2f}% +- {spread:.2f} | | |"
            )
            print(
                f"| {name}, ensemble of the {len(seeds)} seeds | {trainable} | | | | "
                f"{100 * right / len(test):.2f}% | | |",
                flush=True,
            )
    for name, accuracy, f1, seconds in baselines(split):
        print(f"| {name} | - | - | - | - | {100 * accuracy:.2f}% | {f1:.4f} | {seconds:.1f} |")


def _label(row: tuple[str, str]) -> str:
    return row[1]


def instruct(
    base: Path, workdir: Path, epochs: int, lr: float, lora_lr: float, eval_examples: int
) -> None:
    print(f"\n### Instruction tuning (instruction-data), {epochs} epoch(s)\n")
    print(
        "| trains | prompt | answer loss before -> after | ROUGE-L before -> after | "
        "clean endings after | wall s | peak RSS MB |"
    )
    print("|---|---|---|---|---:|---:|---:|")
    for i, (trainable, mask) in enumerate([("all", False), ("all", True), ("lora", False)]):
        s = finetune_instruct(
            base,
            "instruction-data",
            out=workdir / f"instruct-{i}",
            trainable=trainable,
            mask_prompt=mask,
            epochs=epochs,
            lr=lr if trainable == "all" else lora_lr,
            eval_examples=eval_examples,
            max_new_tokens=64,
            device="cpu",
            log=lambda *a: None,
        )
        b, a = s["before"], s["after"]
        print(
            f"| {trainable} | {'masked' if mask else 'in loss'} | {b['response_loss']:.3f} -> "
            f"{a['response_loss']:.3f} | {b['rouge_l']:.3f} -> {a['rouge_l']:.3f} | "
            f"{100 * a['clean_share']:.0f}% | {s['wall_seconds']:.0f} | "
            f"{s['peak_memory_mb']:.0f} |",
            flush=True,
        )


def throughput(base: Path, batches: int = 40, rounds: int = 3) -> None:
    """Our loop vs a bare loop: same model, same batches, same optimizer, alternated `rounds`
    times (bare, ours, bare, ours, ...) so that a change in the machine's load hits both; the
    medians and their ratio are printed."""
    from byollm.model.checkpoint import load_for_inference

    rows = columns(read_records("sms-spam"), ["text", "label"], "sms-spam")[: batches * 8]
    gpt, tokenizer = load_for_inference(base, device="cpu")
    ids = [tokenizer.encode(t)[:128] for t, _ in rows]
    labels = torch.tensor([int(y == "spam") for _, y in rows])
    data = [
        (*padded_batch(ids[i : i + 8], 0, "cpu"), labels[i : i + 8]) for i in range(0, len(ids), 8)
    ]
    tokens = sum(x.numel() for x, _, _ in data)

    def fresh():
        torch.manual_seed(0)
        g, _ = load_for_inference(base, device="cpu")
        model = Classifier(g, 2)
        choose_trainable(g, "all", head=model.head, root=model)
        return model

    def ours() -> float:
        result = fit(
            fresh(),
            lambda m, b: (F.cross_entropy(m(b[0], b[1]), b[2]), b[0].numel()),
            lambda epoch: data,
            epochs=1,
            lr=5e-5,
            log=lambda *a: None,
        )
        return result["tokens_per_s"]

    def bare() -> float:
        model = fresh()
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1)
        started = time.perf_counter()
        for x, lengths, y in data:
            F.cross_entropy(model(x, lengths), y).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return tokens / (time.perf_counter() - started)

    bare(), ours()  # warm-up: first-call allocations and kernels
    measured = {"bare": [], "ours": []}
    for _ in range(rounds):
        measured["bare"].append(bare())
        measured["ours"].append(ours())
    median = {k: sorted(v)[len(v) // 2] for k, v in measured.items()}
    print(f"\n### Fine-tuning throughput (SMS spam, {len(data)} batches of 8, all layers)\n")
    print(f"torch threads: {torch.get_num_threads()}; {rounds} alternated rounds, medians\n")
    print("| loop | tokens/s (median) | all rounds |\n|---|---:|---|")
    print(
        f"| byollm.finetune.loop.fit | {median['ours']:,.0f} | "
        f"{', '.join(f'{v:,.0f}' for v in measured['ours'])} |"
    )
    print(
        f"| bare PyTorch loop | {median['bare']:,.0f} | "
        f"{', '.join(f'{v:,.0f}' for v in measured['bare'])} |"
    )
    print(f"\nratio ours / bare: {median['ours'] / median['bare']:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", type=Path, help="a pretrained checkpoint (else one is pretrained)")
    p.add_argument("--pretrain-steps", type=int, default=500)
    p.add_argument(
        "--adapt-steps",
        type=int,
        default=0,
        help="first continue pretraining the base on the SMS texts (no labels, no scored "
        "message) for this many steps (measured: 200)",
    )
    p.add_argument("--part", choices=("spam", "instruct", "throughput", "all"), default="all")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--instruct-epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--lora-lr", type=float, default=1e-3)
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="constant",
        help="SMS spam rows: a constant lr (the book's) or one falling linearly to zero",
    )
    p.add_argument(
        "--pool",
        choices=POOLS,
        default="last",
        help="SMS spam rows: the head reads the last real token (the book's) or the mean",
    )
    p.add_argument(
        "--lowercase",
        action="store_true",
        help="SMS spam rows: lowercase every message (measured: +0.78 points over six seeds, RESULTS.md)",
    )
    p.add_argument(
        "--rows",
        default=SPAM_ROWS,
        help="the SMS spam rows, comma-separated source:what (default: all six); run subsets "
        "as parallel processes on a busy machine",
    )
    p.add_argument(
        "--seeds",
        default="123",
        help="comma-separated training seeds for every SMS spam row (the split stays the "
        "book's); with several, each row also gets its mean and the seeds' ensemble",
    )
    p.add_argument("--full", action="store_true", help="also the stratified split of all 5,574")
    p.add_argument(
        "--splits",
        default="balanced",
        help="comma-separated: balanced (the book's 1,045/149/300), stratified (all 5,574)",
    )
    p.add_argument("--eval-examples", type=int, default=50)
    p.add_argument("--rounds", type=int, default=9, help="throughput: alternated rounds")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a small check of the pipeline: 20 pretraining steps, 1 epoch, 20 scored answers",
    )
    args = p.parse_args()
    if args.quick:
        args.pretrain_steps, args.epochs, args.instruct_epochs = 20, 1, 1
        args.eval_examples = 20
    seeds = tuple(int(seed) for seed in args.seeds.split(","))
    random.seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        base = args.base or pretrain(workdir, args.pretrain_steps)
        if args.adapt_steps:
            base = adapt_to_sms(base, workdir, args.adapt_steps)
        if args.part in ("spam", "all"):
            splits = ["balanced", "stratified"] if args.full else args.splits.split(",")
            for split in splits:
                spam(
                    base,
                    workdir,
                    args.epochs,
                    split,
                    args.lr,
                    args.rows,
                    args.lora_lr,
                    seeds,
                    args.schedule,
                    args.pool,
                    args.lowercase,
                )
        if args.part in ("instruct", "all"):
            instruct(base, workdir, args.instruct_epochs, args.lr, args.lora_lr, args.eval_examples)
        if args.part in ("throughput", "all"):
            throughput(base, rounds=args.rounds)


if __name__ == "__main__":
    main()

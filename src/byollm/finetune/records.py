"""Fine-tuning data: records read from CSV, TSV, JSON or JSONL files, and the splits of them.

    >>> rows = read_records("sms-spam")                  # the registered corpus, pinned parser  # doctest: +SKIP
    >>> len(rows), rows[0]["label"]  # doctest: +SKIP
    (5574, 'ham')
    >>> train, val, test = balanced_split(rows, "label")  # the book's 70/10/20, ham undersampled  # doctest: +SKIP

Design choices:
- **One reader for every table**: `.csv` and `.tsv` (with a header row), `.jsonl` (one object a
  line) and `.json` (a list of objects) all become a list of dicts, so the tasks only name
  columns. A missing column, an empty file or a record without a field is one error line that
  says where (file, line or record number) and what the file does have.
- **The SMS Spam Collection has no header** and its texts hold quotes and tabs, so it gets a
  pinned parser (`label<TAB>text`, split at the first tab, no quoting): 5,574 messages,
  4,827 ham and 747 spam, checked on every read.
- **Splits are seeded and reproducible**: the book's balanced split (undersample the larger
  classes to the smallest, shuffle, 70/10/20), a stratified split of the whole set (each class
  70/10/20, so the test set keeps the real class balance), and the book's in-order 85/5/10 split
  for instructions (train, validation, test = 85%, the last 5%, the 10% in between).
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from byollm.errors import ByollmError
from byollm.formats import json_object

SMS_SPAM = "sms-spam"
SMS_SPAM_COUNTS = {"ham": 4827, "spam": 747}


def read_records(source: str | Path, *, mirror: str | None = None) -> list[dict]:
    """The records of a file (by its extension) or of a registered fine-tuning set by name."""
    from byollm.corpora import CORPORA, get_corpus

    if str(source) == SMS_SPAM:
        return read_sms_spam(get_corpus(SMS_SPAM, mirror=mirror, progress=False))
    if str(source) in CORPORA and CORPORA[str(source)].kind == "finetune":
        source = get_corpus(str(source), mirror=mirror, progress=False)
    path = Path(source).expanduser()
    if not path.is_file():
        raise ByollmError(f"data file not found: {path} (or use the registered name {SMS_SPAM!r})")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ByollmError(f"{path}: cannot read as UTF-8 text ({e})") from None
    if not text.strip():
        raise ByollmError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        records = list(reader)
        if not records:
            raise ByollmError(f"{path}: a header row but no records")
        bad = [i + 2 for i, r in enumerate(records) if None in r.values() or None in r]
        if bad:
            raise ByollmError(
                f"{path}: line {bad[0]} has a different number of fields than the header "
                f"({len(bad)} such line(s))"
            )
        return records
    if suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                records.append(json_object(line, f"{path}:{number}"))
        return records
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ByollmError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, list) or not data:
            raise ByollmError(f"{path}: expected a non-empty JSON list of records")
        for i, record in enumerate(data):
            if not isinstance(record, dict):
                raise ByollmError(f"{path}: record {i} is not a JSON object")
        return data
    raise ByollmError(f"{path}: unknown data format {suffix!r}; use .csv, .tsv, .jsonl or .json")


def read_sms_spam(path: str | Path) -> list[dict]:
    """The SMS Spam Collection: `label<TAB>text` lines, no header, no quoting."""
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        label, tab, text = line.partition("\t")
        if not tab:
            raise ByollmError(f"{path}:{number}: expected 'label<TAB>text'")
        records.append({"label": label, "text": text})
    counts = {label: sum(r["label"] == label for r in records) for label in SMS_SPAM_COUNTS}
    if counts != SMS_SPAM_COUNTS or len(records) != sum(SMS_SPAM_COUNTS.values()):
        raise ByollmError(f"{path}: expected 4,827 ham and 747 spam messages, found {counts}")
    return records


def columns(records: list[dict], names: list[str], source: str) -> list[tuple]:
    """The values of columns `names` of every record, as tuples of strings."""
    present = set(records[0]) if records else set()
    unknown = [n for n in names if n not in present]
    if unknown:
        raise ByollmError(
            f"{source}: no column {unknown[0]!r}; the records have {', '.join(sorted(present))}"
        )
    rows, missing = [], []
    for i, record in enumerate(records):
        values = [record.get(n) for n in names]
        if any(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            missing.append(i)
            continue
        rows.append(tuple(str(v) for v in values))
    if missing:
        raise ByollmError(
            f"{source}: {len(missing)} record(s) lack a value for {' or '.join(names)} "
            f"(the first is record {missing[0]}); fix or remove them"
        )
    return rows


def balanced_split(rows: list, label_of, seed: int = 123, fractions=(0.7, 0.1)):
    """The book's split: every class undersampled to the smallest, shuffled, then 70/10/20."""
    by_label = _by_label(rows, label_of)
    smallest = min(len(v) for v in by_label.values())
    rng = random.Random(seed)
    kept = [row for label in sorted(by_label) for row in rng.sample(by_label[label], smallest)]
    rng.shuffle(kept)
    n_train = int(len(kept) * fractions[0])
    n_val = int(len(kept) * fractions[1])
    return kept[:n_train], kept[n_train : n_train + n_val], kept[n_train + n_val :]


def stratified_split(rows: list, label_of, seed: int = 123, fractions=(0.7, 0.1)):
    """Each class split 70/10/20 on its own (all records kept), then each split shuffled."""
    rng = random.Random(seed)
    splits: tuple[list, list, list] = ([], [], [])
    groups = _by_label(rows, label_of)
    for label in sorted(groups):
        members = list(groups[label])
        rng.shuffle(members)
        n_train = int(len(members) * fractions[0])
        n_val = int(len(members) * fractions[1])
        splits[0].extend(members[:n_train])
        splits[1].extend(members[n_train : n_train + n_val])
        splits[2].extend(members[n_train + n_val :])
    for split in splits:
        rng.shuffle(split)
    return splits


def ordered_split(rows: list, train: float = 0.85, test: float = 0.10):
    """The book's instruction split, in file order: train, validation (the end), test."""
    n_train, n_test = int(len(rows) * train), int(len(rows) * test)
    return rows[:n_train], rows[n_train + n_test :], rows[n_train : n_train + n_test]


def _by_label(rows, label_of) -> dict:
    groups: dict = {}
    for row in rows:
        groups.setdefault(label_of(row), []).append(row)
    return groups

"""A model from the Hugging Face Hub by name: `byollm convert --from-hub gpt2 --out ckpt/gpt2`.

    >>> folder = download_from_hub("gpt2")        # doctest: +SKIP
    >>> from_hf(folder)                           # doctest: +SKIP

The Hub serves a repository's files at `<endpoint>/<repo>/resolve/<revision>/<file>` and lists
them at `<endpoint>/api/models/<repo>/tree/<revision>` (JSON: path, size, git blob id, and for
large files stored in LFS their sha256). Two ways to fetch:

- **byollm's own download layer** (the default; standard library only): the listing first, then
  each file through `byollm.download.fetch`, which resumes, caches under
  `$BYOLLM_HOME/hub/<repo>/<revision>/` and checks the LFS sha256 (the weights) before a file
  appears. Small files (config.json, vocab.json) have no sha256 in the listing, only their git
  blob id: `sha1("blob <size>\\0" + bytes)`, which we check instead. `--mirror URL` (or
  `$HF_ENDPOINT`) replaces https://huggingface.co with any server or folder laid out like the
  Hub, the listing included.
- **`huggingface_hub`** (`via="huggingface_hub"`, an optional package imported only then): its
  cache, `HF_ENDPOINT`, `HF_HUB_OFFLINE` and login. We still check every file against the
  listing, which `huggingface_hub` itself does not.

Design choices:
- The names `gpt2`, `gpt2-medium`, `gpt2-large`, `gpt2-xl` are the OpenAI checkpoints, which
  now live under `openai-community/`; any other repo id is used as given.
- Only safetensors weights are fetched (one file, or an index and its shards): GPT-2's repos
  carry them, and they cannot run code when loaded.
- The tokenizer files come too: GPT-2's `vocab.json` + `merges.txt`, else a `tokenizer.json`;
  `convert.hf_folder_tokenizer` turns them into the checkpoint's own tokenizer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path

from byollm import download
from byollm.errors import ByollmError
from byollm.paths import byollm_home, write_file_atomically
from byollm.tokenizer.export import HF_TOKENIZER_FILES

HUB_URL = "https://huggingface.co"
# the OpenAI checkpoints by their short names (their repos moved under openai-community/)
GPT2_REPOS = {
    name: f"openai-community/{name}" for name in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
}
# The Hub's LFS sha256 and size of a registered model's weights, checked against the listing too
# so that a wrong mirror cannot pass other weights off under the name (gpt2's is the file of
# revision 607a30d783dfa663caf39e06633721c8d4cfcd7e, unchanged since safetensors were added).
KNOWN_WEIGHTS = {
    "openai-community/gpt2": (
        "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707",
        548_105_171,
    ),
}
# A Hugging Face model folder's files, named here once (`convert.py` reads and writes them too).
HF_CONFIG, HF_WEIGHTS = "config.json", "model.safetensors"
HF_WEIGHTS_INDEX = "model.safetensors.index.json"  # the weights cut into shards
HF_LEGACY_WEIGHTS = "pytorch_model.bin"  # pickled: never fetched, read only `weights_only`
GPT2_TOKENIZER_FILES = ("vocab.json", "merges.txt")
HF_TOKENIZER = HF_TOKENIZER_FILES[0]  # tokenizer.json, fetched when the GPT-2 pair is absent
LISTING_MAX_BYTES = 4 << 20
SMALL_FILE_MAX_BYTES = 64 << 20  # a non-LFS file (config, vocab) is never this large
VIAS = ("byollm", "huggingface_hub")


def hub_repo(name: str) -> str:
    """The Hub repo id meant by `name`: a GPT-2 size, or `owner/name` (or a bare name) as given."""
    name = GPT2_REPOS.get(name, name)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name) or ".." in name:
        raise ByollmError(
            f"--from-hub {name!r} is not a Hub repo id; give owner/name (e.g. "
            f"openai-community/gpt2) or one of {', '.join(GPT2_REPOS)}"
        )
    return name


def git_blob_sha1(data: bytes) -> str:
    """The id git (and the Hub listing) gives a file's bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def download_from_hub(
    name: str, *, revision: str = "main", mirror: str | None = None, via: str = "byollm"
) -> Path:
    """A local folder holding the repo's config.json, safetensors weights and GPT-2 tokenizer
    files (those it has), each checked against the Hub's listing."""
    repo = hub_repo(name)
    if not re.fullmatch(r"[\w.-]+", revision) or ".." in revision:
        raise ByollmError(f"--revision {revision!r} is not a branch, tag or commit name")
    if via not in VIAS:
        raise ByollmError(f"unknown download route {via!r}; valid: {', '.join(VIAS)}")
    if via == "huggingface_hub":
        return _download_with_huggingface_hub(repo, revision, mirror)
    base = download.resolve_mirror(mirror or os.environ.get("HF_ENDPOINT") or HUB_URL)
    base = base.rstrip("/")
    listing = _read_listing(base, repo, revision)
    folder = byollm_home() / "hub" / repo / revision
    url = lambda path: f"{base}/{repo}/resolve/{revision}/{path}"
    read_index = lambda path: _load_json(_fetch_small(url(path), listing[path], folder / path))
    for path in _wanted_files(listing, repo, read_index):
        entry = listing[path]
        where = f"{repo}/resolve/{revision}/{path}"
        if entry["lfs"]:
            download.fetch(
                url(path),
                entry["lfs"]["oid"],
                folder / path,
                mirror=base,
                mirror_path=where,
                size=entry["size"],
            )
        else:
            _fetch_small(url(path), entry, folder / path)
    return folder


def _read_listing(base: str, repo: str, revision: str) -> dict[str, dict]:
    """{path: {"size", "oid", "lfs"}} of the repo's top-level files at `revision`."""
    url = f"{base}/api/models/{repo}/tree/{revision}"
    try:
        data = json.loads(download.read_url(url, max_bytes=LISTING_MAX_BYTES))
    except (ValueError, UnicodeDecodeError) as e:
        raise ByollmError(f"{url}: not a Hub file listing ({e})") from None
    except ByollmError as e:
        if "HTTP 404" in str(e) or "not found" in str(e):
            raise ByollmError(
                f"{repo} (revision {revision}) not found at {base}: no file listing at {url}; a "
                "mirror must serve the Hub's /api/models/<repo>/tree/<revision> too (for a local "
                "folder of Hugging Face files use --from-hf DIR)"
            ) from None
        raise
    if not isinstance(data, list):
        raise ByollmError(f"{url}: not a Hub file listing (expected a JSON list)")
    return _listing_entries(data, url)


def _listing_entries(data: list, source: str) -> dict[str, dict]:
    listing = {}
    for item in data:
        try:
            if item.get("type", "file") != "file":
                continue
            lfs = item.get("lfs") or None
            if lfs is not None:
                lfs = {"oid": str(lfs["oid"]), "size": int(lfs["size"])}
            listing[str(item["path"])] = {
                "size": int(item["size"]),
                "oid": str(item["oid"]),
                "lfs": lfs,
            }
        except (AttributeError, KeyError, TypeError, ValueError):
            raise ByollmError(f"{source}: malformed listing entry {str(item)[:80]}") from None
    return listing


def _wanted_files(listing: dict[str, dict], repo: str, read_index) -> list[str]:
    """The files to fetch: config.json, the safetensors weights, GPT-2's tokenizer files."""
    if HF_CONFIG not in listing:
        raise ByollmError(f"{repo} has no {HF_CONFIG}; is it a model repo?")
    if repo in KNOWN_WEIGHTS:
        sha256, size = KNOWN_WEIGHTS[repo]
        lfs = (listing.get(HF_WEIGHTS) or {}).get("lfs") or {}
        if lfs.get("oid") != sha256:
            raise ByollmError(
                f"the listing of {repo} gives {HF_WEIGHTS} sha256 {lfs.get('oid')}, but the real "
                f"weights are {sha256} ({size:,} bytes); a wrong mirror or revision? Nothing "
                "was downloaded"
            )
    if HF_WEIGHTS in listing:
        weights = [HF_WEIGHTS]
    elif HF_WEIGHTS_INDEX in listing:
        index = read_index(HF_WEIGHTS_INDEX)
        try:
            shards = sorted(set(index["weight_map"].values()))
        except (KeyError, AttributeError, TypeError):
            raise ByollmError(f"{repo}/{HF_WEIGHTS_INDEX}: no weight_map") from None
        missing = [s for s in shards if s not in listing]
        if missing:
            raise ByollmError(f"{repo}/{HF_WEIGHTS_INDEX} lists {missing[0]}, which the repo lacks")
        weights = shards
    else:
        raise ByollmError(
            f"{repo} has no safetensors weights ({HF_WEIGHTS} or {HF_WEIGHTS_INDEX}); byollm fetches "
            "only safetensors (download the repo and use --from-hf DIR for other formats)"
        )
    tokenizer = [f for f in GPT2_TOKENIZER_FILES if f in listing]
    if len(tokenizer) != len(GPT2_TOKENIZER_FILES):
        tokenizer = [HF_TOKENIZER] if HF_TOKENIZER in listing else []
    return [HF_CONFIG, *weights, *tokenizer]


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ByollmError(f"{path}: not valid JSON ({e})") from None


def _fetch_small(url: str, entry: dict, dest: Path) -> Path:
    """A non-LFS file, checked against its git blob id; a verified cached copy is reused."""
    if dest.is_file() and git_blob_sha1(dest.read_bytes()) == entry["oid"]:
        return dest
    data = download.read_url(url, max_bytes=min(entry["size"], SMALL_FILE_MAX_BYTES))
    if git_blob_sha1(data) != entry["oid"]:
        raise ByollmError(
            f"checksum mismatch for {url}: the listing gives git blob {entry['oid']}, the file "
            f"has {git_blob_sha1(data)}; nothing was written"
        )
    write_file_atomically(dest, data)
    return dest


# --- through huggingface_hub ---------------------------------------------------------------------


def _download_with_huggingface_hub(repo: str, revision: str, mirror: str | None) -> Path:
    try:
        import huggingface_hub
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
    except ImportError:
        raise ByollmError(
            "--via huggingface_hub needs the huggingface_hub package (pip install "
            "huggingface_hub); without it, leave out --via to use byollm's own downloader"
        ) from None
    endpoint = mirror or os.environ.get("HF_ENDPOINT") or None
    if endpoint:
        endpoint = endpoint.rstrip("/")
    try:
        try:
            api = huggingface_hub.HfApi(endpoint=endpoint)
            entries = api.list_repo_tree(repo, revision=revision)
            listing = {
                e.path: {
                    "size": e.size,
                    "oid": e.blob_id,
                    "lfs": {"oid": e.lfs.sha256, "size": e.lfs.size} if e.lfs else None,
                }
                for e in entries
                if isinstance(e, huggingface_hub.hf_api.RepoFile)
            }
        except OfflineModeIsEnabled:
            listing = None  # HF_HUB_OFFLINE: what the cache holds, checked when it was fetched

        def get(path: str) -> Path:
            return Path(
                huggingface_hub.hf_hub_download(repo, path, revision=revision, endpoint=endpoint)
            )

        if listing is None:
            return _cached_with_huggingface_hub(repo, get)
        paths = {}
        for path in _wanted_files(listing, repo, lambda f: _load_json(get(f))):
            paths[path] = get(path)
            _check_against_listing(paths[path], listing[path], f"{repo}/{path}")
    except (HfHubHTTPError, OSError, ValueError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ByollmError(f"cannot fetch {repo} through huggingface_hub: {message}") from None
    return paths[HF_CONFIG].parent  # one snapshot folder holds every file of a revision


def _cached_with_huggingface_hub(repo: str, get) -> Path:
    config = get(HF_CONFIG)
    for optional in (HF_WEIGHTS, *GPT2_TOKENIZER_FILES, HF_TOKENIZER):
        with contextlib.suppress(OSError, ValueError):  # not cached: conversion says what lacks
            get(optional)
    return config.parent


def _check_against_listing(path: Path, entry: dict, label: str) -> None:
    if entry["lfs"]:
        expected, actual = entry["lfs"]["oid"], download.sha256_file(path)
    else:
        expected, actual = entry["oid"], git_blob_sha1(path.read_bytes())
    if actual != expected:
        raise ByollmError(
            f"checksum mismatch for {label} ({path}): the Hub lists {expected}, the file has "
            f"{actual}; delete it from the huggingface_hub cache and fetch again"
        )

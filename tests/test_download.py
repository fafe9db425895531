"""The real download code against a loopback HTTP server (127.0.0.1, port 0), never the internet."""

from __future__ import annotations

import hashlib
import os
import socket
from urllib.parse import urlparse

import pytest
from data_server import LoopbackServer
from full_disk import fill_disk_after
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byollm import download
from byollm.download import OfflineError, fetch, resolve_mirror, source_url
from byollm.errors import ByollmError

PAYLOAD = bytes(range(256)) * 400 + "é∑ the end\n".encode()  # 102 KB, several chunks
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
# Beginnings of mirror strings, right and nearly right, for the property test to build on.
SCHEMES = [
    "http://",
    "https://",
    "file://",
    "file:",
    "htp://",
    "http:/",
    "http://[",
    "HTTP://",
    "~",
]


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "payload.bin").write_bytes(PAYLOAD)
    srv = LoopbackServer(root)
    yield srv
    srv.stop()


@pytest.fixture
def refused_url():
    """A loopback URL on which nothing listens: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/sub/payload.bin"


def test_fetch_downloads_verifies_and_leaves_no_temp_file(server, tmp_path):
    dest = tmp_path / "cache" / "payload.bin"
    path = fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, progress=False)
    assert path == dest and dest.read_bytes() == PAYLOAD
    assert not dest.with_name("payload.bin.part").exists()


def test_cached_file_is_reused_without_network(server, tmp_path):
    dest = tmp_path / "payload.bin"
    url = f"{server.url}/sub/payload.bin"
    fetch(url, PAYLOAD_SHA, dest, progress=False)
    server.stop()
    assert fetch(url, PAYLOAD_SHA, dest, progress=False).read_bytes() == PAYLOAD
    assert len(server.requests) == 1


def test_corrupted_cache_is_downloaded_again(server, tmp_path):
    dest = tmp_path / "payload.bin"
    dest.write_bytes(b"not the payload")
    fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes_temp_and_names_both_hashes(server, tmp_path):
    dest = tmp_path / "payload.bin"
    wrong = "0" * 64
    with pytest.raises(ByollmError) as info:
        fetch(f"{server.url}/sub/payload.bin", wrong, dest, progress=False)
    message = str(info.value)
    assert "payload.bin" in message and wrong in message and PAYLOAD_SHA in message
    assert not dest.exists() and not dest.with_name("payload.bin.part").exists()


def test_truncated_transfer_never_produces_the_file(server, tmp_path):
    server.behaviour["sub/payload.bin"] = "truncate"  # every answer stops halfway
    dest = tmp_path / "payload.bin"
    with pytest.raises(OfflineError, match="cut short 3 times.*--mirror"):
        fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, progress=False)
    assert not dest.exists()
    assert dest.with_name("payload.bin.part").stat().st_size < len(PAYLOAD)  # kept to resume
    assert len(server.requests) == download.ATTEMPTS


def test_truncated_transfer_is_resumed_with_a_range_request(server, tmp_path):
    server.behaviour["sub/payload.bin"] = "truncate-once"
    dest = tmp_path / "payload.bin"
    fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, progress=False)
    assert dest.read_bytes() == PAYLOAD
    (_, first_range), (_, second_range) = server.requests
    assert first_range is None and second_range == f"bytes={len(PAYLOAD) // 2}-"


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    dest = tmp_path / "payload.bin"
    dest.with_name("payload.bin.part").write_bytes(PAYLOAD[:1000])
    fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("sub/payload.bin", "bytes=1000-")]


def test_server_without_ranges_restarts_cleanly(server, tmp_path):
    server.ranges = False  # answers 200 with the whole file to a Range request
    dest = tmp_path / "payload.bin"
    dest.with_name("payload.bin.part").write_bytes(b"garbage from some other file")
    fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_stale_partial_file_larger_than_the_source_restarts(server, tmp_path):
    dest = tmp_path / "payload.bin"
    dest.with_name("payload.bin.part").write_bytes(PAYLOAD + b"extra")  # server answers 416
    fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_corrupt_partial_file_fails_once_then_recovers(server, tmp_path):
    dest = tmp_path / "payload.bin"
    part = dest.with_name("payload.bin.part")
    part.write_bytes(b"x" * 1000)  # wrong bytes, resumed as if they were right
    with pytest.raises(ByollmError, match="checksum mismatch"):
        fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, progress=False)
    assert not part.exists() and not dest.exists()
    fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_http_404_names_the_url_and_status(server, tmp_path):
    url = f"{server.url}/sub/missing.bin"
    with pytest.raises(ByollmError) as info:
        fetch(url, PAYLOAD_SHA, tmp_path / "missing.bin", progress=False)
    assert url in str(info.value) and "404" in str(info.value)
    assert not isinstance(info.value, OfflineError)
    assert not (tmp_path / "missing.bin").exists()


def test_no_server_is_an_offline_error_naming_the_mirror_options(refused_url, tmp_path):
    with pytest.raises(OfflineError) as info:
        fetch(refused_url, PAYLOAD_SHA, tmp_path / "payload.bin", progress=False)
    message = str(info.value)
    assert isinstance(info.value, ByollmError)
    assert "\n" not in message
    assert "no network" in message and "--mirror" in message and "BYOLLM_MIRROR" in message
    assert "local file" in message


def test_server_that_never_answers_times_out(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "TIMEOUT_S", 0.2)
    server.behaviour["sub/payload.bin"] = "hang"
    with pytest.raises(ByollmError):
        fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, tmp_path / "p.bin", progress=False)
    assert not (tmp_path / "p.bin").exists()


def test_file_mirror_replaces_the_origin(refused_url, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "deep").mkdir(parents=True)
    (mirror / "deep" / "p.bin").write_bytes(PAYLOAD)
    dest = tmp_path / "cache" / "payload.bin"
    fetch(
        refused_url,
        PAYLOAD_SHA,
        dest,
        mirror=mirror.as_uri() + "/",
        mirror_path="deep/p.bin",
        progress=False,
    )
    assert dest.read_bytes() == PAYLOAD


def test_missing_file_on_a_file_mirror_is_named(refused_url, tmp_path):
    with pytest.raises(ByollmError, match="mirror file not found"):
        fetch(
            refused_url,
            PAYLOAD_SHA,
            tmp_path / "p.bin",
            mirror=tmp_path.as_uri(),
            mirror_path="nope.bin",
            progress=False,
        )


def test_mirror_from_the_environment(server, refused_url, tmp_path, monkeypatch):
    monkeypatch.setenv("BYOLLM_MIRROR", server.url)
    dest = tmp_path / "payload.bin"
    fetch(refused_url, PAYLOAD_SHA, dest, mirror_path="sub/payload.bin", progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("sub/payload.bin", None)]


def test_source_url_and_plain_folder_mirrors(tmp_path, monkeypatch):
    assert source_url("https://x.org/a/b.txt") == "https://x.org/a/b.txt"
    assert source_url("https://x.org/a/b.txt", "http://m/", "c/b.txt") == "http://m/c/b.txt"
    assert source_url("https://x.org/a/b.txt", "http://m") == "http://m/b.txt"
    assert resolve_mirror(str(tmp_path)) == tmp_path.resolve().as_uri()
    monkeypatch.setenv("BYOLLM_MIRROR", "file:///srv/data")
    assert resolve_mirror(None) == "file:///srv/data"
    assert resolve_mirror("http://other") == "http://other"  # the argument wins


def test_unsupported_scheme_and_bad_hash_are_user_errors(tmp_path):
    with pytest.raises(ByollmError, match="only http"):
        fetch("ftp://example.org/x", PAYLOAD_SHA, tmp_path / "x", progress=False)
    with pytest.raises(ByollmError, match="not a sha256"):
        fetch("http://127.0.0.1/x", "abc", tmp_path / "x", progress=False)


def test_no_lock_or_temp_files_leak_into_a_success(server, tmp_path):
    dest_dir = tmp_path / "d"
    fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest_dir / "p.bin", progress=False)
    leftovers = {p.name for p in dest_dir.iterdir()} - {"p.bin"}
    assert all(name.startswith(".") for name in leftovers), leftovers
    assert not any(n.endswith(".part") for n in os.listdir(dest_dir))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.binary(max_size=3000),
    kept=st.integers(min_value=0, max_value=3500),
    corrupt=st.booleans(),
)
def test_any_leftover_part_file_ends_in_the_right_file_or_a_clean_error(
    tmp_path_factory, payload, kept, corrupt
):
    """Whatever an interrupted run left behind, `dest` is only ever the verified payload."""
    root = tmp_path_factory.mktemp("prop")
    (root / "mirror").mkdir()
    (root / "mirror" / "f.bin").write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    dest = root / "cache" / "f.bin"
    dest.parent.mkdir()
    leftover = (payload + b"tail that is too long")[:kept]
    if corrupt and leftover:
        leftover = bytes([leftover[0] ^ 0xFF]) + leftover[1:]
    dest.with_name("f.bin.part").write_bytes(leftover)
    args = ("http://127.0.0.1:9/f.bin", sha, dest)
    kwargs = {"mirror": (root / "mirror").as_uri(), "mirror_path": "f.bin", "progress": False}
    try:
        fetch(*args, **kwargs)
    except ByollmError as e:
        assert "checksum mismatch" in str(e)
        assert not dest.exists() and not dest.with_name("f.bin.part").exists()
        fetch(*args, **kwargs)  # the next run starts from scratch and succeeds
    assert dest.read_bytes() == payload


# --- size cap, full disk, malformed mirrors -----------------------------------------------------


@pytest.mark.parametrize("behaviour", ["normal", "no-length"])
def test_a_source_larger_than_the_registered_size_is_cut_off(server, tmp_path, behaviour):
    # "normal" announces too many bytes in Content-Length; "no-length" just keeps sending.
    server.behaviour["sub/payload.bin"] = behaviour
    dest = tmp_path / "cache" / "payload.bin"
    registered = len(PAYLOAD) - 100
    with pytest.raises(ByollmError, match=f"{registered:,} bytes") as info:
        fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, size=registered, progress=False)
    assert "\n" not in str(info.value) and "registered" in str(info.value)
    assert os.listdir(dest.parent) == [".byollm-download.lock"]  # no file, no .part


def test_a_file_mirror_larger_than_the_registered_size_is_cut_off(tmp_path):
    (tmp_path / "big.bin").write_bytes(PAYLOAD)
    with pytest.raises(ByollmError, match="registered"):
        fetch(
            "http://127.0.0.1:9/x",
            PAYLOAD_SHA,
            tmp_path / "cache" / "big.bin",
            mirror=str(tmp_path),
            mirror_path="big.bin",
            size=1000,
            progress=False,
        )
    assert os.listdir(tmp_path / "cache") == [".byollm-download.lock"]


def test_a_source_of_exactly_the_registered_size_is_accepted(server, tmp_path):
    server.behaviour["sub/payload.bin"] = "no-length"
    dest = tmp_path / "payload.bin"
    fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, size=len(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_disk_full_while_downloading_is_one_line_and_leaves_no_part_file(
    server, tmp_path, monkeypatch
):
    fill_disk_after(monkeypatch, download, writes=1)
    dest = tmp_path / "payload.bin"
    with pytest.raises(ByollmError, match="No space left on device") as info:
        fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, progress=False)
    assert "\n" not in str(info.value) and "payload.bin.part" in str(info.value)
    assert not dest.exists() and not dest.with_name("payload.bin.part").exists()
    monkeypatch.undo()
    fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, progress=False)  # space again
    assert dest.read_bytes() == PAYLOAD


BAD_MIRRORS = [
    ("htp://x", "unsupported scheme"),
    ("file:", "not a file URL"),
    ("file:relative/path", "not a file URL"),
    ("file://otherhost/srv/data", "names the host"),
    ("file://", "names no folder"),
    ("", "is empty"),
    ("   ", "is empty"),
    ("http://[::1", "not a valid URL"),
    ("http://[::1]:99999/", "not a valid URL"),
    ("http://host:port/", "not a valid URL"),
    ("http://", "names no host"),
    ("https:///data", "names no host"),
    ("http://my mirror/data", "spaces"),
    ("http://a..b/data", "invalid host name"),
    ("http://mirrör.example/", "non-ASCII"),
    ("http://m/data?x=1", "query or fragment"),
    ("http://m/data\n", "control characters"),
    ("/srv/da\0ta", "control characters"),
    ("ftp://example.org/data", "unsupported scheme"),
]


@pytest.mark.parametrize("mirror, message", BAD_MIRRORS)
def test_malformed_mirrors_are_one_line_errors(mirror, message, tmp_path):
    with pytest.raises(ByollmError, match=message) as info:
        fetch("http://127.0.0.1:9/x", PAYLOAD_SHA, tmp_path / "x", mirror=mirror, progress=False)
    assert "\n" not in str(info.value) and repr(mirror) in str(info.value)
    assert not (tmp_path / "x").exists()


def test_a_malformed_mirror_in_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("BYOLLM_MIRROR", "htp://x")
    with pytest.raises(ByollmError, match=r"\$BYOLLM_MIRROR 'htp://x'"):
        resolve_mirror(None)
    monkeypatch.setenv("BYOLLM_MIRROR", "")  # empty: no mirror, as for any unset variable
    assert resolve_mirror(None) is None


def test_a_malformed_mirror_is_reported_even_when_the_file_is_cached(server, tmp_path):
    dest = tmp_path / "payload.bin"
    fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, progress=False)
    with pytest.raises(ByollmError, match="unsupported scheme"):
        fetch(f"{server.url}/sub/payload.bin", PAYLOAD_SHA, dest, mirror="htp://x")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.builds("{}{}".format, st.sampled_from(SCHEMES), st.text()))
def test_any_mirror_string_is_a_url_or_a_one_line_error(text):
    try:
        url = resolve_mirror(text)
    except ByollmError as e:
        assert "\n" not in str(e) and repr(text) in str(e)
        return
    parsed = urlparse(url)
    assert parsed.scheme in ("http", "https", "file")
    assert parsed.netloc if parsed.scheme != "file" else parsed.path

"""lmkzoo.hub.fetch against a real HTTP server on 127.0.0.1 (a thread in this process): good, wrong, missing,
dropped, slow, trickling, flaky and Range-less files; offline mode; mirrors; two processes at once; the
``lmkzoo download`` command. No test opens a socket to anything but 127.0.0.1 (a guard enforces it)."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hub_server import Route, Server, card, sha, write_zoo

from lmkzoo import cli, hub
from lmkzoo.errors import ChecksumMismatchError, InvalidArgumentError, WeightsUnavailableError

ROOT = Path(__file__).resolve().parents[1]
DATA = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
WRONG = DATA[:-1] + bytes([DATA[-1] ^ 1])


@pytest.fixture(autouse=True)
def hub_env(monkeypatch, tmp_path):
    """A private LMKZOO_HOME, no proxies, short limits, fast backoff, loopback-only sockets."""
    monkeypatch.setenv("LMKZOO_HOME", str(tmp_path / "home"))
    for var in ("LMKZOO_OFFLINE", "LMKZOO_WEIGHTS_MIRROR", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("LMKZOO_HUB_TIMEOUT", "2")
    monkeypatch.setenv("LMKZOO_HUB_MAX_TIME", "20")
    monkeypatch.setenv("LMKZOO_HUB_RETRIES", "3")
    monkeypatch.setattr(hub.transport, "_BACKOFF_BASE", 0.05)
    real_connect = socket.socket.connect

    def loopback_only(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            raise AssertionError(f"a test tried to reach {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    return tmp_path / "home" / "weights"


@pytest.fixture
def server():
    with Server() as s:
        yield s


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def block_sockets(monkeypatch):
    """Any attempt to create a socket or resolve a name fails loudly."""

    class NoSocket:
        def __init__(self, *a, **k):
            raise AssertionError("a socket was opened")

    def refuse(*a, **k):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket, "socket", NoSocket)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


# ----------------------------------------------------------------------------------------------- basics
def test_good_file_is_verified_cached_and_reused_offline(server, hub_env, monkeypatch, capfd):
    url = server.add("/w/good.weights.h5", Route(data=DATA))
    path = hub.fetch(url, sha(DATA))
    assert path == hub_env / "good.weights.h5" and path.read_bytes() == DATA
    assert files(hub_env) == ["good.weights.h5"]  # no .part, no .lock
    err = capfd.readouterr().err
    assert "good.weights.h5" in err and "100%" in err  # the progress bar
    assert server.httpd.routes["/w/good.weights.h5"].requests == [None]
    # a verified cached file comes back without the network
    block_sockets(monkeypatch)
    assert hub.fetch(url, sha(DATA), progress=False) == path
    assert len(server.httpd.routes["/w/good.weights.h5"].requests) == 1


def test_wrong_content_raises_checksum_mismatch_and_leaves_nothing(server, hub_env):
    url = server.add("/wrong.weights.h5", Route(data=WRONG))
    with pytest.raises(ChecksumMismatchError) as e:
        hub.fetch(url, sha(DATA), progress=False)
    assert e.value.expected == sha(DATA) and e.value.actual == sha(WRONG)
    msg = str(e.value)
    assert f"expected {sha(DATA)}, got {sha(WRONG)}" in msg and url in msg and "wrong.weights.h5" in msg
    assert files(hub_env) == []  # partial file deleted, lock removed, nothing cached


def test_404_fails_at_once_and_names_the_file_to_place(server, hub_env):
    url = server.add("/missing.weights.h5", Route(status=404))
    t0 = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as e:
        hub.fetch(url, sha(DATA), progress=False)
    assert time.monotonic() - t0 < 2  # permanent: no retries
    msg = str(e.value)
    assert f"{url}: HTTP 404" in msg and sha(DATA) in msg and str(hub_env / "missing.weights.h5") in msg
    assert e.value.url == url and e.value.cache_path == hub_env / "missing.weights.h5"
    assert server.httpd.routes["/missing.weights.h5"].requests == [None]
    assert files(hub_env) == []


def test_mirrors_are_tried_in_order(server, hub_env):
    dead = server.add("/a/m.weights.h5", Route(status=404))
    bad = server.add("/b/m.weights.h5", Route(data=WRONG))
    good = server.add("/c/m.weights.h5", Route(data=DATA))
    unused = server.add("/d/m.weights.h5", Route(data=DATA))
    path = hub.fetch(dead, sha(DATA), mirrors=[bad, good, unused], progress=False)
    assert path.read_bytes() == DATA and files(hub_env) == ["m.weights.h5"]
    routes = server.httpd.routes
    assert [len(routes[p].requests) for p in ("/a/m.weights.h5", "/b/m.weights.h5", "/c/m.weights.h5", "/d/m.weights.h5")] == [1, 1, 1, 0]


def test_transient_503_is_retried_with_backoff(server, hub_env):
    url = server.add("/flaky.weights.h5", Route(data=DATA, fail_first=2))
    assert hub.fetch(url, sha(DATA), progress=False).read_bytes() == DATA
    assert len(server.httpd.routes["/flaky.weights.h5"].requests) == 3


# --------------------------------------------------------------------------------------- resume / Range
def test_dropped_connection_resumes_with_range(server, hub_env):
    url = server.add("/drop.weights.h5", Route(data=DATA, drop_first=1))
    path = hub.fetch(url, sha(DATA), progress=False)
    assert path.read_bytes() == DATA and files(hub_env) == ["drop.weights.h5"]
    assert server.httpd.routes["/drop.weights.h5"].requests == [None, f"bytes={len(DATA) // 2}-"]


def test_interrupted_download_resumes_in_the_next_call(server, hub_env, monkeypatch):
    monkeypatch.setenv("LMKZOO_HUB_RETRIES", "1")
    url = server.add("/later.weights.h5", Route(data=DATA, drop_first=1))
    with pytest.raises(WeightsUnavailableError) as e:
        hub.fetch(url, sha(DATA), progress=False)
    part = hub_env / "later.weights.h5.part"
    assert f"connection closed after {len(DATA) // 2} of {len(DATA)} bytes" in str(e.value)
    assert f"the partial download is kept at {part}" in str(e.value)
    assert files(hub_env) == ["later.weights.h5.part"] and part.read_bytes() == DATA[: len(DATA) // 2]
    path = hub.fetch(url, sha(DATA), progress=False)
    assert path.read_bytes() == DATA and files(hub_env) == ["later.weights.h5"]
    assert server.httpd.routes["/later.weights.h5"].requests == [None, f"bytes={len(DATA) // 2}-"]


def test_server_without_range_restarts_cleanly(server, hub_env):
    url = server.add("/norange.weights.h5", Route(data=DATA, range_ok=False, drop_first=1))
    path = hub.fetch(url, sha(DATA), progress=False)
    # the client asked to resume, the server sent the whole file again: no duplicated bytes
    assert path.read_bytes() == DATA and files(hub_env) == ["norange.weights.h5"]
    assert server.httpd.routes["/norange.weights.h5"].requests == [None, f"bytes={len(DATA) // 2}-"]


def test_stale_partial_from_another_file_is_discarded(server, hub_env):
    # a .part left by an older version of the file: resuming gives a wrong hash, so start again once
    hub_env.mkdir(parents=True)
    (hub_env / "stale.weights.h5.part").write_bytes(DATA[::-1][:1000])
    url = server.add("/stale.weights.h5", Route(data=DATA))
    assert hub.fetch(url, sha(DATA), progress=False).read_bytes() == DATA
    assert server.httpd.routes["/stale.weights.h5"].requests == ["bytes=1000-", None]
    assert files(hub_env) == ["stale.weights.h5"]


def test_complete_partial_is_verified_after_416(server, hub_env):
    hub_env.mkdir(parents=True)
    (hub_env / "done.weights.h5.part").write_bytes(DATA)
    url = server.add("/done.weights.h5", Route(data=DATA))
    assert hub.fetch(url, sha(DATA), progress=False).read_bytes() == DATA
    assert server.httpd.routes["/done.weights.h5"].requests == [f"bytes={len(DATA)}-"]


def test_corrupt_cached_file_is_replaced_online(server, hub_env):
    hub_env.mkdir(parents=True)
    (hub_env / "c.weights.h5").write_bytes(WRONG)
    url = server.add("/c.weights.h5", Route(data=DATA))
    assert hub.fetch(url, sha(DATA), progress=False).read_bytes() == DATA
    assert files(hub_env) == ["c.weights.h5"]


def test_corrupt_cached_file_is_deleted_even_when_every_source_fails(server, hub_env, caplog):
    """Online, a cached file with the wrong SHA-256 leaves the final name before any source is tried: after a
    404 and a mirror serving wrong bytes, nothing unverified stays in the cache."""
    hub_env.mkdir(parents=True)
    target = hub_env / "d.weights.h5"
    target.write_bytes(WRONG)
    dead = server.add("/d.weights.h5", Route(status=404))
    bad = server.add("/mirror/d.weights.h5", Route(data=WRONG[:1000]))
    with caplog.at_level("WARNING", logger="lmkzoo.hub"):
        with pytest.raises(ChecksumMismatchError) as e:
            hub.fetch(dead, sha(DATA), mirrors=[bad], progress=False)
    assert e.value.actual == sha(WRONG[:1000]) and e.value.url == bad
    assert not target.exists() and files(hub_env) == []  # no corrupt file, no partial, no lock
    assert any(f"has SHA-256 {sha(WRONG)}" in r.getMessage() and "deleting it" in r.getMessage() for r in caplog.records)
    # the same with only a dead source: WeightsUnavailableError, and still nothing under the final name
    target.write_bytes(WRONG)
    with pytest.raises(WeightsUnavailableError, match="HTTP 404"):
        hub.fetch(dead, sha(DATA), progress=False)
    assert files(hub_env) == []
    assert server.httpd.routes["/d.weights.h5"].requests == [None, None]


# ------------------------------------------------------------------------------------------ time limits
def test_silent_server_times_out_quickly(server, hub_env, monkeypatch):
    monkeypatch.setenv("LMKZOO_HUB_TIMEOUT", "0.4")
    monkeypatch.setenv("LMKZOO_HUB_RETRIES", "2")
    url = server.add("/silent.weights.h5", Route(data=DATA, stall_after=0))
    t0 = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as e:
        hub.fetch(url, sha(DATA), progress=False)
    assert time.monotonic() - t0 < 4
    assert "read stalled for 0.4 s after 0 bytes (2 attempts)" in str(e.value)
    assert files(hub_env) == []  # nothing was received: no partial file kept


def test_stalled_transfer_keeps_partial_for_resume(server, hub_env, monkeypatch):
    monkeypatch.setenv("LMKZOO_HUB_TIMEOUT", "0.4")
    monkeypatch.setenv("LMKZOO_HUB_RETRIES", "1")
    url = server.add("/stall.weights.h5", Route(data=DATA, stall_after=5000))
    with pytest.raises(WeightsUnavailableError, match="read stalled for 0.4 s after 5000 bytes"):
        hub.fetch(url, sha(DATA), progress=False)
    assert (hub_env / "stall.weights.h5.part").read_bytes() == DATA[:5000]
    assert not (hub_env / "stall.weights.h5").exists()


def test_trickling_server_hits_the_total_time_limit(server, hub_env, monkeypatch):
    monkeypatch.setenv("LMKZOO_HUB_MAX_TIME", "1.5")
    url = server.add("/trickle.weights.h5", Route(data=DATA, trickle=0.02))  # would take ~12 s
    t0 = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as e:
        hub.fetch(url, sha(DATA), progress=False)
    assert 1.4 < time.monotonic() - t0 < 4
    assert "gave up after 1.5 s (LMKZOO_HUB_MAX_TIME)" in str(e.value)
    assert not (hub_env / "trickle.weights.h5").exists()
    part = hub_env / "trickle.weights.h5.part"
    assert 0 < part.stat().st_size < len(DATA) and part.read_bytes() == DATA[: part.stat().st_size]


# ------------------------------------------------------------------------------- offline and mirror env
def test_offline_never_opens_a_socket(server, hub_env, monkeypatch):
    url = server.add("/off.weights.h5", Route(data=DATA))
    monkeypatch.setenv("LMKZOO_OFFLINE", "1")
    block_sockets(monkeypatch)
    with pytest.raises(WeightsUnavailableError) as e:
        hub.fetch(url, sha(DATA), progress=False)
    msg = str(e.value)
    target = hub_env / "off.weights.h5"
    assert "LMKZOO_OFFLINE=1" in msg and url in msg and sha(DATA) in msg and f"place it at {target}" in msg
    assert files(hub_env) == []
    # a wrong file placed by hand: a mismatch that says it will not be downloaded again
    hub_env.mkdir(parents=True)
    target.write_bytes(WRONG)
    with pytest.raises(ChecksumMismatchError, match="LMKZOO_OFFLINE=1, so lmkzoo will not download it again"):
        hub.fetch(url, sha(DATA), progress=False)
    # the right file placed by hand is used
    target.write_bytes(DATA)
    assert hub.fetch(url, sha(DATA), progress=False) == target
    assert server.httpd.routes["/off.weights.h5"].requests == []


def test_offline_with_a_folder_mirror(server, hub_env, monkeypatch, tmp_path):
    mirror = tmp_path / "usb" / "weights"
    mirror.mkdir(parents=True)
    (mirror / "fm.weights.h5").write_bytes(DATA)
    monkeypatch.setenv("LMKZOO_OFFLINE", "1")
    monkeypatch.setenv("LMKZOO_WEIGHTS_MIRROR", str(mirror))
    block_sockets(monkeypatch)
    path = hub.fetch("https://example.invalid/x/fm.weights.h5", sha(DATA), progress=False)
    assert path == hub_env / "fm.weights.h5" and path.read_bytes() == DATA and files(hub_env) == ["fm.weights.h5"]


def test_mirror_env_replaces_the_base_url(server, hub_env, monkeypatch):
    primary = server.add("/orig/me.weights.h5", Route(data=DATA))
    server.add("/mirror/me.weights.h5", Route(data=DATA))
    monkeypatch.setenv("LMKZOO_WEIGHTS_MIRROR", server.base + "/mirror/")
    assert hub.fetch(primary, sha(DATA), progress=False).read_bytes() == DATA
    assert server.httpd.routes["/orig/me.weights.h5"].requests == []
    assert server.httpd.routes["/mirror/me.weights.h5"].requests == [None]
    # a mirror without the file: the error names it, the original URL is not tried
    monkeypatch.setenv("LMKZOO_WEIGHTS_MIRROR", server.base + "/nowhere")
    with pytest.raises(WeightsUnavailableError, match=r"/nowhere/other.weights.h5: HTTP 404"):
        hub.fetch(server.base + "/orig/other.weights.h5", sha(DATA), progress=False)


# ---------------------------------------------------------------------------------------- arguments
def test_sha256_is_mandatory_and_checked(server, hub_env):
    url = server.add("/frag.weights.h5", Route(data=DATA))
    with pytest.raises(InvalidArgumentError, match="no SHA-256 for .*frag.weights.h5.*#sha256="):
        hub.fetch(url, None)
    with pytest.raises(InvalidArgumentError, match="64 hexadecimal digits.*'abc'"):
        hub.fetch(url, "abc")
    with pytest.raises(InvalidArgumentError, match="disagrees with the URL fragment"):
        hub.fetch(f"{url}#sha256={sha(WRONG)}", sha(DATA))
    with pytest.raises(InvalidArgumentError, match="only URL fragment"):
        hub.fetch(f"{url}#md5=00", None)
    with pytest.raises(InvalidArgumentError, match="http://, https:// or file://.*ftp://"):
        hub.fetch("ftp://127.0.0.1/f.weights.h5", sha(DATA))
    with pytest.raises(InvalidArgumentError, match="plain file name.*'../x'"):
        hub.fetch(url, sha(DATA), filename="../x")
    assert server.httpd.routes["/frag.weights.h5"].requests == []
    # the fragment form downloads and verifies; filename= and cache_dir= place the file
    other = hub_env.parent / "elsewhere"
    path = hub.fetch(f"{url}#sha256={sha(DATA).upper()}", None, cache_dir=other, filename="named.weights.h5",
                     progress=False)
    assert path == other / "named.weights.h5" and path.read_bytes() == DATA and files(other) == ["named.weights.h5"]


def test_bad_settings_are_named(monkeypatch, server):
    url = server.add("/s.weights.h5", Route(data=DATA))
    monkeypatch.setenv("LMKZOO_HUB_TIMEOUT", "soon")
    with pytest.raises(InvalidArgumentError, match="LMKZOO_HUB_TIMEOUT must be a number of seconds; got 'soon'"):
        hub.fetch(url, sha(DATA))


def test_home_defaults(monkeypatch):
    monkeypatch.delenv("LMKZOO_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert hub.home() == Path("~/.cache/lmkzoo").expanduser()
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert hub.weights_dir() == Path("/x/cache/lmkzoo/weights")


# ------------------------------------------------------------------------------------ two processes
def test_two_processes_fetching_the_same_file_share_one_download(server, hub_env, tmp_path):
    gate = threading.Event()
    url = server.add("/shared.weights.h5", Route(data=DATA, gate=gate))
    route = server.httpd.routes["/shared.weights.h5"]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(PYTHONPATH=str(ROOT), LMKZOO_HOME=str(tmp_path / "home"), LMKZOO_HUB_MAX_TIME="60")
    code = f"from lmkzoo import hub; print(hub.fetch({url!r}, {sha(DATA)!r}, progress=True))"
    first = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not route.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert route.requests, "the first process never connected"
    second = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the first process is now stuck halfway (the gate); the second must wait on the lock, not download
    waited = []

    def watch():
        for line in second.stderr:
            waited.append(line)
            if "another process is downloading shared.weights.h5" in line:
                gate.set()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    t.join(30)
    gate.set()
    out1, err1 = first.communicate(timeout=30)
    second.wait(timeout=30)
    assert first.returncode == 0 and second.returncode == 0, (err1, waited)
    assert any("waiting for it" in line for line in waited)
    path = hub_env / "shared.weights.h5"
    assert out1.strip() == str(path) and second.stdout.read().strip() == str(path)
    assert path.read_bytes() == DATA and files(hub_env) == ["shared.weights.h5"]
    assert route.requests == [None]  # one download served both processes


# ------------------------------------------------------------------------------------ lmkzoo download
@pytest.fixture
def zoo_with_weights(server, monkeypatch, tmp_path):
    arch = {
        "family": "pipnet",
        "builder": {"backbone": "resnet18"},
        "input": {"size": [64, 64], "crop": {"policy": "box"}},
        "tags": {
            "a": {"scheme": "aflw19", "weights": card(server.add("/z/dl_a.weights.h5", Route(data=DATA)), DATA)},
            "b": {"scheme": "aflw19", "weights": card(server.add("/z/dl_b.weights.h5", Route(data=WRONG)), WRONG)},
            "none": {"scheme": "aflw19"},
        },
    }
    write_zoo(monkeypatch, tmp_path, {"dltest": arch})


def test_cli_download_dest_folder_works_offline_elsewhere(zoo_with_weights, server, hub_env, tmp_path, monkeypatch, capsys):
    dest = tmp_path / "usb"
    assert cli.main(["download", "dltest.a", "dltest.b", "--dest", str(dest), "--quiet"]) == 0
    out = capsys.readouterr()
    assert f"dltest.a\t{dest / 'weights' / 'dl_a.weights.h5'}" in out.out and f"LMKZOO_HOME={dest.resolve()}" in out.err
    assert (dest / "weights" / "dl_a.weights.h5").read_bytes() == DATA
    assert (dest / "weights" / "dl_b.weights.h5").read_bytes() == WRONG
    sums = (dest / "weights" / "SHA256SUMS").read_text().splitlines()
    assert sums == [f"{sha(DATA)}  dl_a.weights.h5", f"{sha(WRONG)}  dl_b.weights.h5"]
    assert files(hub_env) == []  # --dest does not fill the user's cache
    # on the "air-gapped machine": the folder is LMKZOO_HOME, or a mirror, with the network blocked
    block_sockets(monkeypatch)
    monkeypatch.setenv("LMKZOO_OFFLINE", "1")
    monkeypatch.setenv("LMKZOO_HOME", str(dest))
    assert hub.download(["dltest.a"]) == {"dltest.a": dest / "weights" / "dl_a.weights.h5"}
    monkeypatch.setenv("LMKZOO_HOME", str(tmp_path / "fresh"))
    monkeypatch.setenv("LMKZOO_WEIGHTS_MIRROR", str(dest / "weights"))
    got = hub.download(["dltest.b"], progress=False)
    assert got["dltest.b"].read_bytes() == WRONG and got["dltest.b"].parent == tmp_path / "fresh" / "weights"


def test_cli_download_all_and_errors(zoo_with_weights, server, hub_env, capsys):
    assert cli.main(["download", "--all", "--quiet"]) == 0
    assert files(hub_env) == ["dl_a.weights.h5", "dl_b.weights.h5"]
    capsys.readouterr()
    assert cli.main(["download", "dltest.none"]) == 2
    err = capsys.readouterr().err
    assert "no published weights for ['dltest.none']" in err and "dltest.a" in err
    assert cli.main(["download"]) == 2
    assert "name at least one model" in capsys.readouterr().err
    assert cli.main(["download", "dltest.a", "--all"]) == 2
    # info shows the card and whether the file is cached
    assert cli.main(["info", "dltest.a"]) == 0
    out = capsys.readouterr().out
    assert "licence: Apache-2.0" in out and "training data: synthetic test data (licence: CC0-1.0)" in out
    assert "measured: nme 0.1" in out and f"cache: {hub_env / 'dl_a.weights.h5'} (present)" in out
    assert cli.main(["list", "dltest*"]) == 0
    rows = {line.split()[0]: line.split()[-1] for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows == {"dltest.a": "yes", "dltest.b": "yes", "dltest.none": "-"}


def test_download_all_goes_on_after_a_failure(zoo_with_weights, server, hub_env, capsys):
    server.httpd.routes["/z/dl_b.weights.h5"].status = 404
    assert cli.main(["download", "--all", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "1 of 2 downloads failed (1 done): dltest.b: could not download dl_b.weights.h5" in err and "HTTP 404" in err
    assert files(hub_env) == ["dl_a.weights.h5"]
    with pytest.raises(WeightsUnavailableError, match="HTTP 404") as e:  # one name: its own error
        hub.download(["dltest.b"], progress=False)
    assert e.value.cache_path == hub_env / "dl_b.weights.h5"

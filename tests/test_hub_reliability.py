"""Issue 22, items 4 and 5: downloads end, settings are checked, and a cache that cannot be written says so.

A real HTTP server on 127.0.0.1 (tests/hub_server.py) truncates, stalls and lies about Content-Length while ignoring
``Range``; full disks are real kernel errors (``/dev/full`` behind the partial file, a file-size limit in a child
process); read-only and file-instead-of-folder caches are real folders and files."""

import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hub_server import Route, sha
from test_hub import DATA, files, hub_env, server  # noqa: F401  (fixtures)

from lmkzoo import cli, hub
from lmkzoo.errors import InvalidArgumentError, StorageError, WeightsUnavailableError

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------- item 4: bounded retries
@pytest.mark.parametrize("misbehaviour", [
    # sends half the file and closes, though its Content-Length announced all of it; ignores Range
    dict(drop_first=10**6, range_ok=False),
    # sends half the file, then goes silent; ignores Range
    dict(stall_after=len(DATA) // 2, range_ok=False),
])
def test_a_server_that_never_gets_further_fails_within_the_retry_count(server, hub_env, monkeypatch, misbehaviour):
    monkeypatch.setenv("LMKZOO_HUB_TIMEOUT", "0.3")
    monkeypatch.setenv("LMKZOO_HUB_MAX_TIME", "60")
    route = Route(data=DATA, **misbehaviour)
    url = server.add("/half.weights.h5", route)
    t0 = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match=r"\(3 attempts\)"):
        hub.fetch(url, sha(DATA), progress=False)
    # before the fix every attempt "made progress" (from byte 0 again) and the count restarted until the time limit
    assert len(route.requests) == 3 and time.monotonic() - t0 < 20
    assert all(r is None or r.startswith("bytes=") for r in route.requests)


def test_a_server_that_gets_further_each_time_is_followed_to_the_end(server, hub_env, monkeypatch):
    """Real progress still renews the count: 5 drops (each resumed with Range) with a retry count of 3."""
    route = Route(data=DATA, drop_first=5)
    url = server.add("/resumable.weights.h5", route)
    assert hub.fetch(url, sha(DATA), progress=False).read_bytes() == DATA
    assert len(route.requests) == 6


@pytest.mark.parametrize("name,value", [
    ("LMKZOO_HUB_MAX_TIME", "nan"), ("LMKZOO_HUB_MAX_TIME", "inf"), ("LMKZOO_HUB_MAX_TIME", "-1"),
    ("LMKZOO_HUB_MAX_TIME", "0"), ("LMKZOO_HUB_TIMEOUT", "NaN"), ("LMKZOO_HUB_TIMEOUT", "-5"),
    ("LMKZOO_HUB_TIMEOUT", "1e999"), ("LMKZOO_HUB_RETRIES", "0"), ("LMKZOO_HUB_RETRIES", "-2"),
    ("LMKZOO_HUB_RETRIES", "2.5"), ("LMKZOO_HUB_RETRIES", "nan"), ("LMKZOO_HUB_RETRIES", "many"),
])
def test_every_number_in_the_environment_is_checked(server, hub_env, monkeypatch, name, value):
    url = server.add("/s.weights.h5", Route(data=DATA))
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidArgumentError, match=f"{name} must be .*; got {value!r}"):
        hub.fetch(url, sha(DATA), progress=False)


# ------------------------------------------------------------------------------ item 5: full or read-only disks
def test_a_full_disk_names_the_file_and_leaves_no_partial(server, hub_env):
    """The partial file is a link to /dev/full: every write fails with the kernel's ENOSPC."""
    url = server.add("/big.weights.h5", Route(data=DATA))
    hub_env.mkdir(parents=True)
    part = hub_env / "big.weights.h5.part"
    part.symlink_to("/dev/full")
    with pytest.raises(StorageError, match=r"cannot write the download .*big\.weights\.h5\.part: No space left on "
                                           r"device \[errno 28\]") as info:
        hub.fetch(url, sha(DATA), progress=False)
    assert info.value.errno == 28 and isinstance(info.value, OSError)
    assert files(hub_env) == []  # no .part (nor .lock) for the next call to trip on


def test_a_file_size_limit_mid_download_is_a_storage_error(server, tmp_path):
    """A real EFBIG in a child process whose file-size limit (RLIMIT_FSIZE) is below the file's size."""
    url = server.add("/limited.weights.h5", Route(data=DATA))
    code = textwrap.dedent(f"""
        import os, sys
        from lmkzoo import hub
        from lmkzoo.errors import StorageError
        try:
            hub.fetch({url!r}, {sha(DATA)!r}, progress=False)
        except StorageError as e:
            print("StorageError", e.errno, e)
            print(sorted(os.listdir(hub.weights_dir())))
    """)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(DATA) // 3, len(DATA) // 3))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "LMKZOO_HOME": str(tmp_path / "home"), "no_proxy": "127.0.0.1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, preexec_fn=limit,
                       timeout=120)
    assert r.stdout.startswith("StorageError 27 cannot write the download"), r.stdout + r.stderr
    assert "limited.weights.h5.part" in r.stdout and r.stdout.strip().endswith("[]")


def test_a_read_only_cache_names_the_folder(server, hub_env, monkeypatch):
    """A folder without write bits; root ignores them, so there the hub's os.access check is also forced false."""
    url = server.add("/ro.weights.h5", Route(data=DATA))
    hub_env.mkdir(parents=True)
    hub_env.chmod(0o555)
    if os.geteuid() == 0:
        monkeypatch.setattr(hub.cache.os, "access", lambda *a, **k: False)
    try:
        with pytest.raises(StorageError, match=f"cannot use the cache folder {hub_env}: .*LMKZOO_HOME"):
            hub.fetch(url, sha(DATA), progress=False)
    finally:
        hub_env.chmod(0o755)


def test_a_read_only_cache_as_root_is_still_a_clear_error(server, hub_env, monkeypatch):
    """Root ignores permission bits: a read-only check through os.access (forced false) gives the same error."""
    url = server.add("/ro2.weights.h5", Route(data=DATA))
    monkeypatch.setattr(hub.cache.os, "access", lambda *a, **k: False)
    with pytest.raises(StorageError, match=f"cannot use the cache folder {hub_env}: Permission denied"):
        hub.fetch(url, sha(DATA), progress=False)


@pytest.mark.parametrize("where", ["home", "weights"])
def test_a_file_where_the_cache_folder_must_be(server, hub_env, monkeypatch, tmp_path, where):
    url = server.add("/f.weights.h5", Route(data=DATA))
    home = tmp_path / "home"
    target = home if where == "home" else home / "weights"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("not a folder")
    with pytest.raises(StorageError, match="cannot use the cache folder .*: (File exists|Not a directory)"):
        hub.fetch(url, sha(DATA), progress=False)
    assert target.read_text() == "not a folder"


def test_cli_download_into_a_file_prints_one_line(server, hub_env, monkeypatch, tmp_path, capsys):
    """The same errors through ``lmkzoo``: one line, status 2 (here ``download --dest`` that is a file)."""
    from hub_server import card, write_zoo

    url = server.add("/cli.weights.h5", Route(data=DATA))
    arch = {"family": "pipnet", "builder": {"backbone": "resnet18"},
            "input": {"size": [64, 64], "mean": [0.5] * 3, "std": [0.5] * 3, "crop": {"policy": "box", "scale": 1.0}},
            "tags": {"t": {"scheme": "aflw19", "weights": card(url, DATA)}}}
    write_zoo(monkeypatch, tmp_path, {"clitest": arch})
    dest = tmp_path / "dest"
    dest.write_text("a file")
    assert cli.main(["download", "clitest.t", "--dest", str(dest), "--quiet"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("lmkzoo download: error: cannot use the cache folder"), err

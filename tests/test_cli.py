import json
import os
import subprocess
import sys

from lmkzoo import cli


def test_help_lists_commands(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "list" in out and "info" in out and "example" in out


def test_list_and_info(capsys):
    assert cli.main(["list", "pipnet_r18*"]) == 0
    out = capsys.readouterr().out
    assert "pipnet_r18.wflw" in out and "wflw98" in out and "256x256" in out
    assert cli.main(["list", "pipnet_r18", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["name"] for d in data} == {"pipnet_r18.wflw", "pipnet_r18.300w", "pipnet_r18.cofw", "pipnet_r18.aflw"}
    assert cli.main(["info", "pipnet_r18.300w"]) == 0
    out = capsys.readouterr().out
    assert "ibug68" in out and "0.485" in out and "weights:" in out


def test_user_error_exits_2_without_traceback():
    r = subprocess.run([sys.executable, "-m", "lmkzoo.cli", "info", "pipnet_r19"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "unknown model 'pipnet_r19'" in r.stderr and "Traceback" not in r.stderr


def test_console_script_is_installed_and_fast_without_tensorflow():
    code = "import sys, lmkzoo.cli; lmkzoo.cli.main(['list']); print('tensorflow' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().endswith("False")


def test_closed_pipe_ends_quietly():
    """``lmkzoo list | head -1``: the reader leaves early; lmkzoo stops without a BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "lmkzoo.cli", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            bufsize=0)
    proc.stdout.close()  # before lmkzoo has written anything (it is still importing): its first write fails
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 141) and "Traceback" not in err and "BrokenPipe" not in err


def test_the_command_starts_tensorflow_with_the_pooling_cpu_allocator(monkeypatch, capsys):
    """``lmkzoo`` sets lmkzoo.tf_env's settings before a command imports TensorFlow (BFC CPU allocator: training
    twice as fast on 2 cores), and keeps a value the user set."""
    from lmkzoo.tf_env import TF_PROCESS_SETTINGS

    assert TF_PROCESS_SETTINGS == {"TF_CPU_ALLOCATOR_USE_BFC": "true"}
    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC", raising=False)
    assert cli.main(["list", "pipnet_lite"]) == 0
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "true"
    monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", "false")
    assert cli.main(["list", "pipnet_lite"]) == 0
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "false"

"""``lmkzoo bench``: one real (tiny) run through every measurement; numbers are checked for sanity, not speed
(speed goals live in benchmarks/README.md, measured on a quiet machine)."""

import subprocess
import sys

import pytest

from lmkzoo.bench import format_markdown, gemm_peak_gflops, run_bench
from lmkzoo.errors import InvalidArgumentError, UnknownModelError


@pytest.mark.slow
def test_bench_measures_every_stage_of_a_small_pipnet():
    res = run_bench(["pipnet_r18.300w"], threads=(1,), runtimes=("keras", "tflite"), quantize=("float16",),
                    batches=(1, 2), warmup=1, iters=3, size=64)
    run = res["runs"][0]
    assert run["threads"] == 1 and run["peak_gflops"] > 0 and res["machine"]["cpu_count"] >= 1
    mod = run["models"][0]
    assert mod["model"] == "pipnet_r18.300w" and mod["input"] == [64, 64] and mod["params"] > 1e6 and mod["gmacs"] > 0
    assert set(mod["runtimes"]) == {"keras", "tflite", "tflite-float16"}
    assert mod["files_mb"]["tflite-float16"] < 0.6 * mod["files_mb"]["tflite"]
    for rt, r in mod["runtimes"].items():
        for b in (1, 2):
            e = r[f"batch{b}"]
            assert e["graph"]["median_ms"] > 0 and e["roofline_ms"] > 0 and e["vs_roofline"] > 0, rt
            assert 0 <= e["decode_share"] < 1
        assert r["predict_one_face"]["median_ms"] > 0 and r["predict_vs_graph"] > 0
        assert r["predict_with_detector_250px"]["median_ms"] > r["detector_250px"]["median_ms"] * 0.5
    assert mod["pipeline"]["images_per_s"] > 0 and mod["train_step"]["images_per_s"] > 0
    assert mod["pytorch_eager"]["batch1"]["median_ms"] > 0  # the eager PyTorch PIPNet-R18 reference
    md = format_markdown(res)
    assert "| pipnet_r18.300w | tflite-float16 |" in md and "GEMM peak" in md


def test_gemm_peak_is_positive_and_bad_input():
    assert gemm_peak_gflops(n=128, repeats=2) > 0
    with pytest.raises(UnknownModelError):
        run_bench(["no_such_model"])
    with pytest.raises(InvalidArgumentError, match="threads"):
        run_bench(["pipnet_r18"], threads=(0,))


def test_cli_bench_help_and_bad_lists():
    r = subprocess.run([sys.executable, "-m", "lmkzoo.cli", "bench", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--quantize" in r.stdout and "example" in r.stdout
    r = subprocess.run([sys.executable, "-m", "lmkzoo.cli", "bench", "pipnet_r18", "--batch", "1,x"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "comma-separated list of a positive integer" in r.stderr

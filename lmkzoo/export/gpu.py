"""Proof of GPU-delegate compatibility: compile a ``.tflite`` on LiteRT's GPU accelerator *alone*.

TensorFlow's compatibility analyzer and the converter's GPU target spec accept ops that GPUs reject, so
lmkzoo checks on a real accelerator instead: LiteRT's WebGPU accelerator (``ai-edge-litert``), which on a
machine without a GPU runs on Mesa's software Vulkan driver (lavapipe, Mesa >= 25; docs/litert_gpu.md).

* Compiling with ``HardwareAccelerator.GPU`` and no CPU fails when any op would fall back to the CPU; the
  accelerator then names the ops on stderr (fd 2, below Python's logging). :func:`check_gpu` captures that
  report by recompiling with GPU|CPU, and lists ``(op, reason)`` pairs.
* A compiled model runs on the GPU and on the CPU (XNNPACK) with the same inputs, so the caller can compare:
  ``enforce_f32=True`` computes in fp32 (errors ~1e-6); the default fp16 mode is what phones run.

The WebGPU accelerator crashes (SIGSEGV) in a process that has loaded TensorFlow (both bring their own
LLVM), so :func:`check_gpu` runs the check in a fresh interpreter (``python -m lmkzoo.export.gpu``) that
imports no TensorFlow; this module imports none either.

Shader compilation takes up to ~30 s per model on a cold Mesa cache (``~/.cache/mesa_shader_cache_db``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from lmkzoo.errors import InvalidArgumentError

__all__ = ["GpuReport", "check_gpu", "run_compiled", "cpu_compiled"]

_UNSUPPORTED = re.compile(r"^([A-Z][A-Z0-9_]+): (.+)$")
_COUNTS = re.compile(r"(\d+) operations will run on the GPU, and the remaining (\d+) operations will run on the CPU")


@dataclasses.dataclass
class GpuReport:
    """What the GPU accelerator made of a model.

    ``fully_accelerated``: compiled with the GPU alone. ``unsupported``: ``(op, reason)`` for each op the
    accelerator would leave to the CPU; ``gpu_ops`` / ``cpu_ops`` its counts line; ``adapter``: the Vulkan
    device it used; ``log``: the accelerator's stderr.
    """

    path: str
    fully_accelerated: bool
    unsupported: list[tuple[str, str]]
    gpu_ops: int | None
    cpu_ops: int | None
    adapter: str | None
    log: str
    gpu_outputs: dict | None = None
    cpu_outputs: dict | None = None
    seconds: float | None = None

    def summary(self) -> str:
        if self.fully_accelerated:
            return f"{self.path}: every op on the GPU ({self.adapter})"
        ops = ", ".join(f"{op} ({why})" for op, why in self.unsupported) or "see the log"
        return f"{self.path}: {self.cpu_ops} op(s) would run on the CPU: {ops}"


@contextlib.contextmanager
def _stderr_to(path: Path):
    """Point the process' fd 2 (where the native accelerator writes) at ``path`` for the duration."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as f:
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _options(gpu_only: bool, enforce_f32: bool):
    from ai_edge_litert.gpu_options import GpuOptions
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import Options

    hw = HardwareAccelerator.GPU if gpu_only else HardwareAccelerator.GPU | HardwareAccelerator.CPU
    return Options(hardware_accelerators=hw, gpu_options=GpuOptions(enforce_f32=enforce_f32))


def _compile(path, *, gpu_only: bool, enforce_f32: bool):
    """``(compiled model or None, error or None, stderr text)``."""
    from ai_edge_litert.compiled_model import CompiledModel

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "stderr.txt"
        model, error = None, None
        with _stderr_to(log):
            try:
                model = CompiledModel.from_file(str(path), options=_options(gpu_only, enforce_f32))
            except RuntimeError as e:
                error = str(e)
        return model, error, log.read_text(errors="replace")


def _parse(log: str):
    unsupported, counts, in_list = [], (None, None), False
    adapter = None
    for line in log.splitlines():
        line = line.strip()
        if "not supported by GPU delegate" in line:
            in_list = True
            continue
        m = _COUNTS.search(line)
        if m:
            counts, in_list = (int(m.group(1)), int(m.group(2))), False
            continue
        if in_list:
            u = _UNSUPPORTED.match(line)
            if u and (u.group(1), u.group(2)) not in unsupported:
                unsupported.append((u.group(1), u.group(2)))
        if "Selected adapter:" in line:
            adapter = line.split("Selected adapter:", 1)[1].strip()
    return unsupported, counts, adapter


def _check_in_process(path, *, enforce_f32: bool = True):
    """Compile ``path`` on the GPU accelerator alone. Returns ``(GpuReport, compiled model or None)``; the model
    (when it compiled) runs on the GPU only (:func:`run_compiled`)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError(f"no TFLite file at {path}")
    model, error, log = _compile(path, gpu_only=True, enforce_f32=enforce_f32)
    if model is not None:
        unsupported, (gpu_ops, cpu_ops), adapter = _parse(log)
        return GpuReport(str(path), True, unsupported, gpu_ops, cpu_ops, adapter, log), model
    if "No adapters found" in log:
        return GpuReport(str(path), False, [], None, None, None, log), None
    # recompile with the CPU allowed: the accelerator then lists the ops it leaves to the CPU
    _, _, log2 = _compile(path, gpu_only=False, enforce_f32=enforce_f32)
    unsupported, (gpu_ops, cpu_ops), adapter = _parse(log + "\n" + log2)
    return GpuReport(str(path), False, unsupported, gpu_ops, cpu_ops, adapter, log + "\n" + log2), None


def run_compiled(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a LiteRT ``CompiledModel`` (signature ``serving_default``) on numpy inputs."""
    sig = model.get_signature_list()["serving_default"]
    index = model.get_signature_index("serving_default")
    inputs = model.create_input_buffers(index)
    outputs = model.create_output_buffers(index)
    details_in = model.get_input_tensor_details("serving_default")
    for name, buf in zip(sig["inputs"], inputs):
        want = details_in[name]
        arr = np.ascontiguousarray(feeds[name], dtype=np.dtype(want["dtype"]))
        if list(arr.shape) != list(want["shape"]):
            raise InvalidArgumentError(f"input {name!r} must have shape {want['shape']}; got {list(arr.shape)}")
        buf.write(arr)
    model.run_by_index(index, inputs, outputs)
    details_out = model.get_output_tensor_details("serving_default")
    out = {}
    for name, buf in zip(sig["outputs"], outputs):
        d = details_out[name]
        n = int(np.prod(d["shape"]))
        out[name] = np.asarray(buf.read(n, np.dtype(d["dtype"]))).reshape(d["shape"])
    return out


def cpu_compiled(path):
    """The same file compiled for LiteRT's CPU accelerator (XNNPACK), for comparisons with :func:`run_compiled`."""
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import Options

    return CompiledModel.from_file(str(path), options=Options(hardware_accelerators=HardwareAccelerator.CPU))


def check_gpu(path, *, inputs: dict | None = None, enforce_f32: bool = True, timeout: float = 900) -> GpuReport:
    """Compile ``path`` on LiteRT's GPU accelerator alone, in a fresh process, and (when it compiles and
    ``inputs`` are given) run ``inputs`` (``{input name: array}`` matching the model's fixed shapes) on the GPU
    and on the CPU; the outputs come back in ``gpu_outputs`` / ``cpu_outputs``.

    Raises ``RuntimeError`` when the accelerator finds no GPU adapter (no Vulkan driver), naming the fix.
    """
    import json
    import subprocess
    import sys
    import time

    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError(f"no TFLite file at {path}")
    with tempfile.TemporaryDirectory(prefix="lmkzoo-gpu-") as tmp:
        cmd = [sys.executable, "-m", "lmkzoo.export.gpu", str(path), "--report", str(Path(tmp) / "report.json")]
        if inputs is not None:
            np.savez(Path(tmp) / "inputs.npz", **inputs)
            cmd += ["--inputs", str(Path(tmp) / "inputs.npz"), "--outputs", str(Path(tmp) / "outputs.npz")]
        if not enforce_f32:
            cmd.append("--fp16")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        seconds = time.perf_counter() - t0
        report_file = Path(tmp) / "report.json"
        if proc.returncode != 0 or not report_file.exists():
            raise RuntimeError(f"the GPU check of {path} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        r = json.loads(report_file.read_text())
        if r.get("no_adapter"):
            raise RuntimeError("LiteRT's GPU accelerator found no Vulkan adapter: install Mesa >= 25 (lavapipe; "
                               "Debian bookworm-backports' mesa-vulkan-drivers), see lmkzoo's docs/litert_gpu.md\n"
                               + r["log"][-1500:])
        report = GpuReport(str(path), r["fully_accelerated"], [tuple(u) for u in r["unsupported"]], r["gpu_ops"],
                           r["cpu_ops"], r["adapter"], r["log"], seconds=seconds)
        if inputs is not None and report.fully_accelerated:
            with np.load(Path(tmp) / "outputs.npz") as z:
                report.gpu_outputs = {k[4:]: z[k] for k in z.files if k.startswith("gpu/")}
                report.cpu_outputs = {k[4:]: z[k] for k in z.files if k.startswith("cpu/")}
        return report


def main(argv=None) -> int:
    """Child process of :func:`check_gpu` (no TensorFlow here)."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m lmkzoo.export.gpu", description="LiteRT GPU-accelerator check")
    ap.add_argument("model")
    ap.add_argument("--report", required=True)
    ap.add_argument("--inputs")
    ap.add_argument("--outputs")
    ap.add_argument("--fp16", action="store_true", help="the accelerator's default fp16 precision (not enforce_f32)")
    args = ap.parse_args(argv)
    report, model = _check_in_process(args.model, enforce_f32=not args.fp16)
    out = {k: getattr(report, k) for k in ("fully_accelerated", "unsupported", "gpu_ops", "cpu_ops", "adapter", "log")}
    out["no_adapter"] = "No adapters found" in report.log
    if model is not None and args.inputs:
        with np.load(args.inputs) as z:
            feeds = {k: z[k] for k in z.files}
        gpu = run_compiled(model, feeds)
        cpu = run_compiled(cpu_compiled(args.model), feeds)
        np.savez(args.outputs, **{f"gpu/{k}": v for k, v in gpu.items()}, **{f"cpu/{k}": v for k, v in cpu.items()})
    Path(args.report).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

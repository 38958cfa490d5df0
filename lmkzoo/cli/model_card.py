"""A model card as ``lmkzoo info`` prints it: the spec, its weights and cache state, and its compute."""

from __future__ import annotations


def flops_report(spec):
    """:class:`lmkzoo.flops.MacsReport` of a randomly initialised network for ``spec``."""
    from lmkzoo.flops import count_macs
    from lmkzoo.inference.loader import build_network

    return count_macs(build_network(spec))


def format_compute(spec, report) -> str:
    """Compute lines of a model card: MACs (the unit papers print as "GFLOPs"), parameters, float32 size."""
    w, h = spec.input_size
    lines = [
        f"  compute at {w}x{h}: {report.gmacs:.3f} GMACs (multiply-adds; {report.gflops:.3f} GFLOPs = 2 x MACs; "
        "BatchNorm, biases and activations not counted)",
        f"  size: {report.params:,} parameters ({report.trainable_params:,} trainable), {report.size_mb:.2f} MiB as float32",
    ]
    pm = spec.paper_metrics
    if "gflops" in pm or "size_mb" in pm:
        paper = []
        if "gflops" in pm:
            paper.append(f"{pm['gflops']} GFLOPS (MACs)")
        if "size_mb" in pm:
            paper.append(f"{pm['size_mb']} MB")
        lines.append(f"  paper: {', '.join(paper)}")
    return "\n".join(lines)


def format_model_card(spec) -> str:
    """Human-readable model card of a :class:`~lmkzoo.registry.ModelSpec`."""
    lines = [f"{spec.name}  ({spec.family}, scheme {spec.scheme})"]
    if spec.description:
        lines.append(f"  {spec.description}")
    lines.append(f"  input: {spec.input_size[0]}x{spec.input_size[1]} RGB, mean {list(spec.mean)}, std {list(spec.std)}")
    lines.append(f"  crop: {dict(spec.crop)}")
    lines.append(f"  builder: {dict(spec.builder)}")
    if spec.recipe:
        lines.append(f"  recipe: {dict(spec.recipe)}")
    if spec.paper:
        lines.append(f"  paper: {spec.paper.get('title', '')} {spec.paper.get('url', '')}".rstrip())
    if spec.paper_metrics:
        lines.append(f"  paper metrics: {dict(spec.paper_metrics)}")
    w = spec.weights
    if w is None:
        lines.append("  weights: none published (lmkzoo.load(name, weights=None) builds it randomly initialised)")
    else:
        lines.append(f"  weights: {w.file or w.url}")
        for m in w.mirrors:
            lines.append(f"    mirror: {m}")
        lines.append(f"    sha256 {w.sha256}" + (f", {w.size} bytes" if w.size else "") + f", format {w.format}")
        lines.append(f"    licence: {w.license}")
        lines.append(f"    training data: {w.training_data} (licence: {w.data_license or 'not stated'})")
        lines.append(f"    made by: {w.made_by}")
        if w.source:
            lines.append(f"    converted from: {w.source}")
        if w.recipe:
            lines.append(f"    recipe: {dict(w.recipe)}")
        if w.metrics:
            lines.append("    measured: " + ", ".join(f"{k} {v}" for k, v in w.metrics.items()))
        if w.url:
            from lmkzoo import hub

            cached = hub.weights_dir() / w.filename
            state = "present" if cached.is_file() else f"not downloaded yet (lmkzoo download {spec.name})"
            lines.append(f"    cache: {cached} ({state})")
    if spec.notes:
        lines.append(f"  notes: {spec.notes}")
    return "\n".join(lines)

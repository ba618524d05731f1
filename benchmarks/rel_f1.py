"""rel-f1: scratch vs probe vs pretrained-and-fine-tuned on driver-dnf, driver-top3 and
driver-position (RelBench's entity tasks), 5 seeds.

    RDLVIZ_F1_SOURCE=../shared/data/f1db python benchmarks/rel_f1.py
    python benchmarks/rel_f1.py --seeds 0 1 --epochs 5          # a smaller run
    python benchmarks/rel_f1.py --tasks driver-circuit-compete  # the link task (MAP@10)

The link task is not in the default list: it costs about as much again as the three
entity tasks together (~17 minutes a seed at the budget of docs/protocol.md).

Reference test numbers, as published: RelBench GNN 72.6 / 75.5 / 4.022; the authors'
ResNet-SAGE scratch / pretrained+fine-tuned 77.8 / 76.8, 85.2 / 79.9, 3.871 / 3.469.
Writes benchmarks/results/rel-f1.json and rel-f1.md.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from protocol import cli  # noqa: E402

if __name__ == "__main__":
    cli("rel-f1", ["driver-dnf", "driver-top3", "driver-position"], __doc__)

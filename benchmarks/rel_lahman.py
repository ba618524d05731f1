"""rel-lahman: scratch vs probe vs pretrained-and-fine-tuned on player-allstar,
player-hits and team-win-ratio (our season-granular tasks), 5 seeds.

    python benchmarks/rel_lahman.py
    python benchmarks/rel_lahman.py --seeds 0 1 --epochs 5      # a smaller run

No published reference: docs/databases/rel-lahman.md lists simple rule baselines.
Writes benchmarks/results/rel-lahman.json and rel-lahman.md.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from protocol import cli  # noqa: E402

if __name__ == "__main__":
    cli("rel-lahman", ["player-allstar", "player-hits", "team-win-ratio"], __doc__)

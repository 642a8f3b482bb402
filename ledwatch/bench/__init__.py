"""`ledwatch bench <name>`: benchmarks that print ratios against a baseline run alongside,
`ledwatch bench detection`, the labelled benchmark of detection quality, and
`ledwatch bench fleet`, a fleet through the real servers (fleet/).

Absolute times on a shared 2-core machine are noise; a ratio between two code paths
measured in the same process, same data, same minute, is not. The micro-benchmarks
(micro.py) repeat their measurement and report the median. The detection benchmark
(detection/) generates a labelled fleet month, runs it through `ledwatch replay` and
scores the tickets (docs/detection-bench.md). The fleet benchmark (fleet/) starts
Mosquitto and InfluxDB 1.x or VictoriaMetrics, and measures the collector against the
same server's raw write ceiling (docs/performance.md).
"""

from __future__ import annotations

import argparse
import sys

from ledwatch.bench.micro import BENCHES, synthetic_snapshot

__all__ = ["main", "synthetic_snapshot"]


def _micro_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cards", type=int, default=200, help="receiving cards per snapshot")
    parser.add_argument("--snapshots", type=int, default=50, help="snapshots per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the median is reported")


def main(argv: list[str]) -> int:
    from ledwatch.bench.detection.runner import HELP as DETECTION_HELP
    from ledwatch.bench.detection.runner import add_arguments, run
    from ledwatch.bench.fleet import HELP as FLEET_HELP
    from ledwatch.bench.fleet import add_arguments as fleet_arguments
    from ledwatch.bench.fleet import run as fleet_run

    parser = argparse.ArgumentParser(prog="ledwatch bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="name", metavar="name", required=True,
                                help="which benchmark (`ledwatch bench <name> --help`)")
    for name, (_, help_) in sorted(BENCHES.items()):
        _micro_args(sub.add_parser(name, help=help_, description=help_))
    add_arguments(sub.add_parser("detection", help=DETECTION_HELP, description=DETECTION_HELP))
    fleet_arguments(sub.add_parser("fleet", help=FLEET_HELP, description=FLEET_HELP))
    args = parser.parse_args(argv)
    if args.name == "detection":
        return run(args, parser)
    if args.name == "fleet":
        return fleet_run(args, parser)
    if args.cards < 1 or args.snapshots < 1 or args.repeat < 1:
        parser.error("--cards, --snapshots and --repeat must be at least 1")
    func, _ = BENCHES[args.name]
    return func(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Print one table of fused-op speed on the current backend (XDL_BACKEND picks it):
time, GB/s, % of the copy bandwidth measured in this run, and ratios to naive xp and to PyTorch.

    PYTHONPATH=$PWD python benchmarks/report.py            # everything
    PYTHONPATH=$PWD python benchmarks/report.py --quick    # CPU-sized subset
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform

import xdl
from cases import MLP_SHAPES, batchnorm_case, copy_bandwidth, format_table, optimizer_case


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the 100M-parameter and largest BN cases")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    backend = xdl.current_backend()
    xdl.seed(0)
    gpu = backend.device_type == "cuda"
    copy = copy_bandwidth(backend, (1 << 30) if gpu else (1 << 28))
    rows = []
    for n in ([1_000_000, 10_000_000] + ([] if args.quick else [100_000_000])):
        rows += optimizer_case(backend, "adam", n).rows()
    rows += optimizer_case(backend, "adam", shapes=MLP_SHAPES).rows()
    for rule in ("adamw", "sgd", "momentum", "rmsprop"):
        rows += optimizer_case(backend, rule, 10_000_000).rows()
    shapes = [(1024, 1024), (8192, 4096)] + ([] if args.quick else [(65536, 1024)])
    for mode in ("train fwd", "train fwd+bwd", "inference"):
        for n, c in shapes:
            rows += batchnorm_case(backend, mode, n, c).rows()

    device = backend.device_name()
    print(f"# xdl benchmark report — {datetime.date.today()} — backend {backend.name}, device {device}, "
          f"{platform.processor() or platform.machine()}")
    print(f"measured copy bandwidth: {copy.gbps:.0f} GB/s (bytes read + written)\n")
    print(format_table(rows, copy))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": str(datetime.date.today()), "device": device, "copy_gbps": copy.gbps,
                       "rows": [r.__dict__ | {"gbps": r.gbps} for r in rows]}, f, indent=1)


if __name__ == "__main__":
    main()

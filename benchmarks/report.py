"""Print one table of fused-op speed on the current backend (XDL_BACKEND picks it): time, GB/s,
% of the copy bandwidth measured in this run, and ratios to naive xp and to PyTorch. The same as
``xdl bench kernels``; the cases live in `xdl.bench.kernels`.

    PYTHONPATH=$PWD python benchmarks/report.py            # everything
    PYTHONPATH=$PWD python benchmarks/report.py --quick    # CPU-sized subset
"""

from __future__ import annotations

import argparse

from xdl.bench.kernels import report
from xdl.hostmemory import keep_freed_memory

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the 100M-parameter and largest BN cases")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    keep_freed_memory()  # as the xdl command does
    report(args.quick, args.json, json_flag="--json")  # a path it cannot write: refused before any case

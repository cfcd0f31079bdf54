"""Print one table of fused-op speed on the current backend (XDL_BACKEND picks it): time, GB/s,
% of the bandwidth of a copy of each case's own bytes measured in this run, and ratios to naive xp and to
PyTorch; then the train step's table (with its share of a plain matmul's FLOP rate). The same as
``xdl bench kernels``; the cases live in `xdl.bench.kernels`.

    PYTHONPATH=$PWD python benchmarks/report.py            # everything
    PYTHONPATH=$PWD python benchmarks/report.py --quick    # CPU-sized subset

``--json``'s path and the backend are checked before any work: either refused is a usage error.
"""

from __future__ import annotations

import argparse

from xdl.bench.environment import checked_backend
from xdl.bench.kernels import report
from xdl.files import check_output_file
from xdl.hostmemory import keep_freed_memory


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="skip the 100M-parameter case, the 65536×1024 cases and the B=4096 train step")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    # before any work: a path it cannot write, or a backend this machine lacks (XDL_BACKEND=cupy without
    # a GPU), is a usage error of one line naming it, not a traceback
    if args.json is not None:
        try:
            check_output_file(args.json, "--json")
        except (ValueError, OSError) as e:
            parser.error(str(e))
    checked_backend(parser)
    keep_freed_memory()  # as the xdl command does
    report(args.quick, args.json, json_flag="--json")


if __name__ == "__main__":
    main()

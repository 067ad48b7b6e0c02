#!/usr/bin/env python3
"""Wall time at real network distance, time to verdict against broken servers, and detection power:
build-conformance against plain schemathesis. The measuring is done by the `conformance_bench` package
beside this file (one module per thing measured, see its docstring); this is its command line.

    python bench/run_bench.py                    # everything (about an hour on 2 cores)
    python bench/run_bench.py --quick-bench      # smoke: a few minutes
    python bench/run_bench.py --profiles standard --latencies none --no-embedded --faults all   # the fault sweep
    python bench/run_bench.py --render bench/results/latest.json [--compare bench/results/fault-sweep-before.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conformance_bench.main import main

if __name__ == "__main__":
    sys.exit(main())

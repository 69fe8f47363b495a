"""Run the reliability tests and write the figures they measure to a results file.

The tests are the measurement: memory growth over twenty live trials, concurrent writers'
throughput, fuzzed env steps, the number of hostile inputs. Each test reports its figures
(``support.report_figure``) into a file this script names; the script then writes them,
with the tests' outcome, to benchmarks/results/reliability.json.

    python -m benchmarks.reliability
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import write_result

REPO = Path(__file__).resolve().parents[1]
SUITES = ["tests/reliability", "tests/test_env_fuzz.py"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", default=SUITES,
                        help="test files or folders (default: the reliability suite)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        figures_file = Path(scratch) / "figures.jsonl"
        env = {**os.environ, "LEGAL_HPO_FIGURES": str(figures_file)}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.paths],
                              cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        lines = figures_file.read_text().splitlines() if figures_file.exists() else []
    figures: dict = {}
    for line in lines:
        row = json.loads(line)
        figures[row["name"]] = row["value"]
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    fuzz = {k: v for k, v in figures.items() if k.startswith("fuzz.")}
    payload = {
        "command": "python -m benchmarks.reliability " + " ".join(argv if argv is not None else sys.argv[1:]),
        "tests": {"paths": args.paths, "passed": done.returncode == 0, "summary": summary, "seconds": round(seconds)},
        "figures": {**{k: v for k, v in figures.items() if not k.startswith("fuzz.")},
                    "fuzzed_env_trials": sum(fuzz.values()), "fuzz": fuzz},
    }
    write_result("reliability", payload)
    if done.returncode != 0:
        print(done.stdout[-3000:], file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()

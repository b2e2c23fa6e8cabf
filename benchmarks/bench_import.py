"""Cold start: what importing data_aggregator costs, against importing boto3 and pydantic.

Run (prints one table; about a minute)::

    .venv/bin/python benchmarks/bench_import.py              # 11 runs per statement
    .venv/bin/python benchmarks/bench_import.py --runs 21 --top 15

Every measurement is a fresh interpreter running ``python -c "<statement>"``, as a Lambda
cold start does, with every module's compiled bytecode in a private cache (as ``pip
install`` leaves it; ``--bytecode none`` compiles everything on every run instead). Two
figures per statement, each the median over ``--runs`` runs, the statements interleaved
run by run so that a busy machine slows them all alike:

* **wall ms**: the whole process, start-up included (``time.perf_counter`` around it);
* **import ms**: the sum of the top-level cumulative times ``python -X importtime``
  reports (in separate runs, since ``-X importtime`` has a cost of its own).

Deltas are against the baseline ``import boto3, pydantic``. The target (issue #5):
importing the library costs no more than the baseline plus 30 ms. The ``handler`` row is
what a Lambda module loads before its first event: the processor plus everything its
default construction imports (boto3, the DynamoDB store, the S3 manifest locator).

``import pydantic`` alone loads little (pydantic 2 imports lazily); the row
``baseline + pydantic models`` builds one trivial model, which loads the model machinery
any code using pydantic pays. ``--top N`` lists the N modules of the handler row that this
row does not load, by median self time: where the library's own cost goes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

BASELINE = "baseline"
HANDLER = "handler"
MODELS = "baseline + pydantic models"
TARGET_MS = 30.0

#: (label, statement), in table order.
STATEMENTS: tuple[tuple[str, str], ...] = (
    ("interpreter", "pass"),
    (BASELINE, "import boto3, pydantic"),
    (MODELS, "import boto3, pydantic; pydantic.create_model('M', x=(int, 0))"),
    ("package", "import data_aggregator"),
    ("processor", "from data_aggregator import ReusableProcessor"),
    ("processor + boto3", "import boto3; from data_aggregator import ReusableProcessor"),
    (
        HANDLER,
        "import boto3, botocore.config; "
        "from data_aggregator import ReusableProcessor, S3Client, DynamoDBIdempotencyStore; "
        "from data_aggregator.idempotency import S3ManifestBundleLocator",
    ),
)
#: Rows that import the library, checked against the target.
CHECKED = ("package", "processor", "processor + boto3", HANDLER)


def bytecode_env(mode: str, cache_dir: str) -> dict[str, str]:
    """The subprocesses' environment for a bytecode ``mode``.

    ``cached``: every module's bytecode is written to and read from a private
    ``PYTHONPYCACHEPREFIX`` (filled by the warm-up run), whatever the caller's
    ``PYTHONDONTWRITEBYTECODE`` says: what a deployment built by ``pip install`` (which
    compiles) loads. ``none``: no bytecode anywhere, every module compiled from source on
    every run: a deployment package built without ``__pycache__``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPYCACHEPREFIX"] = cache_dir
    if mode == "none":
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def wall_ms(python: str, statement: str, env: dict[str, str]) -> float:
    """Milliseconds for a fresh interpreter to run ``statement`` and exit."""
    started = time.perf_counter()
    subprocess.run([python, "-c", statement], check=True, env=env)  # noqa: S603
    return (time.perf_counter() - started) * 1000


def import_profile(python: str, statement: str, env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """``-X importtime`` of ``statement``: module -> (self µs, cumulative µs or -1).

    The cumulative figure is kept for top-level imports only (-1 for nested ones), so that
    summing it counts every module once.
    """
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [python, "-X", "importtime", "-c", statement],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    profile: dict[str, tuple[int, int]] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip(" "))) // 2
        # Top-level entries (depth 0) carry the cumulative figure; others only their own.
        profile[name.strip()] = (int(self_us), int(cumulative_us) if depth == 0 else -1)
    return profile


def total_import_ms(profile: dict[str, tuple[int, int]]) -> float:
    """Sum of the top-level cumulative times, in milliseconds."""
    return sum(cumulative for _, cumulative in profile.values() if cumulative >= 0) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="runs per statement (>= 7)")
    parser.add_argument("--python", default=sys.executable, help="interpreter to measure")
    parser.add_argument("--top", type=int, default=12, help="heaviest added modules to list")
    parser.add_argument(
        "--bytecode",
        choices=("cached", "none"),
        default="cached",
        help="cached: compiled bytecode, as pip installs it (default); none: compile every run",
    )
    args = parser.parse_args()
    if args.runs < 7:
        parser.error("--runs must be at least 7")
    with tempfile.TemporaryDirectory(prefix="bench-import-pycache-") as cache_dir:
        measure(args, bytecode_env(args.bytecode, cache_dir))


def measure(args: argparse.Namespace, env: dict[str, str]) -> None:
    """Run every statement ``args.runs`` times, interleaved; print the tables."""
    walls: dict[str, list[float]] = defaultdict(list)
    imports: dict[str, list[float]] = defaultdict(list)
    self_times: dict[str, list[int]] = defaultdict(list)
    baseline_modules: set[str] = set()
    for _label, statement in STATEMENTS:  # warm-up: bytecode caches, the OS page cache
        wall_ms(args.python, statement, env)
    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}", end="\r", file=sys.stderr, flush=True)
        for label, statement in STATEMENTS:
            walls[label].append(wall_ms(args.python, statement, env))
            profile = import_profile(args.python, statement, env)
            imports[label].append(total_import_ms(profile))
            if label == MODELS:
                baseline_modules |= set(profile)
            elif label == HANDLER:
                for module, (self_us, _) in profile.items():
                    self_times[module].append(self_us)
    print(" " * 30, end="\r", file=sys.stderr)

    wall = {label: statistics.median(values) for label, values in walls.items()}
    imp = {label: statistics.median(values) for label, values in imports.items()}
    print(
        f"{args.runs} runs per statement, medians; bytecode {args.bytecode}; "
        f"Python {sys.version.split()[0]}"
    )
    print()
    print("| row | statement | wall ms | Δ wall vs baseline | import ms | Δ import vs baseline |")
    print("|---|---|---:|---:|---:|---:|")
    for label, statement in STATEMENTS:
        d_wall = wall[label] - wall[BASELINE]
        d_imp = imp[label] - imp[BASELINE]
        deltas = "—" if label == BASELINE else f"{d_wall:+.0f}"
        deltas_imp = "—" if label == BASELINE else f"{d_imp:+.0f}"
        print(
            f"| {label} | `{statement}` | {wall[label]:.0f} | {deltas} | "
            f"{imp[label]:.0f} | {deltas_imp} |"
        )
    print()
    for label in CHECKED:
        verdicts = []
        for reference in (BASELINE, MODELS):
            delta = wall[label] - wall[reference]
            within = "within" if delta <= TARGET_MS else "OVER"
            verdicts.append(f"{delta:+.0f} ms vs {reference} ({within} +{TARGET_MS:.0f} ms)")
        print(f"{label}: " + "; ".join(verdicts))

    added: dict[str, float] = {
        module: statistics.median(values)
        for module, values in self_times.items()
        if module not in baseline_modules
    }
    print()
    print(
        f"handler: modules that {MODELS!r} does not load: {len(added)}, "
        f"{sum(added.values()) / 1000:.1f} ms of self time in all; the heaviest:"
    )
    print()
    print("| module | self ms |")
    print("|---|---:|")
    for module, median_us in sorted(added.items(), key=lambda item: -item[1])[: args.top]:
        print(f"| `{module}` | {median_us / 1000:.1f} |")


if __name__ == "__main__":
    main()

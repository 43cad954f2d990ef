"""Start-up time of the CLI against a hello-world Typer app that prints one rich table.

    python tests/benchmarks/bench_startup.py [--runs 21] [--top 25]

Two comparisons (median wall time of a whole process, runs interleaved round-robin so a noisy
machine slows every contender alike; the order rotates each round):

- ``checkout get-checkout-status TOKEN --json`` on a prepared store vs the hello-world app
  printing its table: target ratio <= 1.25;
- ``checkout --help`` vs the hello-world app's ``--help``: target ratio <= 1.15.

Wall time is the figure the targets are about; the child's CPU time (user + sys) is printed
beside it because it barely moves when other processes compete for the machine.
Each ``checkout`` command runs twice over: as ``python -m checkout_cli`` and through the installed
console script (when there is one). Then ``python -X importtime`` shows which modules the
status command imports that the hello-world app does not, and what each costs; and last, what
the endpoints' pydantic models cost at start-up: built on first use (``defer_build``), a command
builds only the models it validates, against what building every one would cost.
Exit status 0 whatever the figures: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import invoice_flow, isolated_env, load_fixtures, median_ms, verdict

HELLO = '''\
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer()


@app.command()
def main(name: str = "world") -> None:
    """Say hello in a table."""
    table = Table("Greeting", "Name")
    table.add_row("Hello", name)
    Console().print(table)


if __name__ == "__main__":
    app()
'''

STATUS_TARGET = 1.25
HELP_TARGET = 1.15


def prepare_store(root: Path) -> tuple[Path, str]:
    """A store with the fixtures and one completed invoice order; returns (db, token)."""
    from checkout_cli.backends.local import LocalBackend

    db = root / "shop.db"
    backend = LocalBackend(db)
    try:
        load_fixtures(backend, root / "outbox")
        result = invoice_flow(backend, quantity=2)
    finally:
        backend.close()
    return db, result["checkout_token"]


def console_script() -> str | None:
    beside = Path(sys.executable).parent / "checkout"
    if beside.exists():
        return str(beside)
    return shutil.which("checkout")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """One whole process: (wall seconds, CPU seconds user+sys of the child)."""
    cpu, start = _cpu(), time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True)
    elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr.decode()}")
    return elapsed, cpu


Samples = dict[str, list[tuple[float, float]]]


def interleaved(
    contenders: dict[str, list[str]], env: dict[str, str], runs: int, warmup: int = 2
) -> Samples:
    names = list(contenders)
    for _ in range(warmup):  # bytecode caches written, files in the page cache
        for name in names:
            run_once(contenders[name], env)
    samples: Samples = {name: [] for name in names}
    for round_no in range(runs):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(run_once(contenders[name], env))
    return samples


def report(title: str, samples: Samples, baseline: str, target: float) -> dict[str, float]:
    """Print wall and CPU medians; return the wall-time ratio of each contender."""
    print(f"\n== {title} (median of {len(samples[baseline])} runs each, interleaved)")
    print(f"  {'':<40} {'wall':>8}      {'min':>7}  {'cpu':>7}   ratio wall (cpu)")
    base_wall = median_ms([w for w, _ in samples[baseline]])
    base_cpu = median_ms([c for _, c in samples[baseline]])
    ratios = {}
    for name, values in samples.items():
        wall = median_ms([w for w, _ in values])
        cpu = median_ms([c for _, c in values])
        low = min(w for w, _ in values) * 1000
        line = f"  {name:<40} {wall:8.1f} ms   {low:7.1f}  {cpu:7.1f}"
        if name != baseline:
            ratios[name] = wall / base_wall
            line += (
                f"   {wall / base_wall:5.2f} ({cpu / base_cpu:4.2f})"
                f"  target <= {target:.2f}  {verdict(wall / base_wall, target)}"
            )
        print(line)
    return ratios


_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def import_times(argv: list[str], env: dict[str, str]) -> dict[str, tuple[int, int, int]]:
    """module -> (self µs, cumulative µs, nesting depth) from ``python -X importtime``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"importtime run failed:\n{done.stderr[-2000:]}")
    times = {}
    for line in done.stderr.splitlines():
        if m := _LINE.match(line):
            times[m[4]] = (int(m[1]), int(m[2]), (len(m[3]) - 1) // 2)
    return times


def import_report(
    status_argv: list[str], hello_argv: list[str], env: dict[str, str], top: int
) -> None:
    # Median-free but fair enough for a ranking: take the best of 3 runs per module.
    def best_of(argv: list[str]) -> dict[str, tuple[int, int, int]]:
        merged: dict[str, tuple[int, int, int]] = {}
        for _ in range(3):
            for mod, value in import_times(argv, env).items():
                if mod not in merged or value[0] < merged[mod][0]:
                    merged[mod] = value
        return merged

    status = best_of(status_argv)
    hello = best_of(hello_argv)
    extra = {m: v for m, v in status.items() if m not in hello}
    total = sum(v[0] for v in status.values())
    hello_total = sum(v[0] for v in hello.values())
    print("\n== -X importtime: `checkout get-checkout-status TOKEN --json` (best of 3 runs)")
    print(f"  all imports, sum of self times: {total / 1000:7.1f} ms ({len(status)} modules)")
    print(f"  hello-world app, same measure:  {hello_total / 1000:7.1f} ms ({len(hello)} modules)")
    extra_total = sum(v[0] for v in extra.values())
    print(f"  imported by checkout only:      {extra_total / 1000:7.1f} ms ({len(extra)} modules)")
    missing = sorted(m for m in hello if m not in status and "." not in m)
    if missing:
        print(f"  top-level modules the hello app imports and checkout does not: {missing}")

    by_package: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for mod, (self_us, _, _) in extra.items():
        by_package[mod.split(".")[0]] += self_us
        count[mod.split(".")[0]] += 1
    print("\n  checkout-only imports by top-level package (sum of self times):")
    for package, us in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {us / 1000:7.2f} ms  {package} ({count[package]} modules)")

    print(f"\n  top {top} checkout-only modules by cumulative time (includes their children):")
    for mod, (self_us, cum_us, depth) in sorted(extra.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"    {cum_us / 1000:7.2f} ms cum  {self_us / 1000:6.2f} ms self  d{depth}  {mod}")

    print(f"\n  top {top} modules overall by self time:")
    for mod, (self_us, _, _) in sorted(status.items(), key=lambda kv: -kv[1][0])[:top]:
        mark = "" if mod in hello else "   (checkout only)"
        print(f"    {self_us / 1000:6.2f} ms  {mod}{mark}")


MODELS_PROBE = """
import sys, time
start = time.perf_counter()
from checkout_cli.endpoints import ENDPOINTS
imported = time.perf_counter()
models = set()
if sys.argv[1] == "one":
    ENDPOINTS["checkout-flow", "get-checkout-status"].request.model_rebuild(force=True)
elif sys.argv[1] == "all":  # the result models too, and the import of their module
    models = {m for e in ENDPOINTS.values() for m in (e.request, e.result_model)}
    for model in models:
        model.model_rebuild(force=True)
built = time.perf_counter()
print(f"{(imported - start) * 1000:.3f} {(built - imported) * 1000:.3f} {len(models)}")
"""


def models_report(env: dict[str, str], runs: int) -> None:
    """Import the registry, then build one model or every model, in fresh processes."""
    figures: dict[str, list[tuple[float, float]]] = {"none": [], "one": [], "all": []}
    count = "0"
    for _ in range(runs):
        for build in figures:
            done = subprocess.run(
                [sys.executable, "-c", MODELS_PROBE, build],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            imported, built, made = done.stdout.split()
            count = made if build == "all" else count
            figures[build].append((float(imported), float(built)))
    print(f"\n== the endpoints' pydantic models at start-up (median of {runs} fresh processes)")
    for build, label in (
        ("none", "import the registry (every model deferred)"),
        ("one", "+ build the one model a status call validates"),
        ("all", f"+ build all {count} models (no defer_build, results eager)"),
    ):
        imported = statistics.median(i for i, _ in figures[build])
        built = statistics.median(b for _, b in figures[build])
        print(f"  {label:<58} {imported:7.1f} ms import  {built:7.1f} ms build")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="timed runs per contender (>= 10)")
    parser.add_argument("--top", type=int, default=25, help="rows in the import-time lists")
    args = parser.parse_args()
    if args.runs < 10:
        parser.error("--runs must be at least 10")

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        root = Path(tmp)
        db, token = prepare_store(root)
        hello_py = root / "hello.py"
        hello_py.write_text(HELLO)
        env = isolated_env(root)
        env["CHECKOUT_DB"] = str(db)

        py = sys.executable
        script = console_script()
        print(f"python: {py} ({sys.version.split()[0]})")
        print(f"console script: {script or '(not installed)'}")
        print(f"store: {db}, token {token}")

        bare = interleaved({"python -c pass": [py, "-c", "pass"]}, env, args.runs)
        walls = [w for w, _ in bare["python -c pass"]]
        print(f"\nbare interpreter (python -c pass): {median_ms(walls):.1f} ms wall")

        status = {
            "hello.py (prints one rich table)": [py, str(hello_py)],
            "python -m checkout_cli status --json": [
                py,
                "-m",
                "checkout_cli",
                "get-checkout-status",
                token,
                "--json",
            ],
        }
        helps = {
            "hello.py --help": [py, str(hello_py), "--help"],
            "python -m checkout_cli --help": [py, "-m", "checkout_cli", "--help"],
        }
        if script:
            status["checkout status --json (console script)"] = [
                script,
                "get-checkout-status",
                token,
                "--json",
            ]
            helps["checkout --help (console script)"] = [script, "--help"]

        report(
            "get-checkout-status TOKEN --json vs hello-world table",
            interleaved(status, env, args.runs),
            "hello.py (prints one rich table)",
            STATUS_TARGET,
        )
        report(
            "--help vs hello-world --help",
            interleaved(helps, env, args.runs),
            "hello.py --help",
            HELP_TARGET,
        )
        import_report(
            ["-m", "checkout_cli", "get-checkout-status", token, "--json"],
            [str(hello_py)],
            env,
            args.top,
        )
        models_report(env, args.runs)


if __name__ == "__main__":
    main()

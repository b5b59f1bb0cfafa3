"""Fan-out publish rate on both brokers: the plain ``apply_async`` loop vs the rendered fan-out.

Bakes the default project of each broker, installs it from its lock file, and runs the project's
own ``benchmarks/fan_out.py`` (both methods with broker confirmation, the users streamed from a
SQLite database, the fan-out's peak memory at a tenth of the users and at all of them). Prints
the figures side by side.

    .venv/bin/python benchmarks/fan_out.py [--brokers rabbitmq redis] [--users 100000]
                                           [--plain-users N]

``--plain-users`` runs the plain loop over fewer users (it publishes a few hundred messages a
second here, so 100,000 take minutes); its rate does not depend on the number of users.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from baking import bake_and_install, clean_environment

BROKERS = ("rabbitmq", "redis")


def run(broker: str, work: Path, users: int, plain_users: int) -> dict:
    project = bake_and_install(broker, work / broker)
    env = clean_environment()
    command = [
        str(project / ".venv/bin/python"),
        "benchmarks/fan_out.py",
        "--users",
        str(users),
        "--plain-users",
        str(plain_users),
    ]
    out = subprocess.run(command, cwd=project, env=env, check=True, capture_output=True, text=True)
    sys.stderr.write(out.stdout)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(results: dict[str, dict], users: int) -> None:
    print(f"\nFan-out publish rate, children per second, broker confirmation on ({users:,} users)")
    print(
        f"{'broker':<10}{'plain loop':>12}{'fan-out':>10}{'ratio':>8}   fan-out peak memory growth"
    )
    for broker, result in results.items():
        small, full = result["fan_out_small"], result["fan_out"]
        memory = (
            f"{small['peak_growth_kib'] / 1024:.1f} MiB ({small['users']:,}) / "
            f"{full['peak_growth_kib'] / 1024:.1f} MiB ({full['users']:,})"
        )
        print(
            f"{broker:<10}{result['plain']['rate']:>12,.0f}{full['rate']:>10,.0f}"
            f"{result['ratio']:>7.1f}x   {memory}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--brokers", nargs="+", default=list(BROKERS), choices=BROKERS)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--plain-users", type=int, help="users of the plain loop (default all)")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fan-out-"))
    try:
        plain_users = arguments.plain_users or arguments.users
        results = {
            broker: run(broker, work, arguments.users, plain_users) for broker in arguments.brokers
        }
        report(results, arguments.users)
    finally:
        shutil.rmtree(work, ignore_errors=True)

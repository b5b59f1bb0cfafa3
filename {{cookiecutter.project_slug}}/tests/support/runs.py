"""Reading back what the probe tasks recorded."""

from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class Run:
    item: str
    pid: int
    start: float
    last: float
    end: float | None
    fields: dict[str, str]

    @property
    def completed(self) -> bool:
        return self.end is not None


def runs_of(client: redis.Redis, item: str) -> list[Run]:
    """Every recorded run of ``item``, in the order they started."""
    found = []
    for run_id in client.lrange(f"probe:item:{item}", 0, -1):
        data = client.hgetall(f"probe:run:{run_id}")
        found.append(
            Run(
                item=data["item"],
                pid=int(data["pid"]),
                start=float(data["start"]),
                last=float(data["last"]),
                end=float(data["end"]) if "end" in data else None,
                fields=data,
            )
        )
    return sorted(found, key=lambda run: run.start)


def overlaps(runs: list[Run]) -> list[tuple[Run, Run]]:
    """Pairs of runs of one item that were alive at the same time."""
    return [
        (earlier, later)
        for index, earlier in enumerate(runs)
        for later in runs[index + 1 :]
        if later.start < (earlier.end or earlier.last)
    ]

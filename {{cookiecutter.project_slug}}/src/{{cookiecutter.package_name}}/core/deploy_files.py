"""The deploy files of each queue, written from ``queues.py`` and the workers' shared base.

``python -m {{ cookiecutter.package_name }}.core.deploy_files`` (from the project root) writes, for every queue,
``deploy/ecs/queues/<queue>/task-definition.json`` and ``service.json`` from ``deploy/ecs/base/``,
its autoscaling (``scalable-target.json``, ``scaling-policy.json``, and at ``min_workers=0`` the
``wake-up-policy.json`` and ``wake-up-alarm.json``) and its worker in ``compose.yaml``; ``--check``
changes nothing and exits 1 while any is stale.
Plain Python without dependencies: the template's post-generation hook runs it too.
"""

import argparse
import copy
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import queues as service_queues
from . import defaults, refusal, rules
from .queues import Queue, broker_name, defined_as, problems

BASE = Path("deploy/ecs/base")
QUEUES = Path("deploy/ecs/queues")
COMPOSE = Path("compose.yaml")
#: The CloudWatch metric of a queue's waiting messages; ``{queue}`` stands for its broker name.
QUEUE_DEPTH = BASE / "worker-queue-depth.json"
QUEUE_PLACEHOLDER = "{queue}"
#: The files of a queue's directory that this command writes (and deletes with the queue).
GENERATED = (
    "task-definition.json",
    "service.json",
    "scalable-target.json",
    "scaling-policy.json",
    "wake-up-policy.json",
    "wake-up-alarm.json",
)
#: The lines of compose.yaml between which the queues' workers are written.
COMPOSE_BEGIN = "  # >>> queue workers: written from queues.py by core/deploy_files.py\n"
COMPOSE_END = "  # <<< queue workers\n"
CONTAINER = "worker"
#: Seconds after a wake-up before another: a started worker's desired count shows within it.
WAKE_UP_COOLDOWN = 180
#: One-minute periods in a row with messages waiting and no worker wanted before a wake-up.
WAKE_UP_MINUTES = 3


def worker_command(base: dict[str, Any], queue: Queue) -> list[str]:
    """The worker's command, consuming ``queue`` only."""
    return [*container(base)["command"], f"--queues={queue.name}"]


def container(definition: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = definition["containerDefinitions"]
    found = [item for item in containers if item.get("name") == CONTAINER]
    if len(found) != 1:
        refusal.refuse(
            [f"{BASE}/worker-task-definition.json: must have one container named {CONTAINER!r}"]
        )
    return found[0]


def inserted(mapping: dict[str, Any], after: str, new: dict[str, Any]) -> dict[str, Any]:
    """``mapping`` with ``new`` placed after the key ``after`` (at the end if it is missing)."""
    items = [(key, value) for key, value in mapping.items() if key not in new]
    position = next((i + 1 for i, (key, _) in enumerate(items) if key == after), len(items))
    return dict(items[:position] + list(new.items()) + items[position:])


def task_definition(base: dict[str, Any], queue: Queue) -> dict[str, Any]:
    """The base with the queue's family, size, command, stop timeout and log streams."""
    definition = copy.deepcopy(base)
    definition["family"] = f"{base['family']}-{queue.name}"
    definition = inserted(
        definition, "networkMode", {"cpu": str(queue.cpu), "memory": str(queue.memory)}
    )
    worker = container(definition)
    worker["command"] = worker_command(base, queue)
    placed = inserted(worker, "user", {"stopTimeout": queue.stop_timeout})
    worker.clear()
    worker.update(placed)
    options = worker.get("logConfiguration", {}).get("options", {})
    if "awslogs-stream-prefix" in options:
        options["awslogs-stream-prefix"] = f"{options['awslogs-stream-prefix']}-{queue.name}"
    return definition


def service(base: dict[str, Any], family: str, queue: Queue) -> dict[str, Any]:
    """The base service, named after the queue, running its task definition."""
    definition = copy.deepcopy(base)
    definition["serviceName"] = f"{base['serviceName']}-{queue.name}"
    definition["taskDefinition"] = f"{family}-{queue.name}"
    definition["desiredCount"] = queue.min_workers
    definition["tags"] = [*base.get("tags", []), {"key": "queue", "value": queue.name}]
    return definition


def scaling_target(service: dict[str, Any]) -> dict[str, str]:
    """What Application Auto Scaling scales: the desired count of the queue's ECS service."""
    return {
        "ServiceNamespace": "ecs",
        "ResourceId": f"service/{service['cluster']}/{service['serviceName']}",
        "ScalableDimension": "ecs:service:DesiredCount",
    }


def scalable_target(service: dict[str, Any], queue: Queue) -> dict[str, Any]:
    """Input of ``register-scalable-target``: the queue's range of workers."""
    return {
        **scaling_target(service),
        "MinCapacity": queue.min_workers,
        "MaxCapacity": queue.max_workers,
    }


def broker_queue(base_task: dict[str, Any], queue: Queue) -> str:
    """The queue's broker name, with the namespace the workers' environment gives (as the
    configuration reads it: ``BROKER_NAMESPACE``, else its default)."""
    environment = {
        item["name"]: item["value"] for item in container(base_task).get("environment", [])
    }
    return broker_name(environment.get("BROKER_NAMESPACE", defaults.BROKER_NAMESPACE), queue.name)


def queue_depth(base_depth: dict[str, Any], name: str) -> dict[str, Any]:
    """The depth metric of the broker queue ``name``."""
    metric = copy.deepcopy(base_depth)
    for dimension in metric.get("Dimensions", []):
        if dimension.get("Value") == QUEUE_PLACEHOLDER:
            dimension["Value"] = name
    return metric


def task_count(service: dict[str, Any], name: str) -> dict[str, Any]:
    """A count of the service's tasks that Container Insights publishes (ECS publishes none)."""
    return {
        "Namespace": "ECS/ContainerInsights",
        "MetricName": name,
        "Dimensions": [
            {"Name": "ClusterName", "Value": service["cluster"]},
            {"Name": "ServiceName", "Value": service["serviceName"]},
        ],
    }


def scaling_policy(service: dict[str, Any], queue: Queue, depth: dict[str, Any]) -> dict[str, Any]:
    """Input of ``put-scaling-policy``: target tracking on waiting messages per running worker."""
    return {
        "PolicyName": f"{service['serviceName']}-backlog-per-worker",
        **scaling_target(service),
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": rules.target_backlog(queue),
            "CustomizedMetricSpecification": {
                "Metrics": [
                    {
                        "Id": "waiting",
                        "Label": "Messages waiting in the queue",
                        "MetricStat": {"Metric": depth, "Stat": "Maximum"},
                        "ReturnData": False,
                    },
                    {
                        "Id": "workers",
                        "Label": "Running workers",
                        "MetricStat": {
                            "Metric": task_count(service, "RunningTaskCount"),
                            "Stat": "Average",
                        },
                        "ReturnData": False,
                    },
                    {
                        "Id": "backlog_per_worker",
                        "Label": "Waiting messages per running worker",
                        "Expression": "waiting / workers",
                        "ReturnData": True,
                    },
                ]
            },
            "ScaleOutCooldown": queue.scale_out_cooldown,
            "ScaleInCooldown": queue.scale_in_cooldown,
            "DisableScaleIn": False,
        },
    }


def wake_up_policy(service: dict[str, Any]) -> dict[str, Any]:
    """Input of ``put-scaling-policy``: one worker more when the wake-up alarm goes off.

    Target tracking divides by the running workers, so at 0 it never scales out.
    """
    return {
        "PolicyName": f"{service['serviceName']}-wake-up",
        **scaling_target(service),
        "PolicyType": "StepScaling",
        "StepScalingPolicyConfiguration": {
            "AdjustmentType": "ChangeInCapacity",
            "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
            "Cooldown": WAKE_UP_COOLDOWN,
            "MetricAggregationType": "Maximum",
        },
    }


def wake_up_alarm(service: dict[str, Any], depth: dict[str, Any]) -> dict[str, Any]:
    """Input of ``put-metric-alarm`` (its action, the wake-up policy, is added when applied):
    messages wait while the service wants no worker."""
    return {
        "AlarmName": f"{service['serviceName']}-wake-up",
        "AlarmDescription": "Messages wait and the service runs no worker: start one.",
        "Metrics": [
            {
                "Id": "waiting",
                "MetricStat": {"Metric": depth, "Period": 60, "Stat": "Maximum"},
                "ReturnData": False,
            },
            {
                "Id": "wanted",
                "MetricStat": {
                    "Metric": task_count(service, "DesiredTaskCount"),
                    "Period": 60,
                    "Stat": "Maximum",
                },
                "ReturnData": False,
            },
            {
                "Id": "waiting_without_workers",
                "Label": "Messages waiting while no worker is wanted",
                "Expression": "IF(FILL(wanted, 0) == 0, waiting, 0)",
                "ReturnData": True,
            },
        ],
        "EvaluationPeriods": WAKE_UP_MINUTES,
        "DatapointsToAlarm": WAKE_UP_MINUTES,
        "Threshold": 0,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }


def scaling_files(
    base_task: dict[str, Any], base_depth: dict[str, Any], service: dict[str, Any], queue: Queue
) -> dict[str, dict[str, Any]]:
    """A queue's autoscaling files by name; the wake-up only where it may scale to 0."""
    depth = queue_depth(base_depth, broker_queue(base_task, queue))
    files = {
        "scalable-target.json": scalable_target(service, queue),
        "scaling-policy.json": scaling_policy(service, queue, depth),
    }
    if queue.min_workers == 0:
        files["wake-up-policy.json"] = wake_up_policy(service)
        files["wake-up-alarm.json"] = wake_up_alarm(service, depth)
    return files


def scaling_problems(project: Path, queues: Sequence[Queue]) -> list[str]:
    """The rule ``queues.py`` breaks only with this broker: scaling to 0 without a depth."""
    namespace = json.loads((project / QUEUE_DEPTH).read_text()).get("Namespace", "")
    return [
        f"{defined_as(queue)('min_workers')}: {rule}"
        for queue in queues
        if (rule := rules.zero_workers_rule(queue.min_workers, namespace))
    ]


def compose_workers(base: dict[str, Any], queues: Sequence[Queue]) -> str:
    """The compose services of the queues' workers (YAML; the values are JSON, which YAML reads)."""
    lines = []
    for queue in queues:
        lines += [
            f"  worker-{queue.name}:\n",
            "    <<: *worker\n",
            f"    command: {json.dumps(worker_command(base, queue))}\n",
            f"    stop_grace_period: {queue.stop_timeout}s\n",
        ]
    return "".join(lines)


def as_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def expected(project: Path, queues: Sequence[Queue]) -> dict[Path, str]:
    """Every generated file (relative to ``project``) and its content."""
    base_task = json.loads((project / BASE / "worker-task-definition.json").read_text())
    base_service = json.loads((project / BASE / "worker-service.json").read_text())
    base_depth = json.loads((project / QUEUE_DEPTH).read_text())
    files = {}
    for queue in queues:
        files[QUEUES / queue.name / "task-definition.json"] = as_json(
            task_definition(base_task, queue)
        )
        queue_service = service(base_service, base_task["family"], queue)
        files[QUEUES / queue.name / "service.json"] = as_json(queue_service)
        for name, document in scaling_files(base_task, base_depth, queue_service, queue).items():
            files[QUEUES / queue.name / name] = as_json(document)
    compose = (project / COMPOSE).read_text()
    if compose.count(COMPOSE_BEGIN) != 1 or compose.count(COMPOSE_END) != 1:
        refusal.refuse(
            [
                f"{COMPOSE}: must keep the lines {COMPOSE_BEGIN.strip()!r} and "
                f"{COMPOSE_END.strip()!r} once each, around the queues' workers"
            ]
        )
    head, rest = compose.split(COMPOSE_BEGIN)
    tail = rest.split(COMPOSE_END)[1]
    files[COMPOSE] = head + COMPOSE_BEGIN + compose_workers(base_task, queues) + COMPOSE_END + tail
    return files


def stale(project: Path, queues: Sequence[Queue]) -> list[Path]:
    """The generated files that are missing, differ, or belong to a queue no longer defined."""
    return _stale(project, expected(project, queues))


def _stale(project: Path, files: dict[Path, str]) -> list[Path]:
    found = [path for path, text in files.items() if not _reads(project / path, text)]
    return found + [
        path.relative_to(project)
        for path in _generated_on_disk(project)
        if path.relative_to(project) not in files
    ]


def write(project: Path, queues: Sequence[Queue]) -> list[Path]:
    """Write every stale file, delete those of removed queues; return what changed."""
    files = expected(project, queues)
    changed = _stale(project, files)
    for path in changed:
        target = project / path
        if path in files:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(files[path])
        else:
            target.unlink()
            if not any(target.parent.iterdir()):
                shutil.rmtree(target.parent)
    return changed


def _reads(path: Path, text: str) -> bool:
    return path.is_file() and path.read_text() == text


def _generated_on_disk(project: Path) -> list[Path]:
    return sorted(path for name in GENERATED for path in (project / QUEUES).glob(f"*/{name}"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m {{ cookiecutter.package_name }}.core.deploy_files",
        description="Write each queue's ECS files and compose worker from queues.py.",
    )
    parser.add_argument("--project", type=Path, default=Path(), help="the project's root")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    arguments = parser.parse_args(argv)
    found = problems(service_queues.QUEUES)
    found = found or scaling_problems(arguments.project, service_queues.QUEUES)
    if found:
        refusal.refuse(found)
    if arguments.check:
        outdated = stale(arguments.project, service_queues.QUEUES)
        for path in outdated:
            print(f"stale: {path}", file=sys.stderr)
        if outdated:
            print(
                "run `uv run python -m {{ cookiecutter.package_name }}.core.deploy_files` and commit the result",
                file=sys.stderr,
            )
        return 1 if outdated else 0
    for path in write(arguments.project, service_queues.QUEUES):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

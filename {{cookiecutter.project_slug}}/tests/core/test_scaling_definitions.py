"""Each queue's autoscaling files: what Application Auto Scaling and CloudWatch accept, offline.

botocore's models of RegisterScalableTarget, PutScalingPolicy (with metric math in
``CustomizedMetricSpecification.Metrics``) and PutMetricAlarm check the shapes as the AWS CLI
would; they know no id syntax, no expression and no link between the files: the checks here do.
The broken copies are the default queue's files as the generator writes them at
``min_workers=0`` (with the wake-up); every queue's files on disk pass every check.
"""

import copy
import dataclasses
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters

from {{ cookiecutter.package_name }}.core import broker, config, defaults, deploy_files, metrics, rules
from {{ cookiecutter.package_name }}.core.queues import Queue, broker_name

from ..support.workers import PROJECT

SESSION = botocore.session.get_session()
AUTOSCALING = SESSION.get_service_model("application-autoscaling")
CLOUDWATCH = SESSION.get_service_model("cloudwatch")
#: The input of each file: (service model, operation).
OPERATIONS = {
    "target": (AUTOSCALING, "RegisterScalableTarget"),
    "policy": (AUTOSCALING, "PutScalingPolicy"),
    "wake_policy": (AUTOSCALING, "PutScalingPolicy"),
    "wake_alarm": (CLOUDWATCH, "PutMetricAlarm"),
}
FILES = {
    "target": "scalable-target.json",
    "policy": "scaling-policy.json",
    "wake_policy": "wake-up-policy.json",
    "wake_alarm": "wake-up-alarm.json",
}
#: A metric query's id: "letters, numbers, and underscores; the first a lowercase letter".
QUERY_ID = re.compile(r"[a-z][A-Za-z0-9_]*")
#: Words of a metric math expression that are functions, not query ids.
FUNCTIONS = {"IF", "FILL", "REPEAT", "LINEAR"}
TRACKING = "policy.TargetTrackingScalingPolicyConfiguration"
QUERIES = f"{TRACKING}.CustomizedMetricSpecification.Metrics"
STEP = "wake_policy.StepScalingPolicyConfiguration"
#: Where each broker's queue depth comes from: the broker, or the workers' EMF lines.
AMAZON_MQ_DEPTH = ("AWS/AmazonMQ", "MessageReadyCount", ["Broker", "VirtualHost", "Queue"])


@dataclasses.dataclass
class Scaling:
    """A queue, its ECS service and its autoscaling files (None: a file not written)."""

    queue: Queue
    documents: dict[str, Any]

    def get(self, path: str) -> Any:
        """The value at ``file.key.index...`` (``service``, ``target``, ``policy``...)."""
        node: Any = self.documents
        for key in path.split("."):
            if isinstance(node, list):
                node = node[int(key)] if int(key) < len(node) else None
            else:
                node = node.get(key) if isinstance(node, dict) else None
        return node

    def edit(self, path: str, value: Any) -> None:
        parent, _, key = path.rpartition(".")
        node = self.get(parent)
        if isinstance(node, list):
            node[int(key)] = value
        elif value is None:
            del node[key]
        else:
            node[key] = value


def queue_named(name: str) -> Queue:
    return next(queue for queue in config.current().queues if queue.name == name)


def load(name: str, project: Path = PROJECT, queue: Queue | None = None) -> Scaling:
    """A queue's service and autoscaling files as they are on disk."""
    files = project / deploy_files.QUEUES / name
    documents = {"service": json.loads((files / "service.json").read_text())}
    for key, file in FILES.items():
        path = files / file
        documents[key] = json.loads(path.read_text()) if path.is_file() else None
    return Scaling(queue or queue_named(name), documents)


def generated_at_zero() -> Scaling:
    """The default queue's files as the generator writes them at ``min_workers=0``."""
    queue = dataclasses.replace(config.current().queues[0], min_workers=0)
    base = PROJECT / deploy_files.BASE
    base_task = json.loads((base / "worker-task-definition.json").read_text())
    base_service = json.loads((base / "worker-service.json").read_text())
    base_depth = json.loads((PROJECT / deploy_files.QUEUE_DEPTH).read_text())
    service = deploy_files.service(base_service, base_task["family"], queue)
    files = deploy_files.scaling_files(base_task, base_depth, service, queue)
    documents: dict[str, Any] = {key: files[file] for key, file in FILES.items()}
    documents["service"] = service
    return Scaling(queue, documents)


def written(scaling: Scaling) -> dict[str, Any]:
    return {key: value for key, value in scaling.documents.items() if value is not None}


def check_api_shapes(scaling: Scaling) -> list[str]:
    """Valid input for register-scalable-target, put-scaling-policy and put-metric-alarm."""
    problems = []
    for key, document in written(scaling).items():
        if key not in OPERATIONS:
            continue
        model, operation = OPERATIONS[key]
        try:
            validate_parameters(document, model.operation_model(operation).input_shape)
        except ParamValidationError as error:
            problems.append(f"{FILES[key]} ({operation}): {error}")
    return problems


def check_target(scaling: Scaling) -> list[str]:
    """Every file scales the desired count of the queue's service, within the queue's range."""
    service, queue = scaling.documents["service"], scaling.queue
    wanted = {
        "ServiceNamespace": "ecs",
        "ResourceId": f"service/{service['cluster']}/{service['serviceName']}",
        "ScalableDimension": "ecs:service:DesiredCount",
    }
    problems = [
        f"{FILES[key]} {field}={document.get(field)!r}: must be {value!r} (the queue's service)"
        for key, document in written(scaling).items()
        if key in ("target", "policy", "wake_policy")
        for field, value in wanted.items()
        if document.get(field) != value
    ]
    for field, value in (("MinCapacity", queue.min_workers), ("MaxCapacity", queue.max_workers)):
        if scaling.get(f"target.{field}") != value:
            problems.append(
                f"{FILES['target']} {field}={scaling.get(f'target.{field}')!r}: must be "
                f"{value}, as queues.py sets for {queue.name}"
            )
    if service.get("desiredCount") != queue.min_workers:
        problems.append(
            f"service.json desiredCount={service.get('desiredCount')!r}: must be min_workers "
            f"({queue.min_workers}), where autoscaling starts"
        )
    return problems


def query_problems(name: str, queries: list[dict[str, Any]]) -> list[str]:
    """The rules of metric math that botocore does not know."""
    ids = [query.get("Id", "") for query in queries]
    problems = [
        f"{name} Id={id_!r}: must match {QUERY_ID.pattern}"
        for id_ in ids
        if not QUERY_ID.fullmatch(id_)
    ]
    if len(set(ids)) != len(ids):
        problems.append(f"{name} ids {ids}: must be unique")
    for query in queries:
        if ("Expression" in query) == ("MetricStat" in query):
            problems.append(f"{name} {query.get('Id')}: needs an Expression or a MetricStat")
        unknown = set(re.findall(r"[A-Za-z_]\w*", query.get("Expression", ""))) - FUNCTIONS
        if unknown - set(ids):
            problems.append(
                f"{name} {query.get('Id')}: names no query {sorted(unknown - set(ids))}"
            )
        period = query.get("MetricStat", {}).get("Period", 60)
        if period % 60:
            problems.append(f"{name} {query.get('Id')} Period={period}: must be a multiple of 60")
    returned = [query for query in queries if query.get("ReturnData", True)]
    if len(returned) != 1 or "Expression" not in returned[0]:
        problems.append(
            f"{name}: exactly one query, the final expression, must have ReturnData true "
            f"(found {[query.get('Id') for query in returned]})"
        )
    return problems


def check_metric_math(scaling: Scaling) -> list[str]:
    problems = query_problems(FILES["policy"], scaling.get(QUERIES) or [])
    if scaling.documents.get("wake_alarm") is not None:
        problems += query_problems(FILES["wake_alarm"], scaling.get("wake_alarm.Metrics") or [])
    return problems


def metric(queries: list[dict[str, Any]], id_: str) -> dict[str, Any]:
    """The metric of the query ``id_`` ({} if there is none)."""
    query = next((query for query in queries if query.get("Id") == id_), {})
    found: dict[str, Any] = query.get("MetricStat", {}).get("Metric", {})
    return found


def dimensions(metric: dict[str, Any]) -> dict[str, str]:
    return {item.get("Name"): item.get("Value") for item in metric.get("Dimensions", [])}


def deployed(name: str, default: str) -> str:
    """A setting as the deployed workers read it: their task definition's, else its default
    (the tests' own environment has a broker namespace of its own)."""
    task = json.loads((PROJECT / deploy_files.BASE / "worker-task-definition.json").read_text())
    environment = deploy_files.container(task).get("environment", [])
    return next((item["value"] for item in environment if item["name"] == name), default)


def depth_problems(name: str, depth: dict[str, Any], queue: Queue) -> list[str]:
    """The depth is the queue's waiting messages, where this broker's are published."""
    broker_queue = broker_name(deployed("BROKER_NAMESPACE", defaults.BROKER_NAMESPACE), queue.name)
    if broker.queue_depth is None:  # Amazon MQ publishes it
        namespace, metric_name, names = AMAZON_MQ_DEPTH
    else:  # the workers log it (core/metrics.py)
        namespace = deployed("METRICS_NAMESPACE", defaults.SERVICE)
        metric_name = metrics.QUEUE_DEPTH
        names = [name for names in metrics.BY_QUEUE for name in names]
    found = (depth.get("Namespace"), depth.get("MetricName"), list(dimensions(depth)))
    problems = []
    if found != (namespace, metric_name, names):
        problems.append(
            f"{name} depth {found}: must be {(namespace, metric_name, names)}, where this "
            "broker's queue depth is published"
        )
    if dimensions(depth).get(names[-1]) != broker_queue:
        problems.append(
            f"{name} depth {names[-1]}={dimensions(depth).get(names[-1])!r}: must be the "
            f"queue's broker name {broker_queue!r}"
        )
    return problems


def task_count_problems(name: str, count: dict[str, Any], service: dict[str, Any]) -> list[str]:
    wanted = {"ClusterName": service["cluster"], "ServiceName": service["serviceName"]}
    if count.get("Namespace") == "ECS/ContainerInsights" and dimensions(count) == wanted:
        return []
    return [f"{name} task count {count}: must be Container Insights' count of {wanted}"]


def check_policy(scaling: Scaling) -> list[str]:
    """Target tracking on waiting messages per running worker, at the queue's target."""
    queue, queries = scaling.queue, scaling.get(QUERIES) or []
    name = FILES["policy"]
    problems = depth_problems(name, metric(queries, "waiting"), queue)
    problems += task_count_problems(name, metric(queries, "workers"), scaling.documents["service"])
    wanted = {
        "policy.PolicyType": "TargetTrackingScaling",
        f"{TRACKING}.TargetValue": rules.target_backlog(queue),
        f"{TRACKING}.ScaleOutCooldown": queue.scale_out_cooldown,
        f"{TRACKING}.ScaleInCooldown": queue.scale_in_cooldown,
        f"{TRACKING}.DisableScaleIn": False,
        f"{QUERIES}.2.Expression": "waiting / workers",
    }
    return problems + [
        f"{path}={scaling.get(path)!r}: must be {value!r} (queues.py, rules.target_backlog)"
        for path, value in wanted.items()
        if scaling.get(path) != value
    ]


def check_wake_up(scaling: Scaling) -> list[str]:
    """At 0 workers an alarm on messages waiting with none wanted adds workers, never removes."""
    has_files = [scaling.documents.get(key) is not None for key in ("wake_policy", "wake_alarm")]
    if has_files != [scaling.queue.min_workers == 0] * 2:
        return [f"wake-up files {has_files}: written exactly when min_workers is 0"]
    if scaling.queue.min_workers:
        return []
    queries = scaling.get("wake_alarm.Metrics") or []
    name = FILES["wake_alarm"]
    problems = depth_problems(name, metric(queries, "waiting"), scaling.queue)
    problems += task_count_problems(name, metric(queries, "wanted"), scaling.documents["service"])
    steps = scaling.get(f"{STEP}.StepAdjustments") or []
    if scaling.get(f"{STEP}.AdjustmentType") != "ChangeInCapacity" or any(
        step.get("ScalingAdjustment", 0) < 1 for step in steps
    ):
        problems.append(f"{STEP} {steps}: must only add workers (ChangeInCapacity above 0)")
    wanted = {
        "wake_alarm.ComparisonOperator": "GreaterThanThreshold",
        "wake_alarm.Threshold": 0,
        "wake_alarm.TreatMissingData": "notBreaching",
        "wake_alarm.AlarmActions": None,
    }
    return problems + [
        f"{path}={scaling.get(path)!r}: must be {value!r} (the action is the wake-up policy's "
        "ARN, added when applied)"
        for path, value in wanted.items()
        if scaling.get(path) != value
    ]


Check = Callable[[Scaling], list[str]]
WAITING = f"{QUERIES}.0.MetricStat.Metric"
SUM = {"Stat": "Sum"}
BROKEN: dict[Check, dict[str, tuple[dict[str, Any], str]]] = {
    check_api_shapes: {
        "min-not-a-number": ({"target.MinCapacity": "1"}, "Invalid type for parameter"),
        "unknown-key": ({f"{TRACKING}.ScaleInCoolDown": 300}, "Unknown parameter"),
        "no-policy-name": ({"policy.PolicyName": None}, "Missing required parameter"),
        "alarm-period": ({"wake_alarm.Metrics.0.MetricStat.Period": "60"}, "Invalid type"),
    },
    check_target: {
        "other-service": ({"target.ResourceId": "service/c/other"}, "must be 'service/"),
        "policy-dimension": ({"policy.ScalableDimension": "ecs:x"}, "ScalableDimension='ecs:x'"),
        "max": ({"target.MaxCapacity": 99}, "MaxCapacity=99: must be"),
        "desired": ({"service.desiredCount": 2}, "desiredCount=2: must be min_workers"),
    },
    check_metric_math: {
        "id": ({f"{QUERIES}.0.Id": "Waiting"}, "Id='Waiting': must match"),
        "twice": ({f"{QUERIES}.1.Id": "waiting"}, "must be unique"),
        "unknown-name": ({f"{QUERIES}.2.Expression": "waiting / tasks"}, "names no query"),
        "two-returned": ({f"{QUERIES}.0.ReturnData": True}, "exactly one query"),
        "both": ({f"{QUERIES}.2.MetricStat": SUM}, "needs an Expression or"),
        "period": ({"wake_alarm.Metrics.0.MetricStat.Period": 90}, "Period=90: must be"),
    },
    check_policy: {
        "target": ({f"{TRACKING}.TargetValue": 100.0}, "TargetValue=100.0: must be"),
        "cooldown": ({f"{TRACKING}.ScaleInCooldown": 30}, "ScaleInCooldown=30: must be"),
        "other-queue": ({f"{WAITING}.Dimensions.-1.Value": "x.other"}, "must be the queue's"),
        "other-metric": ({f"{WAITING}.MetricName": "MessageCount"}, "depth ("),
        "running-elsewhere": ({f"{QUERIES}.1.MetricStat.Metric.Namespace": "AWS/ECS"}, "task"),
        "math": ({f"{QUERIES}.2.Expression": "waiting"}, "Expression='waiting': must be"),
    },
    check_wake_up: {
        "removes": ({f"{STEP}.StepAdjustments.0.ScalingAdjustment": -1}, "must only add"),
        "exact": ({f"{STEP}.AdjustmentType": "ExactCapacity"}, "must only add workers"),
        "missing": ({"wake_alarm.TreatMissingData": "breaching"}, "TreatMissingData="),
        "no-alarm": ({"wake_alarm": None}, "written exactly when min_workers is 0"),
        "wanted-elsewhere": ({"wake_alarm.Metrics.1.MetricStat.Metric.Dimensions": []}, "task"),
    },
}


def cases() -> list[Any]:
    params = []
    for check, copies in BROKEN.items():
        params.append(pytest.param(check, None, "", id=f"{check.__name__}-passes"))
        params += [
            pytest.param(check, edits, expected, id=f"{check.__name__}-{case}")
            for case, (edits, expected) in copies.items()
        ]
    return params


@pytest.mark.parametrize(("check", "edits", "expected"), cases())
def test_check(check: Check, edits: dict[str, Any] | None, expected: str) -> None:
    """The files pass ``check``; a copy broken by ``edits`` makes it report ``expected``."""
    scaling = generated_at_zero()
    if edits is None:
        assert check(scaling) == []
        return
    broken = copy.deepcopy(scaling)
    for path, value in edits.items():
        if path in broken.documents:
            broken.documents[path] = value
        else:
            broken.edit(path, value)
    assert broken != scaling, "the edits changed nothing"
    assert any(expected in problem for problem in check(broken)), check(broken)


@pytest.mark.parametrize("queue", [queue.name for queue in config.current().queues])
def test_every_queue_passes_every_check(queue: str) -> None:
    scaling = load(queue)
    assert [problem for check in BROKEN for problem in check(scaling)] == []


def test_the_installed_botocore_knows_metric_math_in_target_tracking() -> None:
    """Target tracking took ``Metrics`` (metric math) in 2023; an older botocore refuses it."""
    tracking = AUTOSCALING.operation_model("PutScalingPolicy").input_shape.members[
        "TargetTrackingScalingPolicyConfiguration"
    ]
    specification = tracking.members["CustomizedMetricSpecification"]
    assert "Metrics" in specification.members


def test_the_default_target_is_what_a_worker_clears_while_another_starts() -> None:
    queue = config.current().queues[0]
    assert queue.backlog_per_worker is None
    expected = queue.concurrency * rules.SCALE_OUT_SECONDS / queue.time_limit
    assert rules.target_backlog(queue) == pytest.approx(expected, abs=0.01)
    assert rules.target_backlog(dataclasses.replace(queue, backlog_per_worker=7)) == 7


def test_scaling_to_zero_needs_a_depth_published_without_workers() -> None:
    queue = dataclasses.replace(config.current().queues[0], min_workers=0)
    found = deploy_files.scaling_problems(PROJECT, (queue,))
    if broker.queue_depth is None:  # Amazon MQ publishes the depth whether workers run or not
        assert found == []
    else:
        assert found == [
            f"queues.py {queue.name}.min_workers=0: must be at least 1: the queue's depth "
            f"(namespace {defaults.SERVICE}) is published by its workers, so "
            "at 0 workers nothing would ever start one again"
        ]


def test_the_wake_up_files_follow_min_workers(tmp_path: Path) -> None:
    """Written when a queue may scale to 0, deleted when it no longer may."""
    copy_ = tmp_path / "project"
    shutil.copytree(PROJECT / "deploy", copy_ / "deploy")
    shutil.copy(PROJECT / "compose.yaml", copy_)
    first, *others = config.current().queues
    to_zero = (dataclasses.replace(first, min_workers=0), *others)
    from_one = (dataclasses.replace(first, min_workers=1), *others)
    files = copy_ / deploy_files.QUEUES / first.name
    deploy_files.write(copy_, from_one)
    changed = deploy_files.write(copy_, to_zero)
    assert {files / "wake-up-policy.json", files / "wake-up-alarm.json"} <= {
        copy_ / path for path in changed
    }
    assert check_wake_up(load(first.name, copy_, to_zero[0])) == []
    deploy_files.write(copy_, from_one)
    assert not (files / "wake-up-policy.json").exists()
    assert not (files / "wake-up-alarm.json").exists()
    assert deploy_files.stale(copy_, from_one) == []

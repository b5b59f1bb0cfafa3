"""Every combination of choices bakes into a clean project: no template syntax left, lint clean,
its data files parse, and only the chosen broker's files are there."""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

LEFTOVER = re.compile(r"\{\{|\{%|\}\}|%\}|(?<![.\w])cookiecutter\.(?!json)")
#: GitHub Actions expressions (``${{ github.sha }}``) are meant to stay in the rendered workflow.
ACTIONS_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"


def text_files(project: Path) -> list[Path]:
    return [path for path in sorted(project.rglob("*")) if path.is_file()]


def test_no_template_syntax_left(choice_project: Path) -> None:
    leftovers = {
        str(path.relative_to(choice_project)): match.group(0)
        for path in text_files(choice_project)
        for match in [LEFTOVER.search(ACTIONS_EXPRESSION.sub("", path.read_text()))]
        if match
    }
    named = [str(path) for path in choice_project.rglob("*") if LEFTOVER.search(path.name)]
    assert leftovers == {}
    assert named == []


def test_ruff_check_and_format(choice_project: Path) -> None:
    for command in (
        [RUFF, "check", "--no-cache", "."],
        [RUFF, "format", "--check", "--no-cache", "."],
    ):
        result = subprocess.run(
            command, cwd=choice_project, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_data_files_parse(choice_project: Path) -> None:
    tomllib.loads((choice_project / "pyproject.toml").read_text())
    tomllib.loads((choice_project / "uv.lock").read_text())
    for path in choice_project.rglob("*.json"):
        json.loads(path.read_text())
    for path in [*choice_project.rglob("*.yml"), *choice_project.rglob("*.yaml")]:
        yaml.safe_load(path.read_text())


def test_only_the_chosen_broker_is_rendered(choice_project: Path) -> None:
    answers = json.loads((choice_project / ".cookiecutter.json").read_text())
    package = choice_project / "src" / answers["package_name"]
    broker_module = (package / "core" / "broker.py").read_text()
    assert f'NAME = "{answers["broker"]}"' in broker_module
    compose = yaml.safe_load((choice_project / "compose.yaml").read_text())
    assert ("rabbitmq" in compose["services"]) == (answers["broker"] == "rabbitmq")
    other = {"rabbitmq": "visibility_timeout", "redis": "confirm_publish"}[answers["broker"]]
    assert other not in broker_module
    store = (package / "core" / "dead_letters" / "store.py").read_text()
    own, other = {"rabbitmq": ("x-death", "DELIVERIES"), "redis": ("DELIVERIES", "x-death")}[
        answers["broker"]
    ]
    assert own in store
    assert other not in store


def test_answers_reach_every_artifact(choice_project: Path) -> None:
    answers = json.loads((choice_project / ".cookiecutter.json").read_text())
    slug, region, account = (answers[k] for k in ("project_slug", "aws_region", "aws_account_id"))
    dockerfile = (choice_project / "Dockerfile").read_text()
    guide = (choice_project / "deploy/README.md").read_text()
    compose = yaml.safe_load((choice_project / "compose.yaml").read_text())["services"]
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE).group(1))
    assert "ECS_STOP_TIMEOUT" not in dockerfile
    assert f"python:{answers['python_version']}-slim" in dockerfile
    queues = [name.strip() for name in answers["queues"].split(",")]
    files = choice_project / "deploy/ecs/queues"
    assert sorted(path.name for path in files.iterdir()) == sorted(queues)
    for queue in queues:
        definition = json.loads((files / queue / "task-definition.json").read_text())
        service = json.loads((files / queue / "service.json").read_text())
        container = definition["containerDefinitions"][0]
        environment = {item["name"]: item["value"] for item in container["environment"]}
        assert definition["cpu"] == answers["ecs_cpu"]
        assert definition["memory"] == answers["ecs_memory"]
        assert definition["runtimePlatform"]["cpuArchitecture"] == answers["ecs_cpu_architecture"]
        assert container["stopTimeout"] == int(answers["ecs_stop_timeout"])
        assert "ECS_STOP_TIMEOUT" not in environment
        assert "REMAP_SIGTERM" not in environment
        assert container["command"] == [*cmd, f"--queues={queue}"]
        # Each queue's service runs its task definition, and every name is the project's.
        family = f"{slug}-{queue}"
        assert definition["family"] == service["serviceName"] == service["taskDefinition"] == family
        assert [tag["value"] for tag in service["tags"]] == [slug, queue]
        # Its autoscaling scales that service on its own queue's depth, from the first worker.
        files_of_queue = sorted(path.name for path in (files / queue).iterdir())
        assert files_of_queue == [
            "scalable-target.json",
            "scaling-policy.json",
            "service.json",
            "task-definition.json",
        ]
        target = json.loads((files / queue / "scalable-target.json").read_text())
        policy = json.loads((files / queue / "scaling-policy.json").read_text())
        resource = f"service/REPLACE-WITH-CLUSTER-NAME/{family}"
        assert target["ResourceId"] == policy["ResourceId"] == resource
        assert target["MinCapacity"] == service["desiredCount"] == 1
        tracking = policy["TargetTrackingScalingPolicyConfiguration"]
        waiting = tracking["CustomizedMetricSpecification"]["Metrics"][0]["MetricStat"]["Metric"]
        assert waiting["Dimensions"][-1]["Value"] == f"{slug}.{queue}"
        depth = {"rabbitmq": "MessageReadyCount", "redis": "QueueDepth"}[answers["broker"]]
        assert waiting["MetricName"] == depth
        processes, time_limit = (int(answers[k]) for k in ("worker_concurrency", "task_time_limit"))
        assert tracking["TargetValue"] == round(processes * 180 / time_limit, 2)
        # compose.yaml runs the same worker, stopped after the same time.
        assert compose[f"worker-{queue}"]["command"] == container["command"]
        assert compose[f"worker-{queue}"]["stop_grace_period"] == f"{container['stopTimeout']}s"
    registry = f"{account}.dkr.ecr.{region}.amazonaws.com"
    assert container["image"].rpartition(":")[0] == f"{registry}/{slug}"
    assert definition["executionRoleArn"] == f"arn:aws:iam::{account}:role/{slug}-execution"
    assert definition["taskRoleArn"] == f"arn:aws:iam::{account}:role/{slug}-task"
    options = container["logConfiguration"]["options"]
    assert (options["awslogs-group"], options["awslogs-region"]) == (f"/ecs/{slug}", region)
    secrets = sorted(secret["valueFrom"] for secret in container["secrets"])
    names = ("broker-url", "database-url", "redis-url")
    prefix = f"arn:aws:secretsmanager:{region}:{account}:secret:{slug}"
    assert secrets == [f"{prefix}/{name}" for name in names]
    # The deployment guide's commands create and use the same names.
    platform = {"ARM64": "linux/arm64", "X86_64": "linux/amd64"}[answers["ecs_cpu_architecture"]]
    assert f"--platform {platform} " in guide
    assert f"REGION={region}\nREGISTRY={account}.dkr.ecr.$REGION.amazonaws.com\n" in guide
    assert f"--repository-name {slug} " in guide
    assert f"--log-group-name /ecs/{slug}\n" in guide
    for name in names:
        assert f"--name {slug}/{name} " in guide
    # ...and apply every autoscaling file the generator writes.
    for generated in ("scalable-target", "scaling-policy", "wake-up-policy", "wake-up-alarm"):
        assert f"$files/{generated}.json" in guide


def test_the_beat_is_deployed_and_composed_like_the_worker(choice_project: Path) -> None:
    answers = json.loads((choice_project / ".cookiecutter.json").read_text())
    slug = answers["project_slug"]
    ecs = choice_project / "deploy/ecs"
    worker = json.loads((ecs / "base" / "worker-task-definition.json").read_text())
    beat = json.loads((ecs / "beat-task-definition.json").read_text())
    service = json.loads((ecs / "beat-service.json").read_text())
    (container,) = beat["containerDefinitions"]
    assert beat["family"] == service["serviceName"] == service["taskDefinition"] == f"{slug}-beat"
    assert container["image"] == worker["containerDefinitions"][0]["image"]
    assert container["secrets"] == worker["containerDefinitions"][0]["secrets"]
    assert container["command"][2] == "beat"
    compose = yaml.safe_load((choice_project / "compose.yaml").read_text())["services"]["beat"]
    assert compose["command"] == container["command"]
    assert compose["stop_grace_period"] == f"{container['stopTimeout']}s"


def test_image_context_holds_what_the_dockerfile_copies(choice_project: Path) -> None:
    dockerfile = (choice_project / "Dockerfile").read_text()
    allowed = {
        line[1:].rstrip("/")
        for line in (choice_project / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    sources = [
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert sources
    for source in sources:
        path = Path(source.rstrip("/"))
        assert str(path) in allowed or any(str(parent) in allowed for parent in path.parents)
        assert (choice_project / path).exists()


def test_template_sources_lint_clean() -> None:
    """The template's own Python (hooks, extension, tests, benchmarks) passes ruff too."""
    template = Path(__file__).resolve().parents[1]
    sources = ["hooks", "local_extensions.py", "tests", "benchmarks"]
    for command in ([RUFF, "check", "--no-cache"], [RUFF, "format", "--check", "--no-cache"]):
        result = subprocess.run(
            [*command, *sources], cwd=template, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr

"""The hooks: every validation rule rejects its bad answer with one clear message and leaves no
output; hostile answers render safely; two bakes with the same answers are byte-identical."""

import filecmp
import json
import tomllib
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException

from .conftest import bake
from .test_rendered import run

REJECTED = [
    pytest.param(
        {"project_name": "Two\nLines"},
        "project_name = 'Two\\nLines': must be a single line",
        id="name-newline",
    ),
    pytest.param({"project_name": "  "}, "project_name = '  ': must not be empty", id="name-empty"),
    pytest.param(
        {"project_slug": "My_Service"},
        "project_slug = 'My_Service': must be 1-64 lowercase",
        id="slug",
    ),
    pytest.param(
        {"package_name": "2fast"},
        "package_name = '2fast': must be a Python identifier",
        id="package-identifier",
    ),
    pytest.param(
        {"package_name": "import"},
        "package_name = 'import': must not be a Python keyword",
        id="package-keyword",
    ),
    pytest.param(
        {"package_name": "json"}, "package_name = 'json': must not shadow", id="package-stdlib"
    ),
    pytest.param(
        {"package_name": "celery"},
        "package_name = 'celery': must not shadow",
        id="package-dependency",
    ),
    pytest.param({"author_email": "nobody"}, "author_email = 'nobody': must look like", id="email"),
    pytest.param({"broker": "kafka"}, "broker", id="broker"),
    pytest.param(
        {"aws_region": "Europe"}, "aws_region = 'Europe': must be an AWS region code", id="region"
    ),
    pytest.param(
        {"aws_account_id": "12345"},
        "aws_account_id = '12345': must be exactly 12 digits",
        id="account",
    ),
    pytest.param(
        {"queues": "default,Slow Work"},
        "queues = 'default,Slow Work': 'Slow Work' must be 1-32 lowercase letters",
        id="queue-name",
    ),
    pytest.param(
        {"queues": "default, default"},
        "queues = 'default, default': 'default' must be named once",
        id="queue-twice",
    ),
    pytest.param(
        {"queues": "fast,beat"},
        "queues = 'fast,beat': 'beat' is taken by the beat's ECS service",
        id="queue-beat",
    ),
    pytest.param({"queues": ""}, "queues = '': '' must be 1-32 lowercase", id="queue-none"),
    pytest.param({"ecs_cpu": "300"}, "ecs_cpu = '300': must be a Fargate CPU size", id="cpu"),
    pytest.param(
        {"ecs_memory": "1024"},
        "ecs_memory = '1024': with ecs_cpu 1024 Fargate allows 2048-8192 MiB",
        id="cpu-memory-pair",
    ),
    pytest.param(
        {"ecs_stop_timeout": "300"},
        "ecs_stop_timeout = '300': must be 2-120 seconds",
        id="stop-timeout-range",
    ),
    pytest.param(
        {"ecs_stop_timeout": "two"},
        "ecs_stop_timeout = 'two': must be a whole number",
        id="stop-timeout-number",
    ),
    pytest.param(
        {"worker_concurrency": "0"},
        "worker_concurrency = '0': must be at least 1",
        id="concurrency",
    ),
    pytest.param(
        {"task_soft_time_limit": "95"},
        "task_soft_time_limit = '95': must be below task_time_limit (90)",
        id="soft-not-below-hard",
    ),
    pytest.param(
        {"task_time_limit": "110", "task_soft_time_limit": "100"},
        "task_time_limit = '110': must fit the shutdown window of 105 s",
        id="hard-outside-window",
    ),
    pytest.param(
        {"ecs_stop_timeout": "20"},
        "task_time_limit = '90': must fit the shutdown window of 10 s",
        id="window-follows-stop-timeout",
    ),
]


def outputs(path: Path) -> list[str]:
    return sorted(item.name for item in path.iterdir()) if path.exists() else []


@pytest.mark.parametrize(("answers", "message"), REJECTED)
def test_bad_answer_is_rejected_and_leaves_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], answers: dict[str, str], message: str
) -> None:
    with pytest.raises((FailedHookException, ValueError)):
        bake(tmp_path, answers)
    assert message in capfd.readouterr().err or answers.get("broker") == "kafka"
    assert outputs(tmp_path) == []


def test_all_problems_are_reported_at_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(FailedHookException):
        bake(tmp_path, {"aws_account_id": "1", "ecs_cpu": "3", "worker_concurrency": "0"})
    err = capfd.readouterr().err
    assert "aws_account_id = '1'" in err
    assert "ecs_cpu = '3'" in err
    assert "worker_concurrency = '0'" in err
    assert outputs(tmp_path) == []


def test_hostile_answers_render_as_data(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    code = f'"); __import__("pathlib").Path({str(marker)!r}).touch()  # \\ \'\'\' """'
    answers = {
        "project_name": f"Evil {code}",
        "project_slug": "evil",
        "description": f"desc {code}",
        "author_name": f"Mallory {code}",
    }
    project = bake(tmp_path / "out", answers)
    assert not marker.exists()
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == answers["description"]
    assert pyproject["project"]["authors"][0]["name"] == answers["author_name"]
    stored = json.loads((project / ".cookiecutter.json").read_text())
    assert stored["project_name"] == answers["project_name"]
    # The package's docstring holds the name; it must still be valid Python.
    source = (project / "src" / "evil" / "__init__.py").read_text()
    compile(source, "__init__.py", "exec")
    assert not marker.exists()


def test_hostile_answer_in_validated_field_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(FailedHookException):
        bake(tmp_path, {"package_name": 'x"); import os; os.system("true'})
    assert outputs(tmp_path) == []


def test_same_answers_give_identical_bytes(tmp_path: Path) -> None:
    first = bake(tmp_path / "one", {"broker": "redis"})
    second = bake(tmp_path / "two", {"broker": "redis"})
    files = sorted(str(path.relative_to(first)) for path in first.rglob("*") if path.is_file())
    assert files == sorted(str(p.relative_to(second)) for p in second.rglob("*") if p.is_file())
    match, mismatch, errors = filecmp.cmpfiles(first, second, files, shallow=False)
    assert (mismatch, errors) == ([], [])
    assert len(match) == len(files)


def test_post_hook_prints_the_next_commands(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    bake(tmp_path, {})
    assert capfd.readouterr().out.strip().splitlines() == [
        "Next:",
        "  cd newsletter-worker",
        "  uv sync --locked",
        "  uv run pytest",
    ]


#: Answers that the hook and the rendered service judge with the one rules module (rules.py):
#: (ecs_stop_timeout, task_soft_time_limit, task_time_limit, ecs_cpu, ecs_memory).
SHARED_RULE_CASES = [
    ("120", "75", "90", "1024", "2048"),
    ("120", "100", "105", "256", "2048"),
    ("120", "100", "106", "1024", "2048"),
    ("30", "10", "15", "512", "4096"),
    ("30", "10", "16", "512", "4096"),
    ("2", "1", "1", "1024", "2048"),
    ("3", "1", "2", "1024", "2048"),
    ("121", "10", "20", "1024", "2048"),
    ("60", "40", "40", "1024", "2048"),
    ("120", "75", "90", "256", "1536"),
    ("120", "75", "90", "512", "5120"),
    ("120", "75", "90", "16384", "122880"),
    ("120", "75", "90", "300", "2048"),
]

RENDERED_VERDICTS = """
import json, sys
from {package}.core import config, rules
verdicts = []
for stop, soft, hard, cpu, memory in json.loads(sys.argv[1]):
    env = {{"ECS_STOP_TIMEOUT": stop, "TASK_SOFT_TIME_LIMIT": soft, "TASK_TIME_LIMIT": hard}}
    try:
        config.from_env(env, config.current().queues[0].name)  # a worker of the default queue
        accepted = True
    except config.ConfigError:
        accepted = False
    verdicts.append(accepted and rules.fargate_memory_rule(int(cpu), int(memory), "cpu") is None)
print(json.dumps(verdicts))
"""


def test_hook_and_rendered_service_agree_on_the_shared_rules(tmp_path: Path) -> None:
    hook_verdicts = []
    for index, (stop, soft, hard, cpu, memory) in enumerate(SHARED_RULE_CASES):
        answers = {
            "ecs_stop_timeout": stop,
            "task_soft_time_limit": soft,
            "task_time_limit": hard,
            "ecs_cpu": cpu,
            "ecs_memory": memory,
        }
        try:
            bake(tmp_path / str(index), answers)
            hook_verdicts.append(True)
        except FailedHookException:
            hook_verdicts.append(False)
    project = bake(tmp_path / "rendered", {})
    script = RENDERED_VERDICTS.format(package="newsletter_worker")
    result = run(
        ["uv", "run", "--locked", "python", "-c", script, json.dumps(SHARED_RULE_CASES)],
        project,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == hook_verdicts
    assert True in hook_verdicts
    assert False in hook_verdicts

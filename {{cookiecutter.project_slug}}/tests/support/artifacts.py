"""The deploy files as the artifact checks read them, and the copies of them the tests break.

A check returns one line per problem, naming the setting, its value and the rule; each check
passes the project's files and finds the problem planted in each of its broken copies.
"""

import copy
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from {{ cookiecutter.package_name }}.core import config

from .workers import PROJECT

DEPLOY = PROJECT / "deploy" / "ecs"
#: In a settings table: any value, as long as there is one.
REQUIRED = object()


class Same(str):
    """In a settings table: the value of the setting at this path."""


@dataclass
class Artifacts:
    task_definition: dict[str, Any]
    service: dict[str, Any]
    dockerfile: str
    #: The container that ``container.`` paths name: the worker's, or the beat's.
    container_name: str = "worker"
    #: The queue of queues.py whose workers these files run (none: the beat's).
    queue: str | None = None

    @property
    def container(self) -> dict[str, Any]:
        """The worker's (or the beat's) container definition."""
        containers = self.task_definition["containerDefinitions"]
        return next(c for c in containers if c["name"] == self.container_name)

    @property
    def image(self) -> DockerfileParser:
        return DockerfileParser(fileobj=io.BytesIO(self.dockerfile.encode()))

    def final_stage(self, *instructions: str) -> list[tuple[str, str]]:
        """(instruction, value) of these after the last FROM: in the image that runs."""
        found: list[tuple[str, str]] = []
        for item in self.image.structure:
            if item["instruction"] == "FROM":
                found = []
            elif item["instruction"] in instructions:
                found.append((item["instruction"], item["value"]))
        return found

    def get(self, path: str) -> Any:
        """The setting at ``task|container|service.KEY...``, ``environment|secrets.NAME``,
        ``image.cmd``, ``image.user`` or ``image.env.NAME``; None where there is none."""
        root, _, rest = path.partition(".")
        if root in ("environment", "secrets"):
            entries = self.container.get(root, [])
            return next(
                (e.get("value", e.get("valueFrom")) for e in entries if e["name"] == rest), None
            )
        if path == "image.cmd":
            try:
                return json.loads(self.image.cmd or "null")
            except json.JSONDecodeError:  # shell form, which hadolint refuses (DL3025)
                return self.image.cmd
        if path == "image.user":
            return ([None] + [value for _, value in self.final_stage("USER")])[-1]
        if root == "image":
            return self.image.envs.get(rest.removeprefix("env."))
        node: Any = dict(task=self.task_definition, container=self.container, service=self.service)
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        return node

    def edit(self, path: str, value: Any) -> None:
        """Set the setting at ``path`` to ``value`` (None removes it); ``Dockerfile:PATTERN``
        replaces what the regular expression matches in the Dockerfile."""
        root, _, rest = path.partition(".")
        if path.startswith("Dockerfile:"):
            pattern = path.removeprefix("Dockerfile:")
            self.dockerfile, count = re.subn(pattern, value, self.dockerfile, flags=re.MULTILINE)
            assert count, f"{pattern!r} matches nothing in the Dockerfile"
        elif root in ("environment", "secrets"):
            entries = self.container.setdefault(root, [])
            entries[:] = [entry for entry in entries if entry["name"] != rest]
            field = "value" if root == "environment" else "valueFrom"
            entries += [{"name": rest, field: value}] if value is not None else []
        else:
            parent, _, key = path.rpartition(".")
            node = self.get(parent)
            if value is None:
                del node[key]
            else:
                node[key] = value


def load(queue: str | None = None) -> Artifacts:
    """The task definition and service of ``queue``'s workers (the default queue's)."""
    queue = queue or config.current().queues[0].name
    files = DEPLOY / "queues" / queue
    return Artifacts(
        task_definition=json.loads((files / "task-definition.json").read_text()),
        service=json.loads((files / "service.json").read_text()),
        dockerfile=(PROJECT / "Dockerfile").read_text(),
        queue=queue,
    )


def load_beat() -> Artifacts:
    """The beat's task definition and service (``beat-*.json``)."""
    return Artifacts(
        task_definition=json.loads((DEPLOY / "beat-task-definition.json").read_text()),
        service=json.loads((DEPLOY / "beat-service.json").read_text()),
        dockerfile=(PROJECT / "Dockerfile").read_text(),
        container_name="beat",
    )


Check = Callable[[Artifacts], list[str]]
#: A broken copy: setting -> value, as ``Artifacts.edit`` takes them.
Edits = dict[str, Any]
#: check -> {case: (a broken copy, what the check must then report)}
Broken = dict[Check, dict[str, tuple[Edits, str]]]
#: (setting, what it must be, why): a value, ``Same(path)`` or ``REQUIRED``.
Settings = tuple[tuple[str, Any, str], ...]


def settings_problems(artifacts: Artifacts, settings: Settings) -> list[str]:
    problems = []
    for path, want, why in settings:
        value = artifacts.get(path)
        if isinstance(want, Same) and value != (other := artifacts.get(want)):
            problems.append(f"{path}={value!r}: must equal {want}={other!r} ({why})")
        elif want is REQUIRED and not value:
            problems.append(f"{path}={value!r}: must be set ({why})")
        elif not isinstance(want, Same) and want is not REQUIRED and value != want:
            problems.append(f"{path}={value!r}: must be {want!r} ({why})")
    return problems


def without_each(settings: Settings) -> dict[str, tuple[Edits, str]]:
    """A settings table's broken copies: each setting removed in turn."""
    return {f"no-{path}": ({path: None}, f"{path}=None") for path, _, _ in settings}


def cases(broken: Broken) -> list[Any]:
    """pytest parameters (check, edits, expected): each check unbroken, then broken."""
    params = []
    for check, copies in broken.items():
        assert copies, f"{check.__name__} has no broken copy: show that it can fail"
        params.append(pytest.param(check, None, "", id=f"{check.__name__}-passes"))
        params += [
            pytest.param(check, edits, expected, id=f"{check.__name__}-{case}")
            for case, (edits, expected) in copies.items()
        ]
    return params


def verify(
    check: Check, edits: Edits | None, expected: str, loader: Callable[[], Artifacts] = load
) -> None:
    """The files pass ``check``; a copy broken by ``edits`` makes it report ``expected``."""
    artifacts = loader()
    if edits is None:
        assert check(artifacts) == []
        return
    broken = copy.deepcopy(artifacts)
    for path, value in edits.items():
        broken.edit(path, value)
    assert broken != artifacts, "the edits changed nothing"
    assert any(expected in problem for problem in check(broken)), check(broken)

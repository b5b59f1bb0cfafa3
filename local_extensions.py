"""Jinja extensions of the template (cookiecutter's ``_extensions``; cruft loads them too)."""

from pathlib import Path

from jinja2 import Environment
from jinja2.ext import Extension

PACKAGE = Path(__file__).resolve().parent / "{{cookiecutter.project_slug}}" / "src"
#: The rendered package's rules module: plain Python that the pre-generation hook loads as is.
RULES = PACKAGE / "{{cookiecutter.package_name}}" / "core" / "rules.py"


class SharedRules(Extension):
    """Makes ``rules_path`` known to the templates, so the hook checks with the service's rules."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals["rules_path"] = str(RULES)

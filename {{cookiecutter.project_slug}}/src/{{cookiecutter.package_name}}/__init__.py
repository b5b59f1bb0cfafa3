"""{{ cookiecutter.project_name | replace('"', "'") | replace('\\', '/') }}: a Celery worker service hardened for AWS ECS."""

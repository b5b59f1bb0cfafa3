"""An example task: replace it with the service's own work."""

from ..celery_app import app


@app.task(name="example.add")
def add(x: int, y: int) -> int:
    """Add two numbers; a task short enough to never meet the ECS stop window."""
    return x + y

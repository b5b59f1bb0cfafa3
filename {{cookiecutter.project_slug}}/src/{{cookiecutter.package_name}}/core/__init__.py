"""The core, owned by the template: configuration, Celery settings, the base task and the
machinery behind every guarantee. The service's code (``tasks/``, ``models.py``,
``service_settings.py``) builds on it; a template update changes files here, never those."""

"""The service's tasks; each module is listed in ``settings.celery_settings()['imports']``."""

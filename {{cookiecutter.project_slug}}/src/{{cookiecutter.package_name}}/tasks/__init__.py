"""The service's tasks: every module in this package is registered (``settings.task_modules``)."""

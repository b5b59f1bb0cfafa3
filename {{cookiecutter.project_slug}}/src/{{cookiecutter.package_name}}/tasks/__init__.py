"""The service's tasks: every module in this package is registered, with no other file to edit."""

"""A Celery app that has never heard of celery-fleet (molecule/ssh deploys it)."""

"""celery-fleet's example Celery app: the queues of seed 002, the chord of seed 000, seed 003's reliability.

Worker command: ``celery -A celery_demo.app worker ...`` with this directory's parent on the path.
"""

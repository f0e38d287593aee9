"""The worker process: drains the procrastinate queue, verifying one address per task."""

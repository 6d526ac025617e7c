"""The Celery application: broker, queue and the delivery guarantees long animation tasks need.

What matters for a job that runs for minutes or hours on a machine that may die:

* tasks are acknowledged only after they finish (``acks_late``) and a task whose worker process
  was killed is put back in the queue (``reject_on_worker_lost``), so no work is lost;
* a worker reserves one task per process (``prefetch_multiplier`` 1), so queued work stays in
  the broker where priorities apply and another worker can take it;
* soft and hard time limits stop a task that hangs; the task code retries with backoff;
* on Redis, an unacknowledged task is redelivered only after ``visibility_timeout``, which must
  exceed the longest task, or a running segment would be handed to a second worker;
* one queue with message priorities: paid plans' tasks overtake free ones waiting there.

Results are kept in the database by the tasks themselves, so no result backend is used.
"""

from functools import lru_cache

from celery import Celery
from kombu import Queue

from animatica.settings import Settings

# Message priorities 0..MAX_PRIORITY. RabbitMQ serves the highest number first, Celery's Redis
# transport the lowest; ``message_priority`` hides the difference from the rest of the code.
MAX_PRIORITY = 9
TASK_MODULE = "animatica.jobs.distributed.tasks"


def is_redis(broker_url: str) -> bool:
    return broker_url.startswith(("redis://", "rediss://", "redis+socket://"))


def message_priority(broker_url: str, urgency: int) -> int:
    """The broker's priority number for ``urgency`` (0 = free plan; higher = more urgent)."""
    level = max(0, min(MAX_PRIORITY, urgency))
    return MAX_PRIORITY - level if is_redis(broker_url) else level


def build_app(settings: Settings) -> Celery:
    """A Celery app configured from ``settings``; the tasks register themselves on import."""
    if not settings.broker_url:
        raise ValueError("ANIMATICA_BROKER_URL is empty; distributed mode needs a broker")
    app = Celery("animatica", broker=settings.broker_url, include=[TASK_MODULE], set_as_current=False)
    transport: dict[str, object] = {}
    if is_redis(settings.broker_url):
        transport = {
            "visibility_timeout": int(settings.broker_visibility_timeout),
            "priority_steps": list(range(MAX_PRIORITY + 1)),
            "sep": ":",
            "queue_order_strategy": "priority",
        }
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        task_default_queue=settings.celery_queue,
        task_queues=[
            Queue(
                settings.celery_queue,
                routing_key=settings.celery_queue,
                queue_arguments={"x-max-priority": MAX_PRIORITY},
            )
        ],
        task_queue_max_priority=MAX_PRIORITY,
        task_default_priority=message_priority(settings.broker_url, 0),
        task_create_missing_queues=False,
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 30,
            "interval_start": 0.5,
            "interval_step": 1.0,
            "interval_max": 5.0,
        },
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options=transport,
        broker_heartbeat=30,
    )
    return app


@lru_cache(maxsize=8)
def producer_app(broker_url: str, queue: str, pid: int) -> Celery:
    """One cached app per broker and process for sending tasks (``pid`` keys the cache)."""
    return build_app(Settings(broker_url=broker_url, celery_queue=queue))

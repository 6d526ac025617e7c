"""Jobs on Celery workers: the same job lifecycle, spread over a cluster.

A job of a kind without segments is one task (``animatica.run``) that goes through
`lifecycle.run_job`, exactly as in the service's runner. A segmented kind (animation) runs as
prepare → segments in parallel → join:

* ``prepare`` claims the queued job, runs the kind's plan step once (for an animation: probe the
  inputs, find the initial driving frame) and writes the segment plan (`plans`);
* the dispatcher hands a user's pending segments to the broker while that user has fewer than
  ``segments_per_user`` in flight, most urgent job first. A long job therefore never fills the
  queue: other users' work (and paid work, which has a higher message priority) interleaves;
* ``segment`` runs one segment into a fixed storage key, so running it again overwrites the same
  file, and its row is marked done once;
* the task that finishes the last segment claims the join exactly once; ``join`` builds the
  result from the segments in order and ends the job through `state`, like the in-process runner.

The database is the source of truth; the broker only carries "run this now". Every task is safe
to run twice, which is what at-least-once delivery (late acknowledgement, redelivery when a
worker dies or the broker restarts) needs: a task first checks in the database whether its work
is still to do. ``reconcile`` re-sends whatever the broker never accepted.

Tasks are bounded in time by Celery's soft limit, which the message carries: a task that runs a
known number of frames is bounded as an in-process job of that length (``JobBounds``),
``job_timeout_seconds`` bounds every task when it is set, and otherwise ``task_soft_time_limit``
applies. A task that overruns is not retried (it would overrun again): its job fails with the same
words as in-process, credit returned. Unexpected errors are retried with backoff first.

Modules: `app` (the Celery application and delivery settings), `dispatch` (sending, per-user
segment dispatch, reconcile), `stages` (prepare, segment, join, a whole job, ending a job),
`tasks` (the Celery task functions), `worker` (per-process context, ``run_worker``), `plans`
(the segment plan tables).
"""

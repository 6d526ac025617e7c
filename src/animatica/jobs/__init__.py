"""Jobs: work a user queued, run to an end that is recorded once and paid for once.

`state` is the state machine in the database and the only writer of a job's status; `kinds`
declares what jobs do (`animation` is the built-in kind); `lifecycle` runs one job whatever its
kind; `runner` (threads in the service, jobs in `child` processes) and `distributed` (Celery
workers) are the two ways of running them.
"""

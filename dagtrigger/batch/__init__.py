"""Batch windows: many events become one DAG run per (route, group, window), started only once the window closed.

There is no state store of ours: Airflow's unique run ids and the member objects in Cloud Storage are the ledger, so
everything that names a window, a run or a member is deterministic in the event (never in the delivery).

``windows``       pure time arithmetic: the window an event time falls in
``placement``     pure: the group, run id, Airflow 2 logical dates and member object of one event on one route
``single_flight`` in-process sharing of concurrent calls (one POST per run, one state read per burst)
``members``       the member objects in Cloud Storage
``batcher``       one event on a batched route: record the member, make sure the run exists, apply the late rule

A route's ``batch:`` field is read with the other route fields (``rules.BatchSpec``); the run's conf is rendered
beside the plain conf (``render.render_batch``).
"""

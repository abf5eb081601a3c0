"""Every upload accounted for: ``why`` explains one object version, ``sweep`` finds (and sends) what never arrived.

No database of ours: a run id is deterministic in the object version, so Airflow's runs, the dead-letter store and
the batch member store already say what happened to each upload. The data flows one way, one module per stage:

``interval``  DURATION / TIMESTAMP → the [since, until) a sweep looks at
``listing``   routes → the Cloud Storage listings that cover them (bucket, prefix, glob → matchGlob), and the objects
``synthetic`` an object's metadata → the ``finalized`` event the function would have received
``expect``    event + route → what the ledger should hold: the run id, the dead-letter key, the batch member
``ledger``    what Airflow, the dead letters and the members hold, read in bulk (pages, not one call per object)
``verdict``   expectation + ledger → triggered / dead_lettered / ignored / pending / missing (pure)
``summary``   the counts of a sweep, per (object version, route) pair
``cursor``    where a sweep stopped when its time budget ran out (next to the dead letters)
``sweep``, ``why``  the two commands; missing events go through ``pipeline.Pipeline`` like live ones
``drain``     what an Eventarc trigger's dead-letter topic kept: ``pubsub_rest`` pulls and acknowledges, ``unwrap``
              turns each message back into its CloudEvent, the pipeline sends it; acknowledged once accounted for
"""

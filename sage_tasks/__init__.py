"""sage-tasks: probe, pin, fetch, build, test-kernel and publish SageAttention wheels.

The package is laid out by concern: ``core`` (settings, errors, the one subprocess runner,
rendering, atomic files), ``stages`` (one module per task), ``store`` (where wheels live and
their manifests), ``environment`` (installing into a target interpreter, as a transaction),
``wheel`` (reading and checking wheel files) and ``target`` (scripts that run inside the target
interpreter, copied there as files). ``cli`` is the ``sage-tasks`` console command.
"""

"""The SukverseCohort operator: a pure reconciler, its Kopf adapter and its CLI runner."""

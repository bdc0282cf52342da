"""Subjective statistics: pure functions over pandas DataFrames, importable without Django.

Every estimator returns its frames together with a :class:`~.common.ModelId` (name and version)
so a stored or exported result always says which model produced it.
"""

"""Analyses of models and perturbations: pure functions returning tensors, arrays and dicts.

The papers each analysis follows, and their parameters, are listed in docs/sources.md.
"""

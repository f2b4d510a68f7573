"""The workflow space: a typed IR of agent workflows, its rendering to candidate code, lifting back, and moves.

    >>> import random
    >>> from metasearch.space import validate, render, lift, mutate
    >>> wf = validate({"stages": [{"op": "self_consistency", "n": 5}]})
    >>> lift(render(wf)) == wf
    True
    >>> mutate(wf, random.Random(0)).key() != wf.key()
    True
"""

from metasearch.space.ir import ROLES, SEED_WORKFLOWS, IRError, Workflow, validate
from metasearch.space.lift import code_features, lift
from metasearch.space.moves import crossover, mutate, neighbours, random_workflow
from metasearch.space.render import render

__all__ = ["ROLES", "SEED_WORKFLOWS", "IRError", "Workflow", "validate", "render", "lift", "code_features", "mutate",
           "crossover", "neighbours", "random_workflow"]

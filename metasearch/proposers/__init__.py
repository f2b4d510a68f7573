"""Search strategies behind one interface: meta (ADAS), mcts (value-pruned MCTS), random (baseline)."""

from __future__ import annotations

from metasearch.config import SearchConfig
from metasearch.proposers.base import Proposal, Proposer, SearchContext


def make_proposer(cfg: SearchConfig) -> Proposer:
    """The proposer named in the config (imports lazily: each strategy is its own module)."""
    name = cfg.strategy.name
    if name == "meta":
        from metasearch.proposers.meta_agent import MetaAgentProposer

        return MetaAgentProposer()
    if name == "random":
        from metasearch.proposers.random import RandomProposer

        return RandomProposer()
    from metasearch.proposers.mcts import MCTSProposer

    return MCTSProposer(cfg.strategy.mcts)


__all__ = ["Proposal", "Proposer", "SearchContext", "make_proposer"]

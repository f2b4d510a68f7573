"""Random search over the workflow space: the baseline every strategy must beat at the same budget."""

from __future__ import annotations

import random

from metasearch.llm.seeding import derive_seed
from metasearch.novelty import fingerprint
from metasearch.proposers.base import Proposal, Proposer, SearchContext


class RandomProposer(Proposer):
    name = "random"

    def __init__(self, max_attempts: int = 50) -> None:
        self.max_attempts = max_attempts

    def propose(self, ctx: SearchContext, iteration: int) -> list[Proposal]:
        from metasearch.space import random_workflow, render

        rng = random.Random(derive_seed(ctx.cfg.seed, "random", iteration))
        seen = {fingerprint(c["code"]) for c in ctx.view(iteration)}  # not later rows: resume must re-propose them
        for _ in range(self.max_attempts):
            wf = random_workflow(rng)
            name = f"Random {iteration}: {wf.describe()}"[:120]
            code = render(wf, name=name, thought="Sampled uniformly from the workflow space (baseline).")
            if fingerprint(code) not in seen:
                break
        return [Proposal(code=code, name=name, origin="random", thought="random baseline", ir=wf.to_dict())]

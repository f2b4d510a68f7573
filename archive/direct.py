"""Direct answering (IO prompting): the question alone, the model answers at once.

The plain input-output baseline of the agent-search papers ("IO" in AFlow, Zhang et al., 2024, Table 1): no
reasoning instruction, one call. It anchors the bottom of the seed library.
"""

NAME = "Direct Answer"
THOUGHT = "The simplest agent: one call, no reasoning instruction. Every other design must beat it."

WORKFLOW = {
    "stages": [
        {"op": "generate", "mode": "direct"},
    ],
    "answer_format": "plain",
}


def forward(task, lm):
    prompt = task.question + "\n\nGive only the final answer, on a last line of the form 'Answer: <answer>'."
    return extract_answer(lm.ask(prompt), task.kind)

"""Chain-of-Thought with Self-Consistency: sample several reasoning paths and take the majority answer.

Wang et al., 2023, "Self-Consistency Improves Chain of Thought Reasoning in Language Models". As the ADAS seed
(Hu et al., 2024): N = 5 samples at a higher temperature, majority vote over their final answers.
"""

NAME = "Self-Consistency with Chain-of-Thought"
THOUGHT = ("Independent reasoning paths make different mistakes; the answer most of them reach is more often "
           "right than any single path.")

WORKFLOW = {
    "stages": [
        {"op": "self_consistency", "n": 5, "temperature": 0.8, "aggregate": "majority", "mode": "cot", "diverse": False},
    ],
    "answer_format": "plain",
}

SAMPLES = 5
TEMPERATURE = 0.8


def forward(task, lm):
    prompt = (task.question + "\n\nLet's think step by step. End with a last line of the form "
              "'Answer: <answer>'.")
    replies = lm.ask(prompt, temperature=TEMPERATURE, n=SAMPLES)
    if isinstance(replies, str):
        replies = [replies]
    return majority_vote([extract_answer(r, task.kind) for r in replies])

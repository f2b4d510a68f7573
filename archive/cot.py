"""Chain-of-Thought: reason step by step before answering.

Wei et al., 2022, "Chain-of-Thought Prompting Elicits Reasoning in Large Language Models"; zero-shot form
"Let's think step by step" from Kojima et al., 2022. The ADAS seed (Hu et al., 2024) asks for a JSON reply with
the reasoning and the answer as separate fields.
"""

NAME = "Chain-of-Thought"
THOUGHT = ("Asking the model to reason step by step before answering lets it work through intermediate steps, "
           "which improves multi-step problems.")

WORKFLOW = {
    "stages": [
        {"op": "generate", "mode": "cot"},
    ],
    "answer_format": "json",
}


def forward(task, lm):
    prompt = task.question + "\n\nLet's think step by step, then give the final answer."
    reply = lm.ask_json(prompt, fields={"thinking": "Your step by step reasoning.",
                                        "answer": "The final answer only, without explanation."})
    return extract_answer(str(reply.get("answer", "")), task.kind)

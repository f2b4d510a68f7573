"""Step-back Abstraction: first recall the principles behind the question, then solve it with them.

Zheng et al., 2023, "Take a Step Back: Evoking Reasoning via Abstraction in Large Language Models". As the ADAS
seed (Hu et al., 2024): one call for the principles, one chain-of-thought call that uses them.
"""

NAME = "Step-back Abstraction"
THOUGHT = ("Recalling the general principles first grounds the reasoning and avoids getting lost in the details "
           "of the specific question.")

WORKFLOW = {
    "stages": [
        {"op": "step_back"},
        {"op": "generate", "mode": "cot"},
    ],
    "answer_format": "json",
}


def forward(task, lm):
    principles = lm.ask(task.question + "\n\nTake a step back: what are the principles and concepts involved in "
                        "solving this task? List them and explain them briefly; do not solve the task yet.")
    prompt = (task.question + "\n\nHere are the principles behind the question, found by taking a step back:\n"
              + principles + "\n\nUsing these principles, let's think step by step and solve the task.")
    reply = lm.ask_json(prompt, fields={"thinking": "Your step by step reasoning.",
                                        "answer": "The final answer only, without explanation."})
    return extract_answer(str(reply.get("answer", "")), task.kind)

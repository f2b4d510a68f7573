"""Self-Refine: answer, critique the answer, improve it with the feedback; repeat until judged correct.

Madaan et al., 2023, "Self-Refine: Iterative Refinement with Self-Feedback"; Shinn et al., 2023 (Reflexion).
As the ADAS seed (Hu et al., 2024): up to 5 rounds of critique then improvement, stopping when the critic
says the answer is correct.
"""

NAME = "Self-Refine (Reflexion)"
THOUGHT = ("A model can often spot errors in a finished solution; feeding its critique back lets it improve the "
           "answer over a few rounds.")

WORKFLOW = {
    "stages": [
        {"op": "generate", "mode": "cot"},
        {"op": "self_refine", "rounds": 4, "critic": True},
    ],
    "answer_format": "json",
}

MAX_ROUNDS = 5
FIELDS = {"thinking": "Your step by step reasoning.", "answer": "The final answer only, without explanation."}


def forward(task, lm):
    attempt = lm.ask_json(task.question + "\n\nLet's think step by step, then give the final answer.",
                          fields=FIELDS)
    for _ in range(MAX_ROUNDS):
        shown = "Reasoning: " + str(attempt.get("thinking", "")) + "\nAnswer: " + str(attempt.get("answer", ""))
        review = lm.ask_json(
            task.question + "\n\nProposed solution:\n" + shown
            + "\n\nCritique the solution above: look for errors in its reasoning and its final answer.",
            fields={"feedback": "Your critique of the solution.",
                    "correct": "True if the final answer is correct, otherwise False."})
        if str(review.get("correct", "")).strip().lower() == "true":
            break
        attempt = lm.ask_json(
            task.question + "\n\nYour previous attempt:\n" + shown + "\n\nFeedback: " + str(review.get("feedback", ""))
            + "\n\nImprove your answer using the feedback. Let's think step by step.", fields=FIELDS)
    return extract_answer(str(attempt.get("answer", "")), task.kind)

"""Quality-Diversity: several deliberately different attempts, then a final answer that weighs them.

Inspired by quality-diversity search (Lehman & Stanley, 2011; Mouret & Clune, 2015) as the ADAS seed
(Hu et al., 2024): 3 attempts, each asked to solve the task in another way than the earlier ones, then a
final decision over all of them.
"""

NAME = "Quality-Diversity"
THOUGHT = ("Diverse attempts explore different solution paths; a final decision over them can pick the best "
           "idea among them.")

WORKFLOW = {
    "stages": [
        {"op": "self_consistency", "n": 3, "temperature": 0.8, "aggregate": "select", "mode": "cot", "diverse": True},
    ],
    "answer_format": "plain",
}

ATTEMPTS = 3


def forward(task, lm):
    attempts = []
    for i in range(ATTEMPTS):
        if i == 0:
            prompt = (task.question + "\n\nLet's think step by step. End with a last line of the form "
                      "'Answer: <answer>'.")
        else:
            shown = "\n\n".join("Attempt " + str(j + 1) + ":\n" + a for j, a in enumerate(attempts))
            prompt = (task.question + "\n\nPrevious attempts:\n" + shown + "\n\nGiven the previous attempts, try "
                      "to come up with another interesting way to solve the task. Let's think step by step. End "
                      "with a last line of the form 'Answer: <answer>'.")
        attempts.append(lm.ask(prompt, temperature=0.8))
    shown = "\n\n".join("Solution " + str(j + 1) + ":\n" + a for j, a in enumerate(attempts))
    final = lm.ask(task.question + "\n\n" + shown + "\n\nGiven all the above solutions, reason over them carefully "
                   "and provide a final answer. End with 'Answer: <answer>'.", temperature=0.1)
    return extract_answer(final, task.kind)

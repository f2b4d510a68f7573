"""LLM Debate: several agents answer, read each other's answers, answer again; a final agent decides.

Du et al., 2023, "Improving Factuality and Reasoning in Language Models through Multiagent Debate". As the
ADAS seed (Hu et al., 2024): 3 agents with different roles, 2 rounds, then a final decision.
"""

NAME = "LLM Debate"
THOUGHT = ("Agents that see other agents' reasoning can correct their own mistakes; disagreement surfaces the "
           "errors a single model would not notice.")

WORKFLOW = {
    "stages": [
        {"op": "debate", "agents": 3, "rounds": 1, "aggregate": "select"},
    ],
    "answer_format": "plain",
}

ROUNDS = 2
ROLES = {"math": ["a math professor", "a grade school teacher", "a math enthusiast"],
         "qa": ["a logic expert", "a careful reader", "a puzzle enthusiast"],
         "mc": ["a math professor", "an exam tutor", "a math enthusiast"],
         "code": ["a senior software engineer", "a Python developer", "a software tester"]}


def forward(task, lm):
    roles = ROLES.get(task.kind, ROLES["math"])
    answers = ["" for _ in roles]
    for round_index in range(ROUNDS):
        new_answers = []
        for i, role in enumerate(roles):
            if round_index == 0:
                prompt = (task.question + "\n\nLet's think step by step and then solve the task. End with a last "
                          "line of the form 'Answer: <answer>'.")
            else:
                others = "\n".join("Agent " + str(j + 1) + ":\nAnswer: " + answers[j]
                                   for j in range(len(roles)) if j != i)
                prompt = (task.question + "\n\nOther agents answered:\n" + others + "\n\nYour previous answer:\n"
                          "Answer: " + answers[i] + "\n\nUse the other agents' answers as additional advice. "
                          "Let's think step by step and give your answer, ending with 'Answer: <answer>'.")
            reply = lm.ask(prompt, system="You are " + role + ".", temperature=0.8)
            new_answers.append(extract_answer(reply, task.kind))
        answers = new_answers
    shown = "\n".join("Agent " + str(j + 1) + " (" + roles[j] + "):\nAnswer: " + answers[j]
                      for j in range(len(roles)))
    final = lm.ask(task.question + "\n\nThe debate is over. The agents' final answers:\n" + shown
                   + "\n\nGiven all the answers from the debate, reason over them carefully and provide a final "
                   "answer. Let's think step by step. End with 'Answer: <answer>'.", temperature=0.1)
    return extract_answer(final, task.kind)

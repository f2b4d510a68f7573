"""Dynamic Role Assignment: choose the expert best suited to the question, then answer as that expert.

Xu et al., 2023, "ExpertPrompting: Instructing Large Language Models to be Distinguished Experts"; the ADAS
seed "Dynamic Assignment of Roles" (Hu et al., 2024): a routing call picks a role, the expert answers with
chain-of-thought.
"""

NAME = "Dynamic Assignment of Roles"
THOUGHT = ("A role that fits the question primes the relevant knowledge and style of reasoning; routing picks "
           "the role per question.")

WORKFLOW = {
    "stages": [
        {"op": "role", "role": "auto"},
        {"op": "generate", "mode": "cot"},
    ],
    "answer_format": "plain",
}

EXPERTS = ["Math Professor", "Grade School Teacher", "Logic Puzzle Expert", "Senior Software Engineer",
           "Helpful Assistant"]


def forward(task, lm):
    options = ", ".join("'" + e + "'" for e in EXPERTS)
    choice = lm.ask_json(task.question + "\n\nChoose the expert role best suited to answer this question. "
                         "Choose one of: " + options + ".",
                         fields={"thinking": "Why this expert fits.", "choice": "The chosen expert role."})
    role = str(choice.get("choice", "")).strip().strip("'\"")
    if role not in EXPERTS:
        role = "Helpful Assistant"
    reply = lm.ask(task.question + "\n\nLet's think step by step, then end with a last line of the form "
                   "'Answer: <answer>'.", system="You are a " + role + ".")
    return extract_answer(reply, task.kind)

"""The workflow IR: validation with precise errors, canonical form, stable keys, call counts."""

import hashlib
import json
import subprocess
import sys

import pytest

from metasearch.errors import UserError
from metasearch.space import SEED_WORKFLOWS, IRError, Workflow, validate
from metasearch.space.ir import OPS


def test_every_seed_agent_of_adas_is_a_point_of_the_space():
    ops = set()
    for stem, data in SEED_WORKFLOWS.items():
        wf = validate(data)
        ops.update(wf.ops())
    assert {"direct", "cot", "cot_sc", "self_refine", "debate", "step_back", "quality_diversity",
            "role_assignment"} <= set(SEED_WORKFLOWS)
    assert ops == set(OPS) - {"ensemble", "verify"}


def test_combinations_of_techniques_validate():
    wf = validate({"stages": [{"op": "role", "role": "a skeptical reviewer"}, {"op": "step_back"},
                              {"op": "debate", "agents": 4, "rounds": 3, "aggregate": "majority"},
                              {"op": "self_refine", "rounds": 1, "critic": False}, {"op": "verify"},
                              {"op": "verify"}], "answer_format": "json"})
    assert wf.ops() == ["role", "step_back", "debate", "self_refine", "verify", "verify"]
    assert wf.role() == "a skeptical reviewer"
    assert wf.producer().op == "debate"


@pytest.mark.parametrize("stage, field, bound", [
    ({"op": "self_consistency", "n": 12}, "self_consistency.n", "9"),
    ({"op": "self_consistency", "n": 0}, "self_consistency.n", "1"),
    ({"op": "self_consistency", "temperature": 2.0}, "self_consistency.temperature", "1.5"),
    ({"op": "debate", "agents": 5}, "debate.agents", "4"),
    ({"op": "debate", "rounds": 0}, "debate.rounds", "1"),
    ({"op": "ensemble", "roles": ["a domain expert"]}, "ensemble.roles", "2"),
])
def test_out_of_bounds_parameters_name_the_field_and_the_bound(stage, field, bound):
    with pytest.raises(IRError) as info:
        validate({"stages": [stage]})
    message = str(info.value)
    assert field in message and bound in message
    assert "\n" not in message


def test_refine_rounds_bound_is_reported():
    with pytest.raises(IRError, match=r"self_refine\.rounds.*4"):
        validate({"stages": [{"op": "generate"}, {"op": "self_refine", "rounds": 5}]})


@pytest.mark.parametrize("data, fragment", [
    ({"stages": [{"op": "generate", "temprature": 0.3}]}, "temprature"),
    ({"stages": [{"op": "generate"}], "extra": 1}, "extra"),
    ({"stages": [{"op": "summon"}]}, "summon"),
    ({"stages": [{"op": "role", "role": "a wizard"}, {"op": "generate"}]}, "role.role"),
    ({"stages": [{"op": "generate"}, {"op": "debate"}]}, "exactly one producer"),
    ({"stages": [{"op": "verify"}]}, "exactly one producer"),
    ({"stages": [{"op": "verify"}, {"op": "generate"}]}, "before the producer"),
    ({"stages": [{"op": "generate"}, {"op": "step_back"}]}, "after the producer"),
    ({"stages": [{"op": "step_back"}, {"op": "role"}, {"op": "generate"}]}, "role must come before step_back"),
    ({"stages": [{"op": "role"}, {"op": "role"}, {"op": "generate"}]}, "at most one role"),
    ({"stages": [{"op": "generate"}] + [{"op": "verify"}] * 4}, "at most 3 refiner"),
    ({"stages": [{"op": "ensemble", "roles": ["a domain expert", "a domain expert"]}]}, "distinct"),
    ({"stages": []}, "stages"),
    ({"stages": [{"op": "generate"}], "answer_format": "xml"}, "answer_format"),
])
def test_invalid_workflows_raise_a_one_line_user_error(data, fragment):
    with pytest.raises(IRError) as info:
        validate(data)
    assert isinstance(info.value, UserError)
    assert fragment in str(info.value)


def test_non_dict_input_is_an_ir_error():
    with pytest.raises(IRError, match="expected a dict"):
        validate([{"op": "generate"}])


def test_to_dict_is_canonical_and_round_trips():
    sparse = validate({"stages": [{"op": "self_consistency"}]})
    explicit = validate({"answer_format": "plain", "stages": [
        {"op": "self_consistency", "n": 5, "temperature": 0.8, "aggregate": "majority", "mode": "cot",
         "diverse": False}]})
    assert sparse == explicit and sparse.key() == explicit.key()
    assert sparse.to_dict() == explicit.to_dict()
    assert validate(sparse.to_dict()) == sparse
    json.dumps(sparse.to_dict())  # plain data


def test_key_is_sha256_of_canonical_json_and_differs_by_parameter():
    wf = validate({"stages": [{"op": "self_consistency", "n": 5}]})
    expected = hashlib.sha256(json.dumps(wf.to_dict(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert wf.key() == expected[:16]
    assert validate({"stages": [{"op": "self_consistency", "n": 6}]}).key() != wf.key()


def test_key_is_the_same_in_another_process():
    data = SEED_WORKFLOWS["debate"]
    code = ("import json,sys; from metasearch.space import validate; "
            "print(validate(json.loads(sys.argv[1])).key())")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(data)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == validate(data).key()


def test_temperature_is_rounded_so_keys_do_not_drift():
    a = validate({"stages": [{"op": "self_consistency", "temperature": 0.1 + 0.2}]})
    b = validate({"stages": [{"op": "self_consistency", "temperature": 0.3}]})
    assert a.key() == b.key()


@pytest.mark.parametrize("stem, calls", [("direct", 1), ("cot", 1), ("cot_sc", 5), ("self_refine", 9),
                                         ("debate", 7), ("step_back", 2), ("quality_diversity", 4),
                                         ("role_assignment", 2)])
def test_expected_calls_of_the_seeds(stem, calls):
    assert validate(SEED_WORKFLOWS[stem]).expected_calls() == calls


def test_expected_calls_count_critique_calls_and_selection():
    blind = validate({"stages": [{"op": "generate"}, {"op": "self_refine", "rounds": 3, "critic": False}]})
    critic = validate({"stages": [{"op": "generate"}, {"op": "self_refine", "rounds": 3, "critic": True}]})
    assert (blind.expected_calls(), critic.expected_calls()) == (4, 7)
    vote = validate({"stages": [{"op": "ensemble", "roles": ["a domain expert", "a meticulous teacher"]}]})
    select = validate({"stages": [{"op": "ensemble", "roles": ["a domain expert", "a meticulous teacher"],
                                   "aggregate": "select"}, {"op": "verify"}]})
    assert (vote.expected_calls(), select.expected_calls()) == (2, 4)
    fixed_role = validate({"stages": [{"op": "role"}, {"op": "generate"}]})
    assert fixed_role.expected_calls() == 1


def test_describe_is_one_readable_line():
    wf = validate({"stages": [{"op": "role", "role": "auto"}, {"op": "self_consistency", "n": 7},
                              {"op": "self_refine", "rounds": 2, "critic": True}], "answer_format": "json"})
    text = wf.describe()
    assert text == "role(auto) -> CoT-SC(n=7, T=0.8, vote) -> refine(2x, critic) [json]"


def test_workflow_is_immutable():
    wf = validate(SEED_WORKFLOWS["cot"])
    with pytest.raises(Exception):
        wf.answer_format = "plain"  # type: ignore[misc]
    assert isinstance(wf, Workflow)

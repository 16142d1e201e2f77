"""Deploying AWS::StepFunctions::StateMachine: DefinitionSubstitutions as CloudFormation applies
them, and a definition that AWS would reject stops the local deploy."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from localcloud.cloud import LocalCloud
from localcloud.stepfunctions import InvalidStateMachineDefinition, lint, substitute

PASS_MACHINE = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}


def test_substitutions_replace_each_placeholder_with_its_text() -> None:
    definition = '{"Arn": "${FunctionArn}", "Seconds": ${Seconds}, "Flag": ${Flag}, "Again": "${FunctionArn}"}'
    text = substitute(definition, {"FunctionArn": "arn:aws:lambda:eu-west-1:1:function:f", "Seconds": 5, "Flag": True})
    assert json.loads(text) == {
        "Arn": "arn:aws:lambda:eu-west-1:1:function:f",
        "Seconds": 5,
        "Flag": True,
        "Again": "arn:aws:lambda:eu-west-1:1:function:f",
    }


def test_a_placeholder_without_substitution_is_kept_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="localcloud.stepfunctions"):
        assert substitute('{"Arn": "${Missing}"}', {}) == '{"Arn": "${Missing}"}'
    assert "Missing" in caplog.text


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        ("{not json", "not JSON"),
        (json.dumps({**PASS_MACHINE, "StartAt": "B"}), "StartAt"),
        (json.dumps({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${Arn}", "End": True}}}), "URI"),
    ],
)
def test_lint_rejects_broken_definitions(definition: str, problem: str) -> None:
    with pytest.raises(InvalidStateMachineDefinition, match=problem):
        lint(definition)


def test_lint_accepts_a_valid_definition() -> None:
    assert lint(json.dumps(PASS_MACHINE)) == PASS_MACHINE


def test_without_statelint_the_structure_is_still_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "statelint.linter", None)  # statelint is a dev dependency only
    assert lint(json.dumps(PASS_MACHINE)) == PASS_MACHINE
    broken = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}
    with pytest.raises(InvalidStateMachineDefinition, match="Nowhere"):
        lint(json.dumps(broken))


def test_a_broken_definition_fails_the_local_deploy(tmp_path: Path) -> None:
    (tmp_path / "broken.asl.json").write_text(json.dumps({**PASS_MACHINE, "StartAt": "Missing"}))
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  Broken:\n"
        "    Type: AWS::Serverless::StateMachine\n"
        "    Properties:\n"
        "      DefinitionUri: broken.asl.json\n"
        "      Role: arn:aws:iam::123456789012:role/local\n"
    )
    with (
        pytest.raises(InvalidStateMachineDefinition, match=r"Broken: .*Missing"),
        LocalCloud.start(tmp_path / "template.yaml"),
    ):
        pass

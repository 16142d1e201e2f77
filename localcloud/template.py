"""template.yaml -> plain CloudFormation (aws-sam-translator, offline) -> resolved resources.

The one template that `sam deploy` uses is the only list of resources: the local cloud and the
tests read it here. Intrinsic functions are resolved against parameters, pseudo parameters and
the physical ids and attributes of resources already provisioned.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
NO_VALUE = object()  # AWS::NoValue: the property is removed
_SUB_VAR = re.compile(r"\$\{([^}]+)\}")


@dataclass
class FunctionSource:
    """Where a function's code lives locally (SAM CodeUri, layer ContentUris)."""

    code_dir: Path
    handler: str
    layer_dirs: list[Path]


@dataclass
class Template:
    sam: dict[str, Any]
    cfn: dict[str, Any]
    functions: dict[str, FunctionSource] = field(default_factory=dict)
    base_dir: Path = REPO_ROOT  # local paths in the template (CodeUri, ScriptLocation, ...) are relative to it

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.cfn["Resources"])

    def parameter_defaults(self) -> dict[str, str]:
        return {name: str(p.get("Default", "")) for name, p in self.cfn.get("Parameters", {}).items()}

    def list_parameters(self) -> frozenset[str]:
        """Parameters whose Ref is a list (CommaDelimitedList, List<AWS::EC2::Subnet::Id>, ...)."""
        return frozenset(
            name
            for name, p in self.cfn.get("Parameters", {}).items()
            if p.get("Type") == "CommaDelimitedList" or str(p.get("Type", "")).startswith("List<")
        )


def load_template(path: Path = TEMPLATE_PATH, region: str = "eu-west-1") -> Template:
    sam = yaml_parse(path.read_text())
    to_translate = copy.deepcopy(sam)
    base = path.parent
    layers: dict[str, Path] = {}
    for logical_id, resource in to_translate["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            layers[logical_id] = base / props["ContentUri"]
            props["ContentUri"] = f"s3://local-artifacts/{logical_id}.zip"
    for resource in to_translate["Resources"].values():
        props = resource.get("Properties", {})
        # sam package uploads a local DefinitionUri; locally the definition is inlined instead.
        if resource["Type"] == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            definition_path = base / props.pop("DefinitionUri")
            props["Definition"] = yaml_parse(definition_path.read_text())
    functions: dict[str, FunctionSource] = {}
    globals_fn = to_translate.get("Globals", {}).get("Function", {})
    for logical_id, resource in to_translate["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        layer_refs = props.get("Layers", globals_fn.get("Layers", []))
        functions[logical_id] = FunctionSource(
            code_dir=base / props["CodeUri"],
            handler=props.get("Handler", globals_fn.get("Handler", "app.lambda_handler")),
            layer_dirs=[layers[ref["Ref"]] for ref in layer_refs if isinstance(ref, dict) and ref.get("Ref") in layers],
        )
        props["CodeUri"] = f"s3://local-artifacts/{logical_id}.zip"
    # Offline: an explicit region, and no look-up of AWS managed policies (SAM builds their ARNs).
    # samtranslator warns about feature toggles it has no config for: noise for a local deploy.
    logging.getLogger("samtranslator.feature_toggle").setLevel(logging.ERROR)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    cfn = translator.translate(to_translate, parameter_values={}, get_managed_policy_map=dict)
    return Template(sam=sam, cfn=cfn, functions=functions, base_dir=base)


@dataclass
class Physical:
    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


class Resolver:
    """Resolves Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select, Fn::If, Fn::Equals/Not/And/Or.

    A parameter of a list type (CommaDelimitedList, List<...>) is a list to Ref, as in CloudFormation:
    "a,b" is ["a", "b"] and "" is [""] (so !Join ["", !Ref List] is "" when the list is empty).
    """

    def __init__(
        self,
        parameters: Mapping[str, str],
        pseudo: Mapping[str, str],
        conditions: Mapping[str, Any],
        list_parameters: frozenset[str] = frozenset(),
    ) -> None:
        self.parameters = dict(parameters)
        self.list_parameters = list_parameters
        self.pseudo = dict(pseudo)
        self.physical: dict[str, Physical] = {}
        self._condition_defs = dict(conditions)
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self._condition_defs[name]))
        return self._conditions[name]

    def ref(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.physical:
            return self.physical[name].ref
        raise KeyError(f"Ref to {name}, which is neither a parameter nor a provisioned resource")

    def get_att(self, name: str, attribute: str) -> str:
        physical = self.physical.get(name)
        if physical is None or attribute not in physical.attributes:
            raise KeyError(f"Fn::GetAtt {name}.{attribute} is not available locally")
        return physical.attributes[attribute]

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name:
                resource, attribute = name.split(".", 1)
                return self.get_att(resource, attribute)
            return self.ref(name)

        return _SUB_VAR.sub(replace, text)

    def resolve(self, value: Any) -> Any:  # noqa: C901, PLR0911, PLR0912 - one branch per intrinsic
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                if arg in self.list_parameters:
                    return self.parameters[arg].split(",")
                return NO_VALUE if arg == "AWS::NoValue" else self.ref(arg)
            if key == "Fn::GetAtt":
                resource, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(resource, attribute)
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return self._sub(text, variables)
            if key == "Fn::Join":
                return str(arg[0]).join(str(v) for v in self.resolve(arg[1]))
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
        return {k: r for k, r in ((k, self.resolve(v)) for k, v in value.items()) if r is not NO_VALUE}


def dependencies(resource: Mapping[str, Any]) -> set[str]:
    """Logical ids a resource refers to (Ref, GetAtt, Sub variables, DependsOn)."""
    found: set[str] = set()
    depends = resource.get("DependsOn", [])
    found.update([depends] if isinstance(depends, str) else depends)

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, arg in value.items():
                if key == "Ref" and isinstance(arg, str):
                    found.add(arg)
                elif key == "Fn::GetAtt":
                    found.add(arg[0] if isinstance(arg, list) else arg.split(".", 1)[0])
                elif key == "Fn::Sub":
                    text = arg if isinstance(arg, str) else arg[0]
                    found.update(v.split(".", 1)[0] for v in _SUB_VAR.findall(text) if not v.startswith("!"))
                walk(arg)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(resource.get("Properties", {}))
    return found


def creation_order(resources: Mapping[str, Any]) -> list[str]:
    """Logical ids in an order where every resource comes after those it refers to."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValueError(f"circular reference through {name}")
        state[name] = 1
        for dep in sorted(dependencies(resources[name])):
            if dep in resources:
                visit(dep)
        state[name] = 2
        order.append(name)

    for name in sorted(resources):
        visit(name)
    return order

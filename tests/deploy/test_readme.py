"""deploy/README.md matches the files: every path it names exists, its deploy order is the stacks' real
dependency order, and every parameter it documents exists in that layer's template."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tests.support.deploy import DEPLOY, ROOT
from tests.support.stacks import LAYERS

README = (DEPLOY / "README.md").read_text()


def test_every_path_named_exists() -> None:
    paths = set(re.findall(r"(?<![\w/])((?:deploy|systemd|config)/[\w./-]+\w)", README))
    assert len(paths) > 10
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, missing


def test_deploy_commands_follow_the_dependency_order() -> None:
    commands = re.findall(
        r"--stack-name (alignbatch-\w+) \\\n\s+--template-file deploy/cloudformation/(\w+\.yaml)", README
    )
    assert commands == [(layer.stack, layer.template) for layer in LAYERS]


def test_documented_parameters_exist(templates: Mapping[str, Any]) -> None:
    section = README.split("### Parameters", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| stack")]
    checked = 0
    for row in rows:
        layer, names = row.split("|")[1].strip(), row.split("|")[2]
        template = templates[f"{layer}.yaml"]
        for name in re.findall(r"`([A-Za-z{},*]+)`", names):
            expanded = [name]
            if "{" in name:  # PrivateSubnet{A,B}Cidr
                head, rest = name.split("{", 1)
                options, tail = rest.split("}", 1)
                expanded = [head + o + tail for o in options.split(",")]
            for param in expanded:
                if "*" in param:
                    pattern = re.compile(param.replace("*", ".*") + "$")
                    assert any(pattern.match(p) for p in template["Parameters"]), (layer, param)
                else:
                    assert param in template["Parameters"], (layer, param)
                checked += 1
    assert checked > 25

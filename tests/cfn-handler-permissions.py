#!/usr/bin/env python3
"""Extracts the resource handlers' permissions from cfn-lint's bundled provider
schemas into tests/fixtures/cfn-handler-permissions.json, for the resource types
the deploy role deploys (service and replica stacks).

    python3 tests/cfn-handler-permissions.py /path/to/cfn-lint-venv/bin/python TEMPLATE...

The Rust test `deploy_role_allows_every_handler_permission` reads the file; rerun this
when cfn-lint's pinned version or the templates' resource types change.
"""
import json
import os
import subprocess
import sys

python, templates = sys.argv[1], sys.argv[2:]
schemas = subprocess.run(
    [python, "-c", "import cfnlint, os; print(os.path.join(os.path.dirname(cfnlint.__file__), 'data', 'schemas'))"],
    check=True, capture_output=True, text=True,
).stdout.strip()
version = subprocess.run(
    [python, "-c", "import cfnlint.version; print(cfnlint.version.__version__)"],
    check=True, capture_output=True, text=True,
).stdout.strip()
types = set()
for path in templates:
    name = os.path.basename(path)
    if name == "stacks.json" or name.endswith("-shared.json") or name.endswith("-foundation.json"):
        continue
    with open(path) as f:
        types |= {r["Type"] for r in json.load(f)["Resources"].values()}
with open(os.path.join(schemas, "providers", "us-east-1.json")) as f:
    index = json.load(f)
out = {}
for t in sorted(types):
    with open(os.path.join(schemas, "resources", index[t] + ".json")) as f:
        handlers = json.load(f).get("handlers", {})
    out[t] = {h: sorted(set(v.get("permissions", []))) for h, v in sorted(handlers.items())}
doc = {"source": f"cfn-lint {version} provider schemas (us-east-1), handlers.*.permissions", "types": out}
dest = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "cfn-handler-permissions.json")
with open(dest, "w") as f:
    json.dump(doc, f, indent=1, sort_keys=True)
    f.write("\n")
print(f"{dest}: {len(out)} types")

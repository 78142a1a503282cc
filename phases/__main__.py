"""The Pulumi program of every phase: runs the module migration.yaml names for this stack.

phasegate passes it as `phasegate:program`; run by hand, stacks are named
<environment>-<phase> and the phase's module is taken from the name.
"""

import importlib

import pulumi

config = pulumi.Config("phasegate")
module = config.get("program") or config.get("phase") or pulumi.get_stack().split("-", 1)[1]
importlib.import_module(module).program()

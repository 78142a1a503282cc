"""The Pulumi program of every phase: runs the one this stack is for.

Stacks are named <environment>-<phase>; `phasegate:phase` in stack config overrides.
"""

import importlib

import pulumi

phase = pulumi.Config("phasegate").get("phase") or pulumi.get_stack().split("-", 1)[1]
importlib.import_module(phase).program()

"""The Pulumi program of every phase: runs the one named by `phasegate:phase` in stack config."""

import importlib

import pulumi

phase = pulumi.Config("phasegate").require("phase")
importlib.import_module(phase).program()

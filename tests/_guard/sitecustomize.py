"""Test guard: on ``PYTHONPATH`` (tests/conftest.py puts it there for every subprocess a
test starts), this process may only connect to loopback; see ``netguard``."""

import os

import netguard

netguard.install(os.environ.get(netguard.LOG_VARIABLE))

"""Runs one scenario; its result (or error) is the last line of JSON it prints.

Usage: python3 -m peers.run_scenario MODULE FUNCTION ADDRESS ARGS_JSON, with
tests/integration on the path (MODULE as peers.client_scenarios):
FUNCTION(ADDRESS, *ARGS) is called, and run to its end if it is a coroutine.
See scenario.py.
"""

import asyncio
import importlib
import json
import sys

from peers.scenario import describe

module_name, func_name, address, args = sys.argv[1:]
func = getattr(importlib.import_module(module_name), func_name)
try:
    result = func(address, *json.loads(args))
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    message = {"result": result}
except Exception as error:
    message = {"error": describe(error)}
print(json.dumps(message), flush=True)

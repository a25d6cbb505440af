"""Programs the integration tests start as subprocesses: the tests' peers.

Each file here is a program, or the scenarios of one, that a test runs in a
process of its own, usually as another uid through ``harness.as_user``, from
harness.REPO: the checkout, or a world-readable copy of it when that uid
cannot read the checkout.  They talk to the test over their stdin and
stdout, and import randomd and each other but nothing of the tests (no
pytest, no harness): a peer is the other side of a test, not a part of it.
None is a test module (test_*.py), so pytest collects nothing here.

- ``run_scenario.py`` runs one scenario: a function of ``client_scenarios.py``
  (randomd.client), ``client_aio_scenarios.py`` (randomd.client.aio) or
  ``client_fault_scenarios.py`` (the clients when randomd or the bus fails),
  started by tests/integration/scenarios.py for test_client, test_client_aio
  and test_client_faults; ``scenario.py`` is what the scenarios share
  (outcome, emit, proceed).
- ``user_client.py``: the other side of polkit_harness.UserClient, one bus
  connection of another user driven over pipes.
- ``attacker.py``: test_hostile's attackers.
- ``signal_listener.py``: test_secrets' bystander, listening to every signal.
- ``eavesdropper.py``: test_slow_jobs' bystander, written with dbus-python.
- ``faulty_service.py``: test_error_mapping's service whose methods fail on
  purpose.
"""

"""The unit's confinement: randomd cannot write files, reach a network or gain privileges.

Three kinds of evidence, each for what it can prove:

- systemd's own rating (`systemd-analyze security`) of the installed unit;
- the running daemon itself, read from /proc/MAINPID: its capabilities,
  no_new_privs, seccomp and network namespace; and a probe entered into its
  mount and network namespaces with nsenter, as its uid, which shows the file
  system and the network the daemon sees.  nsenter does not carry seccomp,
  capabilities or no_new_privs over, so this probe proves nothing about them;
- a probe run by `systemd-run` with every sandboxing line of the installed
  unit (parsed from the unit file, so they cannot drift apart): it proves
  what any process under that sandbox can and cannot do, including what
  seccomp and no_new_privs forbid; it is not the daemon's own process.

randomd has no state directory: it writes no file at all.  Its /tmp and
/var/tmp are private (PrivateTmp): writable, and seen by no one else.
"""

import json
import re

import pytest

pytestmark = pytest.mark.system

UNIT = "randomd.service"
UNIT_FILE = "/lib/systemd/system/randomd.service"
PROBE_DIR = "/run/randomd-confinement"
PROBE = f"{PROBE_DIR}/probe.py"
SUID_ID = "/usr/local/bin/randomd-probe-suid-id"
# Lines of the unit that are about running the service, not about its sandbox.
NOT_SANDBOX = {"Type", "BusName", "NotifyAccess", "ExecStart", "ExecReload", "WatchdogSec",
               "Restart", "RestartPreventExitStatus", "TimeoutStopSec"}
# Where the daemon must not be able to write (it writes nowhere).
NOT_WRITABLE = ["/etc/randomd/probe", "/etc/probe", "/usr/probe", "/usr/local/probe",
                "/var/lib/probe", "/var/cache/probe", "/var/log/probe", "/root/probe",
                "/home/probe", "/run/probe", "/probe"]

PROBE_SOURCE = r'''
"""What this process may do: one JSON object, each attempt mapped to "allowed" or its errno."""
import ctypes, errno, json, os, socket, subprocess, sys

results = {}
libc = ctypes.CDLL(None, use_errno=True)


def attempt(name, action):
    try:
        action()
        results[name] = "allowed"
    except OSError as error:
        results[name] = errno.errorcode.get(error.errno, str(error.errno))


def write(path):
    with open(path, "w") as file:
        file.write("probe")


def unshare(flag):
    if libc.unshare(flag) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


def connect_out():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(("10.0.0.1", 80))


for path in sys.argv[2:]:
    attempt("write " + path, lambda path=path: write(path))
attempt("socket AF_INET", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
attempt("socket AF_INET6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close())
attempt("socket AF_NETLINK", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW).close())
attempt("socket AF_PACKET", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close())
attempt("socket AF_UNIX", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
attempt("connect to 10.0.0.1:80", connect_out)
attempt("setuid 0", lambda: os.setuid(0))
attempt("unshare a user namespace", lambda: unshare(0x10000000))
attempt("unshare a network namespace", lambda: unshare(0x40000000))
suid = subprocess.run([sys.argv[1], "-u"], capture_output=True, text=True)
results["euid of a setuid-root program"] = suid.stdout.strip() or suid.stderr.strip()
results["uid"] = os.getuid()
print(json.dumps(results))
'''


def show(testbed, *props):
    out = testbed.systemctl("show", UNIT, *(f"--property={p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def main_pid(testbed):
    """randomd running; its main pid inside the machine."""
    testbed.systemctl("reset-failed", UNIT, check=False)
    testbed.systemctl("start", UNIT)
    return int(show(testbed, "MainPID")["MainPID"])


@pytest.fixture(scope="module")
def randomd_ids(testbed):
    return (int(testbed.run(["id", "-u", "randomd"]).stdout),
            int(testbed.run(["id", "-g", "randomd"]).stdout))


@pytest.fixture(scope="module")
def probe(testbed):
    """The probe script, and a setuid-root copy of id(1) that it runs."""
    testbed.run(["install", "-d", "-m", "0755", PROBE_DIR])
    testbed.write_file(PROBE, PROBE_SOURCE, mode=0o644)
    testbed.run(["install", "-m", "4755", "/usr/bin/id", SUID_ID])
    yield ["/usr/bin/python3", PROBE, SUID_ID]
    testbed.run(["rm", "-rf", PROBE_DIR, SUID_ID])


@pytest.fixture(scope="module")
def sandboxed(testbed, probe):
    """What the probe may do under every sandboxing line of the installed unit."""
    properties = []
    in_service = False
    for line in testbed.read_file(UNIT_FILE).splitlines():
        if line.startswith("["):
            in_service = line == "[Service]"
        elif (in_service and (m := re.fullmatch(r"([A-Za-z]+)=(.*)", line))
                and m.group(1) not in NOT_SANDBOX):
            properties += ["-p", line]
    assert "User=randomd" in properties and "NoNewPrivileges=yes" in properties, properties
    out = testbed.run(["systemd-run", "--wait", "--pipe", "--quiet", *properties, *probe,
                       *NOT_WRITABLE, "/tmp/probe"]).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def in_daemon_namespaces(testbed, probe, main_pid, randomd_ids):
    """What the probe may do in the running daemon's mount and network namespaces, as its uid."""
    uid, gid = randomd_ids
    testbed.run(["rm", "-f", "/tmp/randomd-probe"])
    out = testbed.run(["nsenter", f"--target={main_pid}", "--mount", "--net",
                       f"--setuid={uid}", f"--setgid={gid}", "--", *probe, *NOT_WRITABLE,
                       "/tmp/randomd-probe"]).stdout
    return json.loads(out)


# -- systemd's rating --------------------------------------------------------


def test_systemd_analyze_security_rates_the_unit_safe_on_every_point_that_matters(testbed):
    out = testbed.run(["systemd-analyze", "security", "--no-pager", "--json=short", UNIT]).stdout
    exposed = {item["name"] for item in json.loads(out) if not item["set"]}
    for name in ("NoNewPrivileges=", "PrivateNetwork=", "ProtectSystem=", "ProtectHome=",
                 "PrivateTmp=", "PrivateDevices=", "User=/DynamicUser=", "RestrictSUIDSGID=",
                 "CapabilityBoundingSet=~CAP_SYS_ADMIN",
                 "CapabilityBoundingSet=~CAP_SET(UID|GID|PCAP)",
                 "RestrictAddressFamilies=~AF_(INET|INET6)", "RestrictNamespaces=~user",
                 "SystemCallFilter=~@privileged", "IPAddressDeny="):
        assert name not in exposed, f"{name} is not set"
    overall = testbed.run(["systemd-analyze", "security", "--no-pager", UNIT]).stdout
    level = re.search(r"Overall exposure level for randomd\.service: ([0-9.]+)", overall)
    assert level and float(level.group(1)) <= 1.0, overall[-500:]


# -- the running daemon ----------------------------------------------------------


def test_the_running_daemon_has_no_capability_and_no_new_privileges(testbed, main_pid,
                                                                    randomd_ids):
    status = dict(line.split(":\t", 1) for line in
                  testbed.read_file(f"/proc/{main_pid}/status").splitlines() if ":\t" in line)
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[field], 16) == 0, (field, status[field])
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"  # 2: a filter
    assert status["Uid"].split() == [str(randomd_ids[0])] * 4


def test_the_running_daemon_has_no_network_but_loopback(testbed, main_pid):
    lines = testbed.read_file(f"/proc/{main_pid}/net/dev").splitlines()[2:]
    assert [line.split(":")[0].strip() for line in lines] == ["lo"]


def test_the_running_daemon_cannot_reach_an_address_outside(in_daemon_namespaces):
    assert in_daemon_namespaces["connect to 10.0.0.1:80"] in ("ENETUNREACH", "EHOSTUNREACH")


@pytest.mark.parametrize("path", NOT_WRITABLE)
def test_the_running_daemon_cannot_write(in_daemon_namespaces, path):
    assert in_daemon_namespaces[f"write {path}"] in ("EROFS", "EACCES", "ENOENT", "EPERM")


def test_the_running_daemons_tmp_is_its_own(testbed, in_daemon_namespaces):
    assert in_daemon_namespaces["write /tmp/randomd-probe"] == "allowed"
    assert testbed.run(["test", "-e", "/tmp/randomd-probe"], check=False).returncode != 0


# -- any process under the unit's sandbox ------------------------------------------


@pytest.mark.parametrize("family", ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"])
def test_the_sandbox_cannot_open_a_network_socket(sandboxed, family):
    assert sandboxed[f"socket {family}"] == "EAFNOSUPPORT"


def test_the_sandbox_still_opens_unix_sockets(sandboxed):
    """The control for the test above: the bus is reached over AF_UNIX."""
    assert sandboxed["socket AF_UNIX"] == "allowed"


@pytest.mark.parametrize("path", NOT_WRITABLE)
def test_the_sandbox_cannot_write(sandboxed, path):
    assert sandboxed[f"write {path}"] in ("EROFS", "EACCES", "ENOENT", "EPERM")


def test_the_sandbox_cannot_become_root(sandboxed, randomd_ids):
    assert sandboxed["uid"] == randomd_ids[0]
    assert sandboxed["setuid 0"] == "EPERM"


def test_the_sandbox_gains_nothing_from_a_setuid_root_program(testbed, sandboxed, probe,
                                                              randomd_ids):
    # The control: outside the sandbox the same program runs with euid 0.
    outside = testbed.run([SUID_ID, "-u"], user="randomd").stdout.strip()
    assert outside == "0", "the setuid probe does not work here: it proves nothing"
    assert sandboxed["euid of a setuid-root program"] == str(randomd_ids[0])


@pytest.mark.parametrize("kind", ["user", "network"])
def test_the_sandbox_cannot_make_namespaces(sandboxed, kind):
    assert sandboxed[f"unshare a {kind} namespace"] == "EPERM"

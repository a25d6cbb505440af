"""Upgrade from the previous release, then purge and reinstall, as piuparts checks them.

A container of its own, on the release and bus of the environment, starts
with the previous release (v0.1.0, built from its own commit: see
previous_release_debs in conftest.py) installed and running a job for an
unprivileged client, with /etc/randomd/randomd.conf changed locally. The
.debs under test are in /srv/pkgs, not installed, until apt-get upgrades to
them. The maintainer scripts do the work here: the restart on upgrade, the
stop and the daemon-reload on removal (debhelper's snippets, which bookworm's
dh_installsystemd adds only for units it finds: debian/rules).

The module's tests run in file order: the upgrade's, then the purge's.
"""

import json
import re
import secrets

import pytest

pytestmark = pytest.mark.system

UNIT = "randomd.service"
NAME = "org.randomd.Random1"
PATH = "/org/randomd/Random1"
IFACE = "org.randomd.Random1"
CONF = "/etc/randomd/randomd.conf"
WORK = "/run/randomd-upgrade"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
# An administrator's changes: long jobs, a smaller Quick.
LOCAL_CHANGE = (
    "\n# Changed here, to be kept over upgrades.\nSlowBitInterval = 1\nMaxQuickBits = 1000\n"
)

# Starts one Slow job of 64 bits and keeps its connection until the job's
# Finished arrives, printing one JSON line per event: {"started": path},
# {"finished": path, "args": [state, number, error]}. The job is bound to
# this connection, which must outlive the daemon's restart.
JOB_OWNER = """\
import asyncio, json, sys
from dbus_next import BusType, Message, MessageType
from dbus_next.aio import MessageBus

def emit(**event):
    print(json.dumps(event), flush=True)

async def main():
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    done = asyncio.Event()

    def handler(msg):
        if (msg.message_type == MessageType.SIGNAL and msg.member == "Finished"
                and msg.interface == "org.randomd.Random1.Job"):
            emit(finished=msg.path, args=msg.body)
            done.set()

    bus.add_message_handler(handler)
    reply = await bus.call(Message(
        destination="org.randomd.Random1", path="/org/randomd/Random1",
        interface="org.randomd.Random1", member="Slow", signature="u", body=[64]))
    if reply.message_type == MessageType.ERROR:
        emit(error=reply.error_name, body=reply.body)
        return 1
    emit(started=reply.body[0])
    await asyncio.wait_for(done.wait(), 300)
    return 0

sys.exit(asyncio.run(main()))
"""

# Run inside before the purge: every path of the two packages that must be
# gone afterwards. Files and links, and the directories no other package
# shares (dpkg -S names only ours); the conffiles too.
PACKAGE_PATHS_SCRIPT = """\
import json, os, subprocess
ours = ["randomd", "python3-randomd"]
listed = subprocess.run(["dpkg", "-L", *ours], capture_output=True, text=True, check=True)
paths = sorted({p for p in listed.stdout.splitlines() if p.startswith("/") and p != "/."})
dirs = [p for p in paths if os.path.isdir(p) and not os.path.islink(p)]
owners = subprocess.run(["dpkg", "-S", *dirs], capture_output=True, text=True).stdout
shared = set()
for line in owners.splitlines():
    packages, _, path = line.partition(": ")
    if not set(packages.split(", ")) <= set(ours):
        shared.add(path)
print(json.dumps([p for p in paths if p not in shared]))
"""


def busctl(bed, *args, user=None, check=True):
    return bed.run(["busctl", *args], user=user, check=check)


def get_property(bed, prop):
    return busctl(bed, "get-property", NAME, PATH, IFACE, prop).stdout.strip()


def main_pid(bed):
    return int(bed.systemctl("show", "-P", "MainPID", UNIT).stdout)


def randomd_account(bed):
    return bed.run(["getent", "passwd", "randomd"]).stdout.strip()


def installed_version(bed):
    r = bed.run(["dpkg-query", "-W", "-f=${Version} ${db:Status-Status}", "randomd"], check=False)
    return r.stdout.strip()


@pytest.fixture(scope="module")
def bed(container, old_debs, new_debs):
    """A container with the previous release installed and the new .debs in /srv/pkgs."""
    with container(debs=old_debs, pkgs=new_debs) as bed:
        bed.new_packages = [f"/srv/pkgs/{deb.name}" for deb in new_debs]
        yield bed


@pytest.fixture(scope="module")
def upgraded(bed):
    """The upgrade with a job running and a changed conffile: what was seen before and after."""
    assert installed_version(bed) == "0.1.0 installed"
    bed.write_file(CONF, bed.read_file(CONF) + LOCAL_CHANGE)
    changed_conf = bed.read_file(CONF)
    bed.systemctl("start", UNIT)
    before = {
        "pid": main_pid(bed),
        "version": get_property(bed, "Version"),
        "account": randomd_account(bed),
    }
    bed.run(["install", "-d", "-m", "0755", WORK])
    script, out = f"{WORK}/job_owner.py", f"{WORK}/job_owner.out"
    bed.write_file(script, JOB_OWNER)
    owner = f"randomd-upgrade-owner-{secrets.token_hex(3)}"
    bed.run(
        [
            "systemd-run",
            "--quiet",
            "--collect",
            f"--unit={owner}",
            f"--uid={bed.user}",
            f"--property=StandardOutput=truncate:{out}",
            "--property=StandardError=inherit",
            "/usr/bin/python3",
            script,
        ]
    )
    bed.wait_for(
        lambda: get_property(bed, "ActiveJobs") == "u 1", timeout=15, what="the owner's job to run"
    )
    install = bed.run(
        ["apt-get", "install", "-y", "--no-install-recommends", *bed.new_packages],
        env=APT_ENV,
        timeout=300,
        check=False,
    )
    try:
        bed.wait_for(
            f"! systemctl is-active --quiet {owner}.service",
            timeout=20,
            what="the job's owner to get Finished and exit",
        )
    except TimeoutError:
        # No Finished (the old daemon was not restarted?): the tests below say
        # what went wrong, each for its own part.
        bed.systemctl("stop", f"{owner}.service", check=False)
    return {
        "before": before,
        "install": install,
        "changed_conf": changed_conf,
        "owner": [json.loads(line) for line in bed.read_file(out).splitlines() if line.strip()],
    }


def test_upgrade_from_the_previous_release_succeeds(bed, upgraded):
    assert upgraded["before"]["version"] == 's "0.1.0"'
    install = upgraded["install"]
    assert install.returncode == 0, install
    assert installed_version(bed) == "0.2.0 installed"


def test_upgrade_ends_the_running_job_with_shutting_down(upgraded):
    events = upgraded["owner"]
    started = [e["started"] for e in events if "started" in e]
    finished = [e for e in events if "finished" in e]
    assert len(started) == 1, events
    assert [e["finished"] for e in finished] == started, events
    assert finished[0]["args"] == ["failed", "", "org.randomd.Random1.Error.ShuttingDown"], events


def test_upgrade_restarts_the_daemon_with_the_new_version(bed, upgraded):
    old_pid = upgraded["before"]["pid"]
    assert bed.run(["kill", "-0", str(old_pid)], check=False).returncode != 0, "0.1.0 still runs"
    assert bed.systemctl("is-active", UNIT).stdout.strip() == "active"
    assert main_pid(bed) not in (0, old_pid)
    assert get_property(bed, "Version") == 's "0.2.0"'
    out = busctl(bed, "call", NAME, PATH, IFACE, "Quick", "u", "64", user=bed.user).stdout
    assert re.fullmatch(r's "[0-9]+"', out.strip()), out


def test_upgrade_keeps_the_changed_conffile(bed, upgraded):
    assert bed.read_file(CONF) == upgraded["changed_conf"]
    assert not bed.run(["sh", "-c", f"ls {CONF}.dpkg-*"], check=False).stdout
    # And the new daemon reads it.
    assert get_property(bed, "MaxQuickBits") == "u 1000"


def test_upgrade_keeps_the_randomd_user(bed, upgraded):
    assert randomd_account(bed) == upgraded["before"]["account"]


def test_upgrade_moves_the_unit_to_usr_lib(bed, upgraded):
    listed = bed.run(["dpkg-query", "-L", "randomd"]).stdout.splitlines()
    assert sorted(p for p in listed if p.endswith(".service")) == [
        "/usr/lib/systemd/system/randomd.service",
        "/usr/share/dbus-1/system-services/org.randomd.Random1.service",
    ]
    # The unit systemd loaded is that file (bookworm's systemd, whose search
    # path puts /lib first, names it through the /lib -> usr/lib link).
    loaded = bed.systemctl("show", "-P", "FragmentPath", UNIT).stdout.strip()
    real = bed.run(["realpath", loaded]).stdout.strip()
    assert real == "/usr/lib/systemd/system/randomd.service", loaded


def test_upgrade_hands_the_library_to_python3_randomd(bed, upgraded):
    module = "/usr/lib/python3/dist-packages/randomd/client/__init__.py"
    owner = bed.run(["dpkg-query", "-S", module]).stdout
    assert owner == f"python3-randomd: {module}\n", owner
    # The daemon's own modules stay with randomd, which 0.1.0 shipped them in.
    daemon = "/usr/lib/python3/dist-packages/randomd/daemon.py"
    assert bed.run(["dpkg-query", "-S", daemon]).stdout == f"randomd: {daemon}\n"


# ------------------------------------------------------------------- purge


@pytest.fixture(scope="module")
def purged(bed, upgraded):
    """apt-get purge of the upgraded package, with the daemon running."""
    bed.systemctl("start", UNIT)
    paths = json.loads(bed.run(["/usr/bin/python3", "-c", PACKAGE_PATHS_SCRIPT]).stdout)
    purge = bed.run(["apt-get", "purge", "-y", "randomd", "python3-randomd"], env=APT_ENV,
                    timeout=300, check=False)
    return {"paths": paths, "purge": purge}


def test_purge_succeeds(bed, purged):
    assert purged["purge"].returncode == 0, purged["purge"]
    # dpkg forgot them, conffiles and all.
    for package in ("randomd", "python3-randomd"):
        status = bed.run(["dpkg-query", "-W", "-f=${db:Status-Status}", package], check=False)
        assert status.returncode != 0 or status.stdout == "not-installed", (package, status)


def test_purge_leaves_no_file_of_the_package(bed, purged):
    assert CONF in purged["paths"] and "/usr/libexec/randomd/randomd" in purged["paths"]
    script = 'for p in "$@"; do [ ! -e "$p" ] && [ ! -L "$p" ] || echo "$p"; done'
    left = bed.run(["sh", "-c", script, "sh", *purged["paths"], "/etc/randomd"]).stdout.split()
    assert left == [], f"left behind after purge: {left}"
    # Nor byte-compiled modules (py3compile's, not listed by dpkg).
    found = bed.run(["find", "/usr/lib/python3/dist-packages", "-path", "*randomd*"]).stdout
    assert found == "", found


def test_purge_leaves_no_process_and_no_unit(bed, purged):
    assert bed.run(["pgrep", "-u", "randomd"], check=False).stdout == ""
    assert bed.systemctl("show", "-P", "LoadState", UNIT).stdout.strip() == "not-found"


def test_reinstall_after_purge_works(bed, purged):
    install = ["apt-get", "install", "-y", "--no-install-recommends", *bed.new_packages]
    bed.run(install, env=APT_ENV, timeout=300)
    out = busctl(bed, "call", NAME, PATH, IFACE, "Quick", "u", "64", user=bed.user).stdout
    assert re.fullmatch(r's "[0-9]+"', out.strip()), out
    assert get_property(bed, "Version") == 's "0.2.0"'
    assert "\nSlowBitInterval = 1" not in bed.read_file(CONF)  # the shipped file, afresh

"""The D-Bus names randomd uses: its public API (API.md) and the standard ones.

The one home of these names, shared by the D-Bus layer, the daemon, the
client library and randomctl.
"""

BUS_NAME = "org.randomd.Random1"
MANAGER_PATH = "/org/randomd/Random1"
MANAGER_INTERFACE = "org.randomd.Random1"
JOB_INTERFACE = "org.randomd.Random1.Job"
JOBS_PATH = MANAGER_PATH + "/jobs"
ERROR_PREFIX = "org.randomd.Random1.Error."

ACTION_SLOW = "org.randomd.Random1.slow"
ACTION_CONFIGURE = "org.randomd.Random1.configure"
ACTION_MANAGE_JOBS = "org.randomd.Random1.manage-jobs"


def job_path(job_id: int) -> str:
    """The object path of the job with this id."""
    return f"{JOBS_PATH}/{job_id}"


# The bus itself (org.freedesktop.DBus), which randomd and randomctl both ask
# and watch: Message(**api.BUS_DAEMON, member=..., ...).
BUS_DAEMON_NAME = "org.freedesktop.DBus"
BUS_DAEMON_PATH = "/org/freedesktop/DBus"
BUS_DAEMON_INTERFACE = "org.freedesktop.DBus"
BUS_DAEMON = dict(destination=BUS_DAEMON_NAME, path=BUS_DAEMON_PATH,
                  interface=BUS_DAEMON_INTERFACE)


# The standard interfaces (D-Bus specification) that randomd's objects carry.
PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"
INTROSPECTABLE_INTERFACE = "org.freedesktop.DBus.Introspectable"
PEER_INTERFACE = "org.freedesktop.DBus.Peer"
OBJECT_MANAGER_INTERFACE = "org.freedesktop.DBus.ObjectManager"

# Standard errors that mean something to randomd's callers.
STANDARD_ERROR_PREFIX = "org.freedesktop.DBus.Error."
NO_REPLY_ERROR = STANDARD_ERROR_PREFIX + "NoReply"
DISCONNECTED_ERROR = STANDARD_ERROR_PREFIX + "Disconnected"
UNKNOWN_OBJECT_ERROR = STANDARD_ERROR_PREFIX + "UnknownObject"


def name_owner_changed_rule(**args: str) -> str:
    """A match rule for the bus's NameOwnerChanged, narrowed by ``argN="value"`` keywords."""
    narrowed = "".join(f",{key}='{value}'" for key, value in args.items())
    return (f"type='signal',sender='{BUS_DAEMON_NAME}',interface='{BUS_DAEMON_INTERFACE}',"
            f"member='NameOwnerChanged',path='{BUS_DAEMON_PATH}'{narrowed}")


# randomd's name changing hands: randomctl's watch on randomd starting and stopping.
RANDOMD_OWNER_CHANGED = name_owner_changed_rule(arg0=BUS_NAME)

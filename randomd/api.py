"""Names of the public D-Bus API (API.md), shared by the daemon and randomctl."""

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


def name_owner_changed_rule(**args: str) -> str:
    """A match rule for the bus's NameOwnerChanged, narrowed by ``argN="value"`` keywords."""
    narrowed = "".join(f",{key}='{value}'" for key, value in args.items())
    return (f"type='signal',sender='{BUS_DAEMON_NAME}',interface='{BUS_DAEMON_INTERFACE}',"
            f"member='NameOwnerChanged',path='{BUS_DAEMON_PATH}'{narrowed}")


# randomd's name changing hands: randomctl's watch on randomd starting and stopping.
RANDOMD_OWNER_CHANGED = name_owner_changed_rule(arg0=BUS_NAME)

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

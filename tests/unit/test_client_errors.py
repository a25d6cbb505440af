"""randomd.client's errors and plain values, without a bus."""

from __future__ import annotations

import pickle
from datetime import UTC

import pytest

from randomd import api
from randomd.client import (
    Cancelled,
    Closed,
    Error,
    Expired,
    Failed,
    InvalidArgument,
    JobInfo,
    JobLost,
    NoSuchJob,
    NotAuthorized,
    QuotaExceeded,
    ShuttingDown,
    State,
    Timeout,
    Unavailable,
    aio,
)
from randomd.client._types import job_path
from randomd.client.errors import from_dbus

STANDARD = "org.freedesktop.DBus.Error."


@pytest.mark.parametrize("cls", [InvalidArgument, QuotaExceeded, NoSuchJob, Cancelled, Expired,
                                 ShuttingDown, Failed])
def test_api_errors_map_to_the_class_of_the_same_name(cls):
    name = api.ERROR_PREFIX + cls.__name__
    error = from_dbus(name, "No job 7.")
    assert type(error) is cls and error.dbus_name == name and str(error) == "No job 7."


@pytest.mark.parametrize("name, interactive", [("AccessDenied", False),
                                               ("InteractiveAuthorizationRequired", True)])
def test_authorization_errors_are_not_authorized(name, interactive):
    error = from_dbus(STANDARD + name, "Not authorized.")
    assert type(error) is NotAuthorized and error.interactive_required is interactive


@pytest.mark.parametrize("name", ["ServiceUnknown", "NameHasNoOwner", "NoReply", "Disconnected",
                                  "Spawn.ChildExited"])
def test_bus_errors_for_a_missing_randomd_are_unavailable(name):
    error = from_dbus(STANDARD + name, "The name is not activatable")
    assert type(error) is Unavailable and error.dbus_name == STANDARD + name
    assert str(error).endswith(".") and "\n" not in str(error)


def test_an_unknown_error_is_an_error_with_its_name():
    error = from_dbus("com.example.Weird", "")
    assert type(error) is Error and error.dbus_name == "com.example.Weird"
    assert str(error) == "the call failed with com.example.Weird."


def test_messages_are_one_line():
    assert str(from_dbus(api.ERROR_PREFIX + "Failed", "bad\n  key\n")) == "bad key"


def test_client_errors_have_an_empty_dbus_name_and_subclass_error():
    for cls in (Unavailable, Timeout, JobLost, Closed):
        error = cls("It went wrong.")
        assert isinstance(error, Error) and error.dbus_name == ""
    assert isinstance(Timeout("x."), TimeoutError)


def test_errors_pickle_with_their_dbus_name():
    sent = from_dbus(STANDARD + "InteractiveAuthorizationRequired", "x")
    error = pickle.loads(pickle.dumps(sent))
    assert type(error) is NotAuthorized and error.interactive_required


def test_aio_has_the_same_error_classes():
    assert aio.Error is Error and aio.JobLost is JobLost and aio.NotAuthorized is NotAuthorized


def test_state_compares_equal_to_the_api_strings():
    assert State.CANCELLED == "cancelled" and f"{State.EXPIRED}" == "expired"


def test_job_info_from_properties():
    info = JobInfo.from_properties(api.job_path(3), {
        "Id": "3", "Bits": 8, "BitsDone": 2, "Progress": 0.25, "State": "running", "Error": "",
        "OwnerUID": 1000, "Owner": ":1.5", "Created": 1_700_000_000_000_000, "Finished": 0})
    assert info.id == 3 and info.state is State.RUNNING and info.finished is None
    assert info.created.tzinfo is UTC and info.created.year == 2023
    assert info.owner_connected is True


@pytest.mark.parametrize("ref, path", [(7, api.job_path(7)), ("7", api.job_path(7)),
                                       (api.job_path(7), api.job_path(7))])
def test_job_path_accepts_an_id_or_a_path(ref, path):
    assert job_path(ref) == path


@pytest.mark.parametrize("ref", [0, -1, True, "x", "", api.JOBS_PATH + "/", "/other/7", "٣"])
def test_job_path_refuses_what_is_not_a_job(ref):
    with pytest.raises(ValueError):
        job_path(ref)

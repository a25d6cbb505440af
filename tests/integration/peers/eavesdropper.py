"""A bystander written with dbus-python: it listens to everything randomd broadcasts.

Run as another uid, it prints one JSON line per signal it received, and stops
once it has seen job JOB end and the manager announce ActiveJobs afterwards
(randomd sends that after the job's Finished, so a broadcast Finished would
have arrived by then).  Usage: eavesdropper.py ADDRESS JOB_PATH
"""

import json
import sys

import dbus
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

address, job_path = sys.argv[1:3]
DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(address)
loop = GLib.MainLoop()
seen = {"job_ended": False}


def on_signal(*args, **keywords):
    member, path = keywords["member"], keywords["path"]
    print(json.dumps({"member": member, "path": path, "args": [str(a) for a in args]}),
          flush=True)
    if path == job_path and member == "PropertiesChanged" and "State" in args[1]:
        seen["job_ended"] = args[1]["State"] != "running"
    elif seen["job_ended"] and member == "PropertiesChanged" and "ActiveJobs" in args[1]:
        loop.quit()


bus.add_signal_receiver(on_signal, sender_keyword="sender", member_keyword="member",
                        path_keyword="path", bus_name="org.randomd.Random1")
print(json.dumps({"member": "listening"}), flush=True)
GLib.timeout_add_seconds(30, loop.quit)  # a bound, should the job never end
loop.run()

"""The classic way: dbus-python on a GLib main loop, one thread per slow job.

    dbus_python_service.py ADDRESS BIT_INTERVAL_S

Quick(u) -> s and Slow(u) -> o on org.randomd.Random1; a slow job's thread
sleeps one interval per bit, then hands Finished(sss) to the main loop, which
sends it from the job's path, unicast to the caller.
"""

import secrets
import signal
import sys
import threading
import time

import dbus
import dbus.lowlevel
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

address, interval = sys.argv[1], float(sys.argv[2])
_source = secrets.SystemRandom()


class Random(dbus.service.Object):
    def __init__(self, bus):
        super().__init__(bus, "/org/randomd/Random1")
        self.bus = bus
        self.last_id = 0
        self.lock = threading.Lock()

    @dbus.service.method("org.randomd.Random1", in_signature="u", out_signature="s")
    def Quick(self, bits):
        return str(_source.getrandbits(bits))

    @dbus.service.method("org.randomd.Random1", in_signature="u", out_signature="o",
                         sender_keyword="sender")
    def Slow(self, bits, sender):
        self.last_id += 1
        path = f"/org/randomd/Random1/jobs/{self.last_id}"
        threading.Thread(target=self.run, args=(path, int(bits), sender), daemon=True).start()
        return dbus.ObjectPath(path)

    def run(self, path, bits, owner):
        number = 0
        for _ in range(bits):
            time.sleep(interval)
            number = number << 1 | _source.getrandbits(1)
        GLib.idle_add(self.finish, path, str(number), owner)

    def finish(self, path, number, owner):
        msg = dbus.lowlevel.SignalMessage(path, "org.randomd.Random1.Job", "Finished")
        msg.set_destination(owner)
        msg.append("completed", number, "", signature="sss")
        self.bus.send_message(msg)
        return False


def main():
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(address)
    service = Random(bus)
    name = dbus.service.BusName("org.randomd.Random1", bus, do_not_queue=True)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, loop.quit)
    loop.run()
    del name, service


main()

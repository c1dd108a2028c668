"""A stand-in for systemd's manager on a private D-Bus: just enough of org.freedesktop.systemd1.Manager
(Subscribe, SetUnitProperties, StartUnit, the JobRemoved signal) for helios-launcher's systemd mode.

Usage: fake-systemd.py BUS_ADDRESS DIR. Each StartUnit is appended to DIR/started, each SetUnitProperties
to DIR/properties ("UNIT RUNTIME NAME=VALUE..."); DIR/behaviour, if it
exists, holds what the next jobs do, one word per StartUnit: done, failed, hang (never finishes) or early
(JobRemoved is sent before the method's reply). Without it every job is done."""

import os
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

IFACE = "org.freedesktop.systemd1.Manager"


class Manager(dbus.service.Object):
    def __init__(self, bus, directory):
        super().__init__(bus, "/org/freedesktop/systemd1")
        self.dir = directory
        self.jobs = 0
        self.subscribed = False

    def behaviour(self):
        path = os.path.join(self.dir, "behaviour")
        try:
            with open(path) as f:
                words = f.read().split()
        except FileNotFoundError:
            return "done"
        if not words:
            return "done"
        with open(path, "w") as f:
            f.write(" ".join(words[1:]))
        return words[0]

    @dbus.service.method(IFACE, in_signature="", out_signature="")
    def Subscribe(self):
        self.subscribed = True

    @dbus.service.method(IFACE, in_signature="sba(sv)", out_signature="")
    def SetUnitProperties(self, unit, runtime, properties):
        props = " ".join(f"{name}={int(value)}" for name, value in properties)
        with open(os.path.join(self.dir, "properties"), "a") as f:
            f.write(f"{unit} {int(runtime)} {props}\n")

    @dbus.service.method(IFACE, in_signature="ss", out_signature="o")
    def StartUnit(self, unit, mode):
        self.jobs += 1
        job = dbus.ObjectPath(f"/org/freedesktop/systemd1/job/{self.jobs}")
        what = self.behaviour()
        with open(os.path.join(self.dir, "started"), "a") as f:
            f.write(f"{unit} {mode} {what} {int(self.subscribed)}\n")
        if what == "early":
            self.JobRemoved(self.jobs, job, unit, "done")
        elif what in ("done", "failed"):
            jid = self.jobs
            GLib.timeout_add(20, lambda: self.JobRemoved(jid, job, unit, what) and False)
        return job

    @dbus.service.signal(IFACE, signature="uoss")
    def JobRemoved(self, jid, job, unit, result):
        pass


def main():
    address, directory = sys.argv[1], sys.argv[2]
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(address)
    name = dbus.service.BusName("org.freedesktop.systemd1", bus)
    manager = Manager(bus, directory)
    with open(os.path.join(directory, "ready"), "w"):
        pass
    GLib.MainLoop().run()
    del name, manager


if __name__ == "__main__":
    main()

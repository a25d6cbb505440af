#!/bin/sh
# Run a command under a real systemd-journald of its own, then export the journal.
#
# Usage (as root): unshare -m --propagation private with_journald.sh EXPORT CMD...
# In this private mount namespace a tmpfs replaces /run, so the host's journal
# sockets and files are hidden and /run/systemd and /run/log exist whether the
# host has them or not (a machine without systemd as PID 1 may lack them); the
# host's /run is not touched.  journald listens on
# /run/systemd/journal/socket, CMD runs with stderr declared a journal stream
# (JOURNAL_STREAM, as systemd sets it), and once CMD exits the journal is
# written to EXPORT as `journalctl -o json`.  SIGTERM is passed on to CMD.
# Neither CMD nor EXPORT may need anything under /run.
set -eu
export_file=$1
shift
case $export_file in
/run/*) echo "with_journald.sh: EXPORT must not be under /run, which it replaces" >&2; exit 2 ;;
esac
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/journal /run/log
if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
# journald would take the NOTIFY_SOCKET meant for CMD as its own.
env -u NOTIFY_SOCKET /lib/systemd/systemd-journald </dev/null >/dev/null 2>&1 &
journald=$!
tries=0
until [ -S /run/systemd/journal/socket ]; do
    tries=$((tries + 1))
    [ "$tries" -le 200 ] || { echo "journald did not start" >&2; exit 1; }
    sleep 0.05
done
JOURNAL_STREAM=$(stat -L -c '%d:%i' /proc/self/fd/2)
export JOURNAL_STREAM
"$@" &
command=$!
trap 'kill -TERM "$command"' TERM
status=0
wait "$command" || status=$?
if [ "$status" -gt 128 ]; then  # the trap interrupted the wait: wait again
    status=0
    wait "$command" || status=$?
fi
journalctl --sync
journalctl -o json --no-pager >"$export_file"
kill "$journald"
exit "$status"

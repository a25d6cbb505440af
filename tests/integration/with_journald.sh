#!/bin/sh
# Run a command under a real systemd-journald of its own, then export the journal.
#
# Usage (as root): unshare -m --propagation private with_journald.sh EXPORT CMD...
# In this private mount namespace a tmpfs hides the host's journal sockets and
# files; journald listens on /run/systemd/journal/socket, CMD runs with stderr
# declared a journal stream (JOURNAL_STREAM, as systemd sets it), and once CMD
# exits the journal is written to EXPORT as `journalctl -o json`.  SIGTERM is
# passed on to CMD.
set -eu
export_file=$1
shift
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/systemd/journal
mount -t tmpfs tmpfs /run/log
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

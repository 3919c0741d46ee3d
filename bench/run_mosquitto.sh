#!/bin/sh
# Start Debian's mosquitto on a loopback port for comparison figures.
#
#   bench/run_mosquitto.sh PORT            start in the background, print its PID
#   bench/run_mosquitto.sh -f PORT         run in the foreground (Ctrl-C stops it)
#   kill PID                               stop a background one
#
# The configuration is written to a temporary directory and contains only
# what is needed to listen on 127.0.0.1:PORT with anonymous clients: every
# other setting (max_inflight_messages 20, max_queued_messages 1000, no
# persistence, ...) is mosquitto's default.  In background mode the
# directory (config and mosquitto.log) is removed when mosquitto exits; its
# path is printed on stderr.
set -eu

foreground=0
if [ "${1:-}" = "-f" ]; then
    foreground=1
    shift
fi
port="${1:?usage: $0 [-f] PORT}"
case "$port" in
    *[!0-9]*|"") echo "$0: PORT must be a number" >&2; exit 2 ;;
esac
if [ "$port" -eq 1883 ] || [ "$port" -lt 1024 ] || [ "$port" -gt 65535 ]; then
    echo "$0: refusing port $port (use a free port >= 1024, not 1883)" >&2
    exit 2
fi
mosquitto="${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}"
[ -x "$mosquitto" ] || { echo "$0: mosquitto not found (apt-get install mosquitto)" >&2; exit 2; }

dir="$(mktemp -d "${TMPDIR:-/tmp}/bench-mosquitto.XXXXXX")"
cat >"$dir/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
EOF

if [ "$foreground" -eq 1 ]; then
    # Forward Ctrl-C / SIGTERM to mosquitto, then clean up.
    "$mosquitto" -c "$dir/mosquitto.conf" &
    pid=$!
    echo "mosquitto pid $pid on 127.0.0.1:$port" >&2
    trap 'kill "$pid" 2>/dev/null || true' INT TERM
    status=0
    wait "$pid" || status=$?
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    exit "$status"
fi

# The wrapper subshell waits for mosquitto and removes the directory; its
# output must not hold the caller's stdout open (pid=$(run_mosquitto.sh ...)).
(
    "$mosquitto" -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
    echo $! >"$dir/pid"
    wait $! || true
    rm -rf "$dir"
) </dev/null >/dev/null 2>&1 &

i=0
while [ "$i" -lt 100 ]; do
    if [ -s "$dir/pid" ] && grep -q "listen socket on port $port" "$dir/mosquitto.log" 2>/dev/null; then
        pid="$(cat "$dir/pid")"
        echo "mosquitto listening on 127.0.0.1:$port, pid $pid, config in $dir" >&2
        echo "$pid"
        exit 0
    fi
    if [ ! -d "$dir" ]; then
        echo "$0: mosquitto exited at start (port $port in use?)" >&2
        exit 1
    fi
    i=$((i + 1))
    sleep 0.1
done
echo "$0: mosquitto did not start listening within 10 s; log:" >&2
cat "$dir/mosquitto.log" >&2 2>/dev/null || true
[ -s "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
exit 1

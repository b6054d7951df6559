#!/bin/sh
# Container entrypoint (PID 1 is tini, which forwards SIGTERM to the broker).
# - No arguments, or arguments starting with "-": run the broker with $MQPROBE_CONFIG.
# - Otherwise: run that mqprobe subcommand (e.g. `setup elastic --es …`, `passwd …`).
# On first start it creates the password file named in the config from MQPROBE_USERNAME and
# MQPROBE_PASSWORD (or MQPROBE_PASSWORD_FILE, e.g. a Docker secret), without logging either.
set -eu

CONFIG=${MQPROBE_CONFIG:-/mqprobe/config/mqprobe.conf}
# The command that runs mqprobe; overridable so the script can be tested from a source checkout.
MQPROBE_CLI=${MQPROBE_CLI:-node --max-semi-space-size=32 /app/dist/app/cli.js}
cli() { exec $MQPROBE_CLI "$@"; }

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
  cli "$@"
fi

passwd_file=$(sed -n 's/^password_file[[:space:]]\{1,\}//p' "$CONFIG" | tail -n 1)
if [ -n "$passwd_file" ] && [ ! -s "$passwd_file" ] && [ -n "${MQPROBE_USERNAME:-}" ]; then
  if [ -n "${MQPROBE_PASSWORD_FILE:-}" ]; then
    MQPROBE_PASSWORD=$(cat "$MQPROBE_PASSWORD_FILE")
  fi
  if [ -z "${MQPROBE_PASSWORD:-}" ]; then
    echo "entrypoint: MQPROBE_USERNAME is set but neither MQPROBE_PASSWORD nor MQPROBE_PASSWORD_FILE" >&2
    exit 2
  fi
  # the password goes through stdin, never on a command line other processes can read
  printf '%s\n%s\n' "$MQPROBE_PASSWORD" "$MQPROBE_PASSWORD" | $MQPROBE_CLI passwd -c "$passwd_file" "$MQPROBE_USERNAME" >/dev/null
  unset MQPROBE_PASSWORD
  echo "entrypoint: created $passwd_file with user $MQPROBE_USERNAME" >&2
elif [ -n "$passwd_file" ] && [ ! -e "$passwd_file" ]; then
  echo "entrypoint: $passwd_file does not exist: set MQPROBE_USERNAME and MQPROBE_PASSWORD, or mount a password file (mqprobe passwd -c FILE USER)" >&2
fi

cli -c "$CONFIG" "$@"

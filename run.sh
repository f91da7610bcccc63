#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build and run keymuxd with the soft-key store.  On the session bus when
# there is one; otherwise on a private bus started here, whose address is
# printed so you can reach it from another terminal.
set -euo pipefail
top=$(cd "$(dirname "$0")" && pwd)
cd "$top"

scripts/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build src/service/keymuxd src/cli/keymuxctl modules >/dev/null
# the libraries rare operations need come from the build's modules
export KMX_MODULE_DIR=$top/build/src/modules
# which keys it serves, and a warning when a keymuxd already serves them
scripts/data-dir.sh

if [ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ] && dbus-send --session --dest=org.freedesktop.DBus \
	--type=method_call --print-reply / org.freedesktop.DBus.GetId >/dev/null 2>&1; then
	echo "keymuxd: on your session bus; try: build/src/cli/keymuxctl devices"
	exec build/src/service/keymuxd "$@"
fi

out=$(dbus-daemon --session --fork --print-address=1 --print-pid=1 --nopidfile)
export DBUS_SESSION_BUS_ADDRESS
DBUS_SESSION_BUS_ADDRESS=$(sed -n 1p <<<"$out")
bus_pid=$(sed -n 2p <<<"$out")
trap 'kill "$bus_pid" 2>/dev/null' EXIT
cat <<MSG
keymuxd: no session bus here, so a private one was started. From another terminal:
  export DBUS_SESSION_BUS_ADDRESS='$DBUS_SESSION_BUS_ADDRESS'
  $top/build/src/cli/keymuxctl devices
  busctl --user call org.keymux.Keystore1 /org/keymux/Keystore1 org.keymux.Keystore1.Manager ListDevices
Stop with Ctrl-C.
MSG
build/src/service/keymuxd "$@"

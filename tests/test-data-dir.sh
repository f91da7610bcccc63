#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# run.sh says which data dir it serves and warns when a keymuxd already
# serves it (scripts/data-dir.sh, which run.sh calls), with the data dir
# keymuxd itself takes: KEYMUX_DATA_DIR, else $XDG_DATA_HOME/keymux, else
# ~/.local/share/keymux; and keymuxd says how to make a data dir the systemd
# unit keeps read-only writable.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
cd "$KMX_TMP"
top=$KMX_TESTS_DIR/..
check() { "$top/scripts/data-dir.sh" >check.out 2>check.err || fail "data-dir.sh: $(cat check.err)"; }
grep -q '^scripts/data-dir.sh$' "$top/run.sh" || fail "run.sh does not call scripts/data-dir.sh"

# ---- nothing serves it yet ----
check
assert_eq "keymuxd: serving the keys in $KEYMUX_DATA_DIR" "$(cat check.out)"
assert_eq "" "$(cat check.err)"

# ---- a keymuxd serves it: a warning that names its pid ----
kmx_start_daemon
check
assert_contains "$(cat check.err)" "keymuxd: warning: keymuxd (pid $KMX_DAEMON_PID) already serves $KEYMUX_DATA_DIR"
assert_contains "$(cat check.err)" "systemctl --user stop keymuxd"
# another data dir: no warning
KEYMUX_DATA_DIR=$KMX_TMP/other check
assert_eq "keymuxd: serving the keys in $KMX_TMP/other" "$(cat check.out)"
assert_eq "" "$(cat check.err)"
kmx_stop_daemon

# ---- without KEYMUX_DATA_DIR: XDG_DATA_HOME, then HOME, as keymuxd has it ----
unset KEYMUX_DATA_DIR
export XDG_DATA_HOME=$KMX_TMP/xdg
kmx_start_daemon
[ -d "$XDG_DATA_HOME/keymux/softkey" ] || fail "keymuxd did not take \$XDG_DATA_HOME/keymux"
check
assert_eq "keymuxd: serving the keys in $XDG_DATA_HOME/keymux" "$(cat check.out)"
assert_contains "$(cat check.err)" "(pid $KMX_DAEMON_PID) already serves $XDG_DATA_HOME/keymux"
# the same dir reached through KEYMUX_DATA_DIR and a symlink is the same store
ln -s "$XDG_DATA_HOME" xdg-link
KEYMUX_DATA_DIR=$KMX_TMP/xdg-link/keymux check
assert_contains "$(cat check.err)" "(pid $KMX_DAEMON_PID) already serves"
# HOME's default when XDG_DATA_HOME is not set
(unset XDG_DATA_HOME; HOME=$KMX_TMP/home check)
assert_eq "keymuxd: serving the keys in $KMX_TMP/home/.local/share/keymux" "$(cat check.out)"
assert_eq "" "$(cat check.err)"

# ---- keymuxd in its systemd unit (INVOCATION_ID), with a data dir the
# sandbox keeps read-only (an XDG_DATA_HOME the unit does not know): it says
# how to make it writable.  A read-only bind mount in a user namespace of
# the test's own stands in for the sandbox ----
ro=$KMX_TMP/ro
mkdir -p "$ro/keymux"
unshare -rm /bin/sh -c 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" &&
	INVOCATION_ID=test KEYMUX_DATA_DIR=$1/keymux DBUS_SESSION_BUS_ADDRESS=unix:path=$1/no-bus \
	exec "$2"' _ "$ro" "$KEYMUXD" >ro.out 2>&1 && fail "keymuxd ran without a bus"
assert_contains "$(cat ro.out)" "keymuxd: the data dir $ro/keymux is read-only: the systemd unit makes only ~/.local/share/keymux writable; add it with 'systemctl --user edit keymuxd': [Service] ReadWritePaths=$ro/keymux"
kmx_log "test-data-dir: all passed"

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Says which data dir a keymuxd started in this environment serves (its
# keys), and warns on stderr when a keymuxd already running serves the same
# one: two daemons on one store overwrite each other's changes.  run.sh
# calls it before it starts keymuxd.
# usage: scripts/data-dir.sh
set -euo pipefail

# data_dir KEYMUX_DATA_DIR XDG_DATA_HOME HOME: where keymuxd keeps its keys
# with that environment (KEYMUX_DATA_DIR, else $XDG_DATA_HOME/keymux, else
# ~/.local/share/keymux, as GLib's g_get_user_data_dir() has it)
data_dir() {
	local dir
	if [ -n "$1" ]; then
		dir=$1
	elif [ -n "$2" ]; then
		dir=$2/keymux
	else
		dir=$3/.local/share/keymux
	fi
	readlink -m -- "$dir"
}

mine=$(data_dir "${KEYMUX_DATA_DIR:-}" "${XDG_DATA_HOME:-}" "${HOME:-}")
echo "keymuxd: serving the keys in $mine"
for proc in /proc/[0-9]*; do
	# the name first, without a process per process
	read -r comm 2>/dev/null <"$proc/comm" || continue
	[ "$comm" = keymuxd ] || continue
	kmx= xdg= home=
	while IFS= read -r -d '' var; do
		case $var in
		KEYMUX_DATA_DIR=*) kmx=${var#*=} ;;
		XDG_DATA_HOME=*) xdg=${var#*=} ;;
		HOME=*) home=${var#*=} ;;
		esac
	done 2>/dev/null <"$proc/environ" || continue
	[ "$(data_dir "$kmx" "$xdg" "$home")" = "$mine" ] || continue
	echo "keymuxd: warning: keymuxd (pid ${proc#/proc/}) already serves $mine; two" \
		"daemons on one store overwrite each other's changes: stop that one" \
		"(systemctl --user stop keymuxd) or give this one KEYMUX_DATA_DIR" >&2
done

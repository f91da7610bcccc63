#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What `meson install` puts in place works as installed: the systemd user
# unit passes `systemd-analyze verify --user` (its Documentation= man pages
# included) and rates 3.0 or better in `systemd-analyze security`; the man
# pages render; the bash completion completes commands, options and the
# running keymuxd's device and key ids; keymuxctl --version and help COMMAND.
. "$KMX_TESTS_DIR/harness.sh"
: "${KEYMUXCTL:?}" "${KMX_BUILD_ROOT:?}"
kmx_setup
cd "$KMX_TMP"

dest=$KMX_TMP/dest
meson install -C "$KMX_BUILD_ROOT" --no-rebuild --quiet --destdir "$dest" >install.log 2>&1 ||
	fail "meson install: $(tail -n 5 install.log)"
unit=$(find "$dest" -path '*/systemd/user/keymuxd.service')
[ -n "$unit" ] || fail "no keymuxd.service installed"
man8=$(find "$dest" -path '*/man8/keymuxd.8')
man1=$(find "$dest" -path '*/man1/keymuxctl.1')
[ -n "$man8" ] && [ -n "$man1" ] || fail "the man pages are not installed (build with go-md2man, -Dman=enabled)"
completion=$(find "$dest" -path '*/bash-completion/completions/keymuxctl')
[ -n "$completion" ] || fail "no bash completion installed"
# the private modules, in the directory the installed keymuxd loads them from
installed_keymuxd=$(find "$dest" -name keymuxd -type f)
for m in keymux-ssh keymux-gcr keymux-secret; do
	module=$(find "$dest" -path "*/keymux/$m.so")
	[ -n "$module" ] || fail "the module $m is not installed"
	moduledir=$(dirname "${module#"$dest"}")
	grep -qaF "$moduledir" "$installed_keymuxd" ||
		fail "the installed keymuxd does not look for its modules in $moduledir"
done

# ---- the man pages render, with their sections ----
for page in "$man8" "$man1"; do
	out=$(MANWIDTH=80 man -l "$page" 2>&1) || fail "man -l $page: $out"
	for section in NAME SYNOPSIS DESCRIPTION "EXIT STATUS" "SEE ALSO"; do
		assert_contains "$out" "$section" "$page has $section"
	done
done
assert_contains "$(head -n 3 "$man8")" '.TH keymuxd 8 "" "keymux '
assert_contains "$(head -n 3 "$man1")" '.TH keymuxctl 1 "" "keymux '
grep -q "unprotected (no password)" "$man1" || fail "keymuxctl(1) is built from docs/keymuxctl.md as it is now"

# ---- systemd-analyze verify --user, on the unit as installed: the
# binary it runs is looked up at its installed path, so that path is moved
# into the staging dir; the man pages are found through MANPATH ----
export XDG_RUNTIME_DIR=$KMX_TMP/runtime
mkdir -m 0700 "$XDG_RUNTIME_DIR"
exec_path=$(sed -n 's/^ExecStart=//p' "$unit")
[ -x "$dest$exec_path" ] || fail "ExecStart=$exec_path is not installed"
sed "s|^ExecStart=$exec_path|ExecStart=$dest$exec_path|" "$unit" >keymuxd.service
mandir=$(dirname "$(dirname "$man8")")
verify() { MANPATH=$1 systemd-analyze verify --user keymuxd.service >verify.out 2>&1; }
verify "$mandir" || fail "systemd-analyze verify --user: $(cat verify.out)"
assert_eq "" "$(cat verify.out)" "systemd-analyze verify has nothing to say"
# the check is real: without the man page it fails, as it did before
mkdir empty-man
! verify "$KMX_TMP/empty-man" || fail "systemd-analyze verify passed without the man page"
assert_contains "$(cat verify.out)" "man keymuxd(8)"

# ---- the sandbox: exposure 3.0 or better, no Internet sockets ----
systemd-analyze security --user --offline=true keymuxd.service >security.out 2>&1 || true
exposure=$(sed -n 's/.*Overall exposure level for keymuxd.service: \([0-9.]*\).*/\1/p' security.out)
[ -n "$exposure" ] || fail "no exposure level: $(tail -n 5 security.out)"
kmx_log "systemd-analyze security: exposure $exposure"
systemd-analyze security --user --offline=true --threshold=30 keymuxd.service >/dev/null 2>&1 ||
	fail "exposure $exposure is above 3.0"
assert_eq "AF_UNIX" "$(sed -n 's/^RestrictAddressFamilies=//p' "$unit")"
grep -q '^PrivateNetwork=yes$' "$unit" || fail "the unit has a network"
# the data dir it creates follows XDG_DATA_HOME
assert_contains "$(grep '^ExecStartPre=' "$unit")" '$${XDG_DATA_HOME:-$$HOME/.local/share}/keymux'

# ---- keymuxctl --version, help, help COMMAND ----
assert_eq "keymuxctl 0.1.0" "$("$KEYMUXCTL" --version)"
out=$("$KEYMUXCTL" help)
assert_contains "$out" "Commands:"
assert_contains "$out" "keymuxctl help COMMAND"
out=$("$KEYMUXCTL" help sign)
assert_contains "$out" "sign KEY [FILE|-]"
assert_contains "$out" "--algorithm"
assert_exit 2 "$KEYMUXCTL" help no-such-command
assert_contains "$(cat last.err)" "unknown command 'no-such-command'"
assert_exit 2 "$KEYMUXCTL" help sign extra

# ---- bash completion, in bash with bash-completion loaded ----
# completions LINE WORD...: what completing the last WORD of LINE offers
# (WORD... as bash splits LINE: a colon is a word of its own; the first is
# the keymuxctl to run)
completions() {
	bash -c '
		. /usr/share/bash-completion/bash_completion
		. "$1"
		shift
		COMP_LINE="$2${1#keymuxctl}"
		shift
		COMP_WORDS=("$@")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_POINT=${#COMP_LINE}
		fn=$(complete -p keymuxctl | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
		"$fn" keymuxctl "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$completion" "$@"
}
out=$(completions "keymuxctl " "$KEYMUXCTL" "")
for c in devices keys sign passwd monitor help version; do
	grep -qx "$c" <<<"$out" || fail "completion offers no command $c: $out"
done
assert_eq "lock
lock-all" "$(completions "keymuxctl lo" "$KEYMUXCTL" lo)"
assert_contains "$(completions "keymuxctl sign --al" "$KEYMUXCTL" sign --al)" "--algorithm"
assert_eq "ed25519" "$(completions "keymuxctl generate ed" "$KEYMUXCTL" generate ed)"
assert_eq "sign" "$(completions "keymuxctl help si" "$KEYMUXCTL" help si)"
kmx_start_daemon
id=$("$KEYMUXCTL" generate --label completed ed25519)
assert_eq "softkey:login" "$(completions "keymuxctl unlock so" "$KEYMUXCTL" unlock so)"
assert_eq "login" "$(completions "keymuxctl passwd softkey:lo" "$KEYMUXCTL" passwd softkey : lo)"
assert_eq "softkey:login" "$(completions "keymuxctl generate --device s" "$KEYMUXCTL" generate --device s)"
assert_eq "$id" "$(completions "keymuxctl sign ${id:0:6}" "$KEYMUXCTL" sign "${id:0:6}")"
assert_contains "$(completions "keymuxctl info " "$KEYMUXCTL" info "")" "$id"
assert_contains "$(completions "keymuxctl info " "$KEYMUXCTL" info "")" "softkey:login"
# a file after the key
: >msg-to-sign
assert_eq "msg-to-sign" "$(completions "keymuxctl sign $id msg" "$KEYMUXCTL" sign "$id" msg)"

# ---- the hint when keymuxd is not running ----
kmx_stop_daemon
rm -f "$KMX_TMP/services/$KMX_NAME.service"
assert_exit 5 "$KEYMUXCTL" devices
assert_contains "$(cat last.err)" "systemctl --user start keymuxd"
# completion offers no ids then, and does not hang
assert_eq "" "$(completions "keymuxctl unlock so" "$KEYMUXCTL" unlock so)"
kmx_log "test-install: all passed (exposure $exposure)"

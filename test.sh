#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build keymux and run its whole test suite (unit and integration tests on
# private buses).  --sanitize builds with AddressSanitizer and UBSan into
# build-sanitize.  Fails on any failed or skipped test.
set -euo pipefail
top=$(cd "$(dirname "$0")" && pwd)
cd "$top"

builddir=build
setup=()
if [ "${1:-}" = "--sanitize" ]; then
	builddir=build-sanitize
	setup=(-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug)
fi

scripts/deps.sh
[ -f "$builddir/build.ninja" ] || meson setup "$builddir" -Dwerror=true -Dpanel=enabled "${setup[@]}" >/dev/null
ninja -C "$builddir"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp"
status=0
meson test -C "$builddir" --print-errorlogs --num-processes 2 || status=$?
summary=$(grep -E '^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout):' "$builddir/meson-logs/testlog.txt" || true)
skipped=$(sed -n 's/^Skipped: *//p' <<<"$summary" | tr -d ' ')
if [ "$status" != 0 ]; then
	failed=$(sed -n 's/^Fail: *//p' <<<"$summary" | tr -d ' ')
	echo "tests: $(sed -n 's/^Ok: *//p' <<<"$summary" | tr -d ' ') passed, ${failed:-1} failed"
	exit 1
fi
if [ -n "$skipped" ] && [ "$skipped" != 0 ]; then
	echo "keymux: $skipped tests were skipped; every test must run" >&2
	exit 1
fi
ok=$(sed -n "s/^Ok: *//p" <<<"$summary" | tr -d " ")

# what meson install puts in place
destdir=$(mktemp -d)
trap 'rm -rf "$destdir"' EXIT
DESTDIR=$destdir meson install -C "$builddir" --quiet --no-rebuild
for f in libexec/keymuxd bin/keymuxctl share/dbus-1/services/org.keymux.Keystore1.service \
	share/dbus-1/interfaces/org.keymux.Keystore1.xml lib/systemd/user/keymuxd.service \
	lib/systemd/user/keymuxd-ssh-agent.socket bin/keymux-settings share/applications/org.keymux.Settings.desktop \
	share/icons/hicolor/scalable/apps/org.keymux.Settings.svg share/icons/hicolor/symbolic/apps/org.keymux.Settings-symbolic.svg; do
	[ -e "$destdir/usr/local/$f" ] || { echo "keymux: meson install did not install $f" >&2; exit 1; }
done
for m in keymux-ssh keymux-gcr keymux-secret; do
	[ -n "$(find "$destdir/usr/local" -path "*/keymux/$m.so")" ] ||
		{ echo "keymux: meson install did not install the module $m" >&2; exit 1; }
done
grep -q '^SystemdService=keymuxd.service' "$destdir/usr/local/share/dbus-1/services/org.keymux.Keystore1.service"
grep -q '^Exec=/usr/local/libexec/keymuxd' "$destdir/usr/local/share/dbus-1/services/org.keymux.Keystore1.service"
echo "keymux: all tests passed in $builddir"
echo "tests: ${ok:-0} passed, 0 failed"

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The PKCS#11 module's slots follow keymux's devices (DESIGN §9): slot events
# with an OpenPGP card simulator behind a real pcscd + vpcd, pulled out and
# put back (C_WaitForSlotEvent blocking in a thread, in the calling thread,
# with CKF_DONT_BLOCK, woken by C_Finalize), a second card in a new slot,
# keymuxd killed and started again; every change seen by the very next call;
# the state kept from keymuxd's signals, not read again for every call.
# keymuxd is not activatable here: once killed, it stays away until the
# test starts it again.
export KMX_NO_ACTIVATION=1
. "$KMX_TESTS_DIR/harness.sh"
: "${KMX_PKCS11_MODULE:?KMX_PKCS11_MODULE must point to libkeymux-pkcs11.so}"
: "${KMX_TEST_PKCS11:?}"
kmx_own_pcscd "$@"
kmx_setup
cd "$KMX_TMP"

listed() { kmx_manager ListDevices | grep -q "$1"; }
not_listed() { ! listed "$1"; }
available() { [ "$(kmx_prop "$1" org.keymux.Keystore1.Device Available 2>/dev/null)" = "b true" ]; }

# the client (tests/kmx-test-pkcs11.c, "events"): a command a line in, an
# answer a line out; "ask" waits for the answer however long it takes (the
# read's limit only turns a hang into a failure)
mkfifo p11.in p11.out
"$KMX_TEST_PKCS11" "$KMX_PKCS11_MODULE" events <p11.in >p11.out 2>p11.err &
client=$!
KMX_PIDS+=("$client")
exec 3>p11.in 4<p11.out
send() { printf '%s\n' "$*" >&3; }
answer() {
	local line
	IFS= read -r -t 120 line <&4 || fail "no answer from the PKCS#11 client: $(cat p11.err)"
	printf '%s\n' "$line"
}
ask() {
	send "$@"
	answer
}
expect() { # ANSWER COMMAND...
	local want=$1
	shift
	assert_eq "$want" "$(ask "$@")" "$*"
}
# two events, in either order: their slots, sorted
two_events() { # how-first how-second
	local a b
	a=$(ask "$1")
	b=$(ask "$2")
	printf '%s\n%s\n' "${a##* }" "${b##* }" | sort -n | tr '\n' ' '
}

expect "not initialized" poll

# ---- no bus (at the address given, or no address at all): no slots, no
# event, no hang ----
nobus=$(printf 'init\ncount\npoll\nfinalize\nquit\n' |
	DBUS_SESSION_BUS_ADDRESS=unix:path=$KMX_TMP/no-bus "$KMX_TEST_PKCS11" "$KMX_PKCS11_MODULE" events) ||
	fail "the PKCS#11 client with no bus"
assert_eq "$(printf 'ok\ncount 0\nno event\nok')" "$nobus" "no bus at the address"
mkdir -m 700 no-runtime-dir
nobus=$(
	unset DBUS_SESSION_BUS_ADDRESS DISPLAY
	printf 'init\ncount\npoll\nfinalize\nquit\n' |
		XDG_RUNTIME_DIR="$KMX_TMP/no-runtime-dir" "$KMX_TEST_PKCS11" "$KMX_PKCS11_MODULE" events
) || fail "the PKCS#11 client with no bus address"
assert_eq "$(printf 'ok\ncount 0\nno event\nok')" "$nobus" "no bus address"

# ---- a card in the reader, keymuxd sees it ----
kmx_start_pcscd
kmx_start_card_sim --serial 0000BEEF --keys sig=ecdsa-p256,aut=ed25519
until_ok grep -q '^inserted' "$KMX_TMP/card.log"
kmx_start_daemon
CARD=card:FFFE0000BEEF
D=$(kmx_device_path $CARD)
until_ok available "$D"

# ---- the state comes from keymuxd's signals: one GetManagedObjects for
# everything below, where every call used to read everything again ----
dbus-monitor --session "type='method_call',member='GetManagedObjects'" \
	"type='method_call',member='GetId'" >monitor.out 2>&1 &
monitor=$!
KMX_PIDS+=("$monitor")
until_ok grep -q 'member=NameLost' monitor.out
expect ok init
expect "no event" poll
SOFT=$(ask slot softkey:login)
SOFT=${SOFT#slot }
CS=$(ask slot $CARD)
CS=${CS#slot }
[ "$SOFT" != 0 ] && [ "$CS" != 0 ] && [ "$SOFT" != "$CS" ] || fail "slots: softkey $SOFT, card $CS"
expect present present "$SOFT"
expect present present "$CS"
expect "count 2" count
expect ok session "$SOFT"
expect user state
expect "found 0" find "no such key"
expect ok bad
# everything the bus passed before GetId was seen by the monitor
busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetId >/dev/null
until_ok grep -q 'member=GetId' monitor.out
assert_eq 1 "$(grep -c 'member=GetManagedObjects' monitor.out)" "GetManagedObjects calls"
kill "$monitor"

# ---- signals from anyone but keymuxd (or the bus) change nothing: the
# softkey device said gone, unavailable, keymuxd said gone, to every
# connection and to each one; then a round trip on the same connection, so
# that the bus has passed them on before the client's next call ----
/usr/bin/python3 - "$(kmx_device_path softkey:login)" <<'EOS'
import sys
from gi.repository import Gio, GLib
bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
def call(method, args, reply):
    return bus.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                         method, args, GLib.VariantType(reply), Gio.DBusCallFlags.NONE, -1, None)
owner = call("GetNameOwner", GLib.Variant("(s)", ("org.keymux.Keystore1",)), "(s)")[0]
names = [n for n in call("ListNames", None, "(as)")[0]
         if n.startswith(":") and n not in (owner, bus.get_unique_name())]
device = sys.argv[1]
lies = [
    (device, "org.freedesktop.DBus.Properties", "PropertiesChanged",
     GLib.Variant("(sa{sv}as)", ("org.keymux.Keystore1.Device", {"Available": GLib.Variant("b", False)}, []))),
    ("/org/keymux/Keystore1", "org.freedesktop.DBus.ObjectManager", "InterfacesRemoved",
     GLib.Variant("(oas)", (device, ["org.keymux.Keystore1.Device"]))),
    ("/org/freedesktop/DBus", "org.freedesktop.DBus", "NameOwnerChanged",
     GLib.Variant("(sss)", ("org.keymux.Keystore1", owner, ""))),
]
for dest in [None] + names:
    for path, iface, member, args in lies:
        bus.emit_signal(dest, path, iface, member, args)
call("GetId", None, "(s)")
EOS
expect present present "$SOFT"
expect "count 2" count
expect "no event" poll

# ---- every change is seen by the next call ----
kmx_device softkey:login ChangeSecret ss "" "pass phrase" >/dev/null
expect yes login-required "$SOFT"
for _ in 1 2 3; do
	kmx_device softkey:login Lock >/dev/null
	expect public state
	kmx_device softkey:login Unlock sa{sv} "pass phrase" 0 >/dev/null
	expect user state
done
path=$(kmx_device softkey:login GenerateKey ssa{sv} ed25519 "made now" 0 | sed -n 's/^o "\(.*\)"$/\1/p')
[ -n "$path" ] || fail "GenerateKey"
expect "found 1" find made now
kmx_key "$path" SetLabel s "renamed" >/dev/null
expect "found 0" find made now
expect "found 1" find renamed
kmx_key "$path" Delete >/dev/null
expect "found 0" find renamed
kmx_device softkey:login ChangeSecret ss "pass phrase" "" >/dev/null
expect no login-required "$SOFT"
expect "no event" poll

# ---- the card pulled out: a thread blocked in C_WaitForSlotEvent wakes ----
expect waiting bgwait
kmx_card_pull
expect "bg event $CS" join
expect absent present "$CS"
expect "count 1" count
expect "no event" poll

# ---- put back: CKF_DONT_BLOCK has the event once keymuxd has seen it ----
kmx_card_insert
until_ok available "$D"
expect "event $CS" poll
expect "no event" poll
expect present present "$CS"
expect "slot $CS" slot $CARD

# ---- the calling thread blocked: out, and in again ----
send wait
kmx_card_pull
assert_eq "event $CS" "$(answer)" "a blocked C_WaitForSlotEvent, card pulled"
expect absent present "$CS"
send wait
kmx_card_insert
assert_eq "event $CS" "$(answer)" "a blocked C_WaitForSlotEvent, card inserted"
expect present present "$CS"

# ---- a second card in the second reader: a new slot, never an old id ----
/usr/bin/python3 "$KMX_TESTS_DIR/openpgp-card-sim.py" --port $((KMX_VPCD_PORT + 1)) \
	--serial 0000CAFE --keys sig=ed25519 --log "$KMX_TMP/card2.log" >>"$KMX_TMP/card-sim.out" 2>&1 &
card2=$!
KMX_PIDS+=("$card2")
event=$(ask wait)
CS2=$(ask slot card:FFFE0000CAFE)
CS2=${CS2#slot }
assert_eq "event $CS2" "$event" "the second card's event"
[ "$CS2" != 0 ] && [ "$CS2" != "$CS" ] && [ "$CS2" != "$SOFT" ] || fail "the second card's slot: $CS2"
expect "count 3" count
kill -USR1 "$card2"
expect "event $CS2" wait
expect absent present "$CS2"
expect present present "$CS"

# ---- keymuxd killed: every token goes, an event each ----
expect waiting bgwait
kmx_kill_daemon
assert_eq "$(printf '%s\n' "$SOFT" "$CS" | sort -n | tr '\n' ' ')" "$(two_events join poll)" \
	"the events of keymuxd killed"
expect "no event" poll
expect "count 0" count
expect absent present "$SOFT"
expect absent present "$CS"

# ---- started again: the tokens come back, in the slots they had ----
kmx_start_daemon
assert_eq "$(printf '%s\n' "$SOFT" "$CS" | sort -n | tr '\n' ' ')" "$(two_events wait wait)" \
	"the events of keymuxd back"
expect "count 2" count
expect present present "$SOFT"
expect present present "$CS"
expect "slot $CS" slot $CARD
expect "slot $SOFT" slot softkey:login

# ---- C_Finalize wakes a thread blocked in C_WaitForSlotEvent ----
expect waiting bgwait
# only so that the thread is most likely blocked by now: its answer is the
# same if it comes to C_WaitForSlotEvent after C_Finalize
sleep 0.2
expect ok finalize
expect "bg not initialized" join
expect "not initialized" poll
# and initialised again: what is there is no event
expect ok init
expect "no event" poll
expect "count 2" count
expect ok finalize

# (the daemons started since hold the pipe open too)
send quit
exec 3>&- 4<&-
wait "$client" || fail "the PKCS#11 client: $(cat p11.err)"
echo "ok"

#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Drives keymux-settings through AT-SPI, as a screen reader or a person
# with a keyboard would: finds controls by role and accessible name, clicks
# them with their "click" action, types into entries.  One step a call;
# tests/test-panel.sh checks the daemon and takes a screenshot in between.
#
#   kmx-panel-driver.py STEP ARGS...
#
# Every step waits (up to KMX_PANEL_WAIT seconds, default 30) for its
# effect to show in the accessible tree, and fails with a dump of the tree
# if it does not.  Steps:
#   open DEVICE                     the window, DEVICE's group and state
#   state DEVICE TEXT               DEVICE's state row says TEXT
#   names NAME...                   each NAME is in the tree (role-less)
#   set-password DEVICE NEW         "Set Password…" on an unprotected store
#   generate DEVICE LABEL           "Generate…", ed25519, LABEL
#   rename LABEL NEW                the key's rename button
#   lock DEVICE / unlock DEVICE PASSWORD [bad]   (bad: the dialog asks
#                                   again, saying so, and stays open)
#   cancel TITLE                    the dialog TITLE's Cancel
#   prompt DEVICE PASSWORD          answer the panel's prompter dialog
#   asked DEVICE / withdrawn DEVICE the prompter dialog is open / is gone
#                                   unanswered (keymuxd withdrew it)
#   delete LABEL                    the key's delete button, confirmed
#   key LABEL / no-key LABEL        a key row is there / is gone
#   copy LABEL pem|ssh              the key's public-key menu, its copy
#                                   button; prints what the
#                                   X clipboard then holds (read with GTK)
#   change-password DEVICE OLD NEW  "Change Password…"
#   close                           the window's close button
import os
import sys
import time

import pyatspi

WAIT = float(os.environ.get("KMX_PANEL_WAIT", "30"))
APP = "keymux-settings"


class Failure(Exception):
    pass


def named(acc, name, prefix=False):
    """GTK 4.8 joins an explicit label and the labels that label a widget
    ("Cancel Cancel", "Key x Key x"): the name must be NAME, NAME doubled,
    or with prefix=True start with NAME and a space or a colon"""
    n = acc.name or ""
    if n == name or n == name + " " + name:
        return True
    return prefix and (n.startswith(name + " ") or n.startswith(name + ":"))


def children(acc):
    try:
        return [c for c in acc if c is not None]
    except Exception:  # an object that went away while we looked
        return []


def walk(acc):
    yield acc
    for c in children(acc):
        yield from walk(c)


def app():
    for a in children(pyatspi.Registry.getDesktop(0)):
        if a.name == APP:
            return a
    return None


def find_all(root, role=None, name=None, prefix=False):
    out = []
    for acc in walk(root):
        try:
            if role is not None and acc.getRoleName() != role:
                continue
            if name is not None and not named(acc, name, prefix):
                continue
        except Exception:
            continue
        out.append(acc)
    return out


def dump(root):
    lines = []

    def rec(acc, depth):
        try:
            lines.append("%s%s %r" % ("  " * depth, acc.getRoleName(), acc.name))
        except Exception:
            return
        for c in children(acc):
            rec(c, depth + 1)

    if root is not None:
        rec(root, 0)
    return "\n".join(lines)


def wait_for(what, probe):
    """poll PROBE until it returns something true; fail naming WHAT"""
    deadline = time.monotonic() + WAIT
    while True:
        a = app()
        try:
            result = probe(a) if a is not None else None
        except Exception:  # an object that went away while the probe read it
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise Failure("%s: not seen in %g s; the tree:\n%s" % (what, WAIT, dump(a)))
        time.sleep(0.1)


def one(role, name, prefix=False, root=None):
    def probe(a):
        found = find_all(root or a, role, name, prefix)
        return found[0] if found else None

    return wait_for("%s %r" % (role, name), probe)


def gone(role, name, prefix=False):
    wait_for("%s %r gone" % (role, name), lambda a: not find_all(a, role, name, prefix))


def has_click(acc):
    try:
        action = acc.queryAction()
        return any(action.getName(i) == "click" for i in range(action.nActions))
    except Exception:
        return False


def click(acc):
    action = acc.queryAction()
    for i in range(action.nActions):
        if action.getName(i) in ("click", "press", "activate"):
            action.doAction(i)
            return
    raise Failure("%r has no click action" % acc.name)


def dialog(title):
    return one("dialog", title)


def type_into(entry, text):
    """set an entry's text through EditableText; check it took"""
    entry.queryEditableText().setTextContents(text)
    wait_for(
        "the text of %r" % entry.name,
        lambda a: entry.queryText().getText(0, -1) == text or (text and entry.queryText().characterCount == len(text)),
    )


def respond(dlg, label):
    click(one("push button", label, root=dlg))


def dialog_gone(title):
    gone("dialog", title)


def entry(dlg, label):
    """a text entry or a password entry (role "password text")"""

    def probe(a):
        found = find_all(dlg, "text", label) + find_all(dlg, "password text", label)
        return found[0] if found else None

    return wait_for("entry %r" % label, probe)


def state_row(device):
    return one("list item", "State of %s" % device, prefix=True)


def step_open(device):
    one("frame", "Keys")
    one("label", device)
    print(state_row(device).name)


def step_state(device, text):
    wait_for(
        "the state of %s saying %r" % (device, text),
        lambda a: any(text in (r.name or "") for r in find_all(a, "list item", "State of %s" % device, True)),
    )


def step_names(*names):
    for n in names:
        wait_for("%r" % n, lambda a, n=n: find_all(a, None, n, True))


def step_set_password(device, new):
    click(one("push button", "Set a password on %s" % device))
    title = "Set a Password on %s" % device
    dlg = dialog(title)
    type_into(entry(dlg, "New password"), new)
    type_into(entry(dlg, "Repeat the new password"), new)
    respond(dlg, "Set")
    dialog_gone(title)
    one("push button", "Change the password of %s" % device)


def step_generate(device, label):
    click(one("push button", "Generate a key on %s" % device))
    title = "Generate a Key on %s" % device
    dlg = dialog(title)
    one("label", "ed25519", root=dlg)
    type_into(entry(dlg, "Label"), label)
    respond(dlg, "Generate")
    dialog_gone(title)
    step_key(label)


def step_rename(label, new):
    click(one("push button", "Rename key %s" % label))
    title = "Rename “%s”" % label
    dlg = dialog(title)
    type_into(entry(dlg, "New label"), new)
    respond(dlg, "Rename")
    dialog_gone(title)
    step_key(new)
    step_no_key(label)


def step_lock(device):
    click(one("push button", "Lock %s" % device))
    step_state(device, ": Locked")
    one("push button", "Unlock %s" % device)


def step_unlock(device, password, bad=None):
    click(one("push button", "Unlock %s" % device))
    answer_unlock(device, password, bad)


def answer_unlock(device, password, bad):
    title = "Unlock %s" % device
    dlg = dialog(title)
    type_into(entry(dlg, "Password"), password)
    respond(dlg, "Unlock")
    if bad:
        # the panel asks again, saying why; nothing was unlocked
        wait_for(
            "the second unlock dialog saying the password was wrong",
            lambda a: any(
                "password" in " ".join(l.name or "" for l in find_all(d, "label")).lower()
                and "wrong" in " ".join(l.name or "" for l in find_all(d, "label")).lower()
                for d in find_all(a, "dialog", title)
            ),
        )
        return  # left open: the test takes a screenshot, then "cancel"
    dialog_gone(title)


def step_cancel(title):
    respond(dialog(title), "Cancel")
    dialog_gone(title)


def step_prompt(device, password):
    answer_unlock(device, password, None)


def step_asked(device):
    dialog("Unlock %s" % device)


def step_withdrawn(device):
    dialog_gone("Unlock %s" % device)


def step_delete(label):
    click(one("push button", "Delete key %s" % label))
    title = "Delete “%s”?" % label
    dlg = dialog(title)
    respond(dlg, "Delete")
    dialog_gone(title)
    step_no_key(label)


def step_key(label):
    one("list item", "Key %s" % label, prefix=True)


def step_no_key(label):
    gone("list item", "Key %s" % label, prefix=True)


def clipboard_text():
    import gi

    gi.require_version("Gdk", "4.0")
    gi.require_version("Gtk", "4.0")
    from gi.repository import GLib, Gtk

    Gtk.init()
    clipboard = Gtk.Window().get_display().get_clipboard()
    loop = GLib.MainLoop()
    out = {}

    def done(cb, res):
        try:
            out["text"] = cb.read_text_finish(res)
        except GLib.Error as e:
            out["error"] = e.message
        loop.quit()

    clipboard.read_text_async(None, done)
    loop.run()
    return out.get("text")  # None while nobody owns it (or not with text)


def step_copy(label, form):
    name = {
        "pem": "Copy the public key of %s as PEM",
        "ssh": "Copy the public key of %s as an authorized_keys line",
    }[form]
    # the menu button opens the popover that holds the copy buttons
    menu = wait_for(
        "the public-key menu of %r" % label,
        lambda a: next((b for b in find_all(a, "push button", "Public key of %s" % label) if has_click(b)), None),
    )
    click(menu)
    click(one("push button", name % label))
    start = "-----BEGIN PUBLIC KEY-----" if form == "pem" else "ssh-"
    text = wait_for(
        "the %s public key on the clipboard" % form,
        lambda a: next((t for t in [clipboard_text() or ""] if t.startswith(start)), None),
    )
    sys.stdout.write(text)


def step_change_password(device, old, new):
    click(one("push button", "Change the password of %s" % device))
    title = "Change the Password of %s" % device
    dlg = dialog(title)
    type_into(entry(dlg, "Current password"), old)
    type_into(entry(dlg, "New password"), new)
    type_into(entry(dlg, "Repeat the new password"), new)
    respond(dlg, "Change")
    dialog_gone(title)


def step_close():
    click(one("push button", "Close", root=one("frame", "Keys")))


STEPS = {
    "close": step_close,
    "copy": step_copy,
    "change-password": step_change_password,
    "open": step_open,
    "state": step_state,
    "names": step_names,
    "set-password": step_set_password,
    "generate": step_generate,
    "rename": step_rename,
    "lock": step_lock,
    "unlock": step_unlock,
    "prompt": step_prompt,
    "asked": step_asked,
    "withdrawn": step_withdrawn,
    "cancel": step_cancel,
    "delete": step_delete,
    "key": step_key,
    "no-key": step_no_key,
}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in STEPS:
        print("usage: kmx-panel-driver.py %s ARGS..." % "|".join(STEPS), file=sys.stderr)
        return 2
    try:
        STEPS[sys.argv[1]](*sys.argv[2:])
    except Failure as e:
        print("FAIL %s: %s" % (sys.argv[1], e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

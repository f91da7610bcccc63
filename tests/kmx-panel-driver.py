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
#                                   again, saying so, and stays open; a
#                                   card's dialog asks for its PIN)
#   cancel TITLE                    the dialog TITLE's Cancel
#   prompt DEVICE PASSWORD          answer the panel's prompter dialog
#   asked DEVICE / withdrawn DEVICE the prompter dialog is open / is gone
#                                   unanswered (keymuxd withdrew it)
#   delete LABEL                    the key's delete button, confirmed
#   key LABEL / no-key LABEL        a key row is there / is gone
#   copy LABEL pem|ssh              the key's public-key menu, its copy
#                                   button; prints what the X clipboard
#                                   then holds (read with xclip)
#   save LABEL pem|ssh PATH         the key's public-key menu, "Save as
#                                   …", PATH typed into the file chooser;
#                                   waits until the file is there
#   import DEVICE PATH LABEL PASSPHRASE [bad]   "Import…", PATH typed
#                                   into the file chooser (Ctrl+L), then
#                                   LABEL and PASSPHRASE (bad: the dialog
#                                   asks again, saying so, and stays open)
#   import-again PATH LABEL PASSPHRASE   answer that dialog again
#   import-refused DEVICE PATH TEXT "Import…" of PATH: no import dialog, a
#                                   notice saying TEXT
#   import-fails DEVICE PATH TEXT   "Import…" of PATH, answered: a notice
#                                   saying TEXT, no key added
#   toast TEXT                      a notice saying TEXT is shown
#   change-password DEVICE OLD NEW [PIN]   "Change Password…" ("Change
#                                   PIN…" with PIN)
#   register DEVICE / forget DEVICE "Register" / "Forget" on DEVICE
#   device DEVICE / no-device DEVICE   DEVICE's group is there / is gone
#   sensitive NAME yes|no           the button NAME is usable / greyed out
#   close                           the window's close button
import os
import subprocess
import sys
import time

import pyatspi

# how long a widget may take to appear before the step fails: a guard
# against a hang, not a speed check (a wrong password's key derivation on
# a loaded machine took most of 30 s)
WAIT = float(os.environ.get("KMX_PANEL_WAIT", "60"))
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
    # a card asks for its PIN, anything else for a password
    field = wait_for(
        "the password or PIN entry of %r" % title,
        lambda a: next(iter(find_all(dlg, "text", "Password") + find_all(dlg, "text", "PIN")), None),
    )
    word = "pin" if named(field, "PIN") else "password"
    type_into(field, password)
    respond(dlg, "Unlock")
    if bad:
        # the panel asks again, saying why; nothing was unlocked
        dialog_says(title, word, "wrong")
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
    """what the X clipboard holds, read by xclip (None while nobody owns it)"""
    try:
        out = subprocess.run(
            ["xclip", "-selection", "clipboard", "-o"], capture_output=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        return None
    return out.stdout.decode() if out.returncode == 0 else None


FORMS = {"pem": "as PEM", "ssh": "as an authorized_keys line"}


def public_action(verb, label, form):
    """VERB ("Copy", "Save") in the key's public-key menu, in FORM"""
    # the menu button opens the popover that holds the buttons
    menu = wait_for(
        "the public-key menu of %r" % label,
        lambda a: next((b for b in find_all(a, "push button", "Public key of %s" % label) if has_click(b)), None),
    )
    click(menu)
    click(one("push button", "%s the public key of %s %s" % (verb, label, FORMS[form])))


def step_copy(label, form):
    public_action("Copy", label, form)
    start = "-----BEGIN PUBLIC KEY-----" if form == "pem" else "ssh-"
    text = wait_for(
        "the %s public key on the clipboard" % form,
        lambda a: next((t for t in [clipboard_text() or ""] if t.startswith(start)), None),
    )
    sys.stdout.write(text)


def step_change_password(device, old, new, word="password"):
    click(one("push button", "Change the %s of %s" % (word, device)))
    title = "Change the %s of %s" % ("PIN" if word == "PIN" else "Password", device)
    dlg = dialog(title)
    type_into(entry(dlg, "Current %s" % word), old)
    type_into(entry(dlg, "New %s" % word), new)
    type_into(entry(dlg, "Repeat the new %s" % word), new)
    respond(dlg, "Change")
    dialog_gone(title)


# ---- the keyboard, through AT-SPI's synthesized key events (XTest) ----

KEY_CONTROL = 37  # the X keycode of Control_L in Xvfb's keymap


def key_combo(keysym, control=False):
    reg = pyatspi.Registry
    if control:
        reg.generateKeyboardEvent(KEY_CONTROL, None, pyatspi.KEY_PRESS)
    try:
        reg.generateKeyboardEvent(keysym, None, pyatspi.KEY_SYM)
    finally:
        if control:
            reg.generateKeyboardEvent(KEY_CONTROL, None, pyatspi.KEY_RELEASE)


def text_of(acc):
    t = acc.queryText()
    # GTK 4.8 answers getText(0, -1) with "": ask for the characters it has
    return t.getText(0, t.characterCount)


def focused_entry(root):
    for e in find_all(root, "text"):
        try:
            if e.getState().contains(pyatspi.STATE_FOCUSED):
                return e
        except Exception:
            continue
    return None


def chooser(title):
    """GTK 4.8's file chooser dialog (its accessible role is "filler")"""

    def probe(a):
        for c in children(a):
            if named(c, title) and c.getRoleName() in ("dialog", "filler", "file chooser"):
                return c
        return None

    return wait_for("the file chooser %r" % title, probe)


def choose_file(title, path, save=False):
    """type PATH into the chooser TITLE as a person would: Ctrl+L opens the
    location entry of an Open chooser (a Save chooser has its name entry
    focused already), Ctrl+A selects what it holds, the path replaces it;
    the path typed is checked, then the chooser's Open or Save button is
    clicked (Return could land in the completion popup the path opens).
    Key events go to the window with the keyboard focus: a Ctrl+L that
    came before the chooser had it is pressed again (only while no location
    entry shows: pressed on a focused one, it would hide it again), and the
    path is typed again."""
    dlg = chooser(title)
    last = [0.0]

    def location_entry(a):
        found = focused_entry(dlg)
        if (
            found is None
            and not save
            and not find_all(dlg, "text", "GtkFileChooserEntry")
            and time.monotonic() - last[0] > 5
        ):
            key_combo(ord("l"), control=True)
            last[0] = time.monotonic()
        return found

    field = wait_for("the focused entry of %r" % title, location_entry)
    for attempt in range(3):
        key_combo(ord("a"), control=True)
        pyatspi.Registry.generateKeyboardEvent(0, path, pyatspi.KEY_STRING)
        try:
            wait_for("%r typed into %r" % (path, title), lambda a: text_of(field) == path)
            break
        except Failure:
            if attempt == 2:
                raise
    respond(dlg, "Save" if save else "Open")
    wait_for("the file chooser %r gone" % title, lambda a: not any(named(c, title) for c in children(a)))


def step_save(label, form, path):
    public_action("Save", label, form)
    title = "Save the Public Key %s" % FORMS[form].replace(" line", " Line")
    choose_file(title, path, save=True)
    # the panel writes a temp file and renames it: there means complete
    wait_for("the file %s" % path, lambda a: os.path.exists(path))


def start_import(device, path):
    click(one("push button", "Import a key into %s" % device))
    choose_file("Import a Key", path)


def answer_import(title, label, passphrase):
    dlg = dialog(title)
    type_into(entry(dlg, "Label"), label)
    if passphrase:
        type_into(entry(dlg, "Passphrase of the file, if it has one"), passphrase)
    respond(dlg, "Import")


def dialog_says(title, *words):
    wait_for(
        "the dialog %r saying %s" % (title, " ".join(words)),
        lambda a: any(
            all(w in " ".join(l.name or "" for l in find_all(d, "label")).lower() for w in words)
            for d in find_all(a, "dialog", title)
        ),
    )


def step_import(device, path, label, passphrase, bad=None):
    title = "Import “%s”" % os.path.basename(path)
    start_import(device, path)
    answer_import(title, label, passphrase)
    if bad:
        # the panel asks again with the bytes it read, saying why
        dialog_says(title, "passphrase", "wrong")
        return  # left open: the test takes a screenshot, then answers again
    dialog_gone(title)
    step_key(label)


def step_import_again(path, label, passphrase):
    title = "Import “%s”" % os.path.basename(path)
    answer_import(title, label, passphrase)
    dialog_gone(title)
    step_key(label)


def toast_texts(a):
    """the notices on screen: the toast overlay's labels (the pages, large,
    are not walked, so a short-lived notice is read in time)"""
    out = []

    def rec(acc):
        for c in children(acc):
            try:
                role = c.getRoleName()
                if role == "scroll pane":
                    continue
                if role == "label" and c.name:
                    out.append(c.name)
            except Exception:
                continue
            rec(c)

    frame = next((c for c in children(a) if named(c, "Keys")), None)
    if frame is not None:
        rec(frame)
    return out


def step_toast(text):
    wait_for("a notice saying %r" % text, lambda a: any(text in t for t in toast_texts(a)))


def step_import_refused(device, path, text):
    start_import(device, path)
    step_toast(text)
    gone("dialog", "Import “%s”" % os.path.basename(path))


def step_import_fails(device, path, text):
    title = "Import “%s”" % os.path.basename(path)
    start_import(device, path)
    answer_import(title, "not imported", None)
    step_toast(text)
    dialog_gone(title)
    step_no_key("not imported")


def step_register(device):
    click(one("push button", "Register %s" % device))
    step_state(device, "Registered")
    one("push button", "Forget %s" % device)


def step_forget(device):
    click(one("push button", "Forget %s" % device))
    one("push button", "Register %s" % device)
    wait_for(
        "the state of %s without Registered" % device,
        lambda a: any(
            "Registered" not in (r.name or "") for r in find_all(a, "list item", "State of %s" % device, True)
        ),
    )


def sensitive(acc):
    return acc.getState().contains(pyatspi.STATE_SENSITIVE)


def step_sensitive(name, want="yes"):
    """the control NAME can be used (yes) or is greyed out (no)"""
    want = want == "yes"
    wait_for(
        "%r %s" % (name, "usable" if want else "greyed out"),
        lambda a: any(sensitive(b) == want for b in find_all(a, "push button", name)),
    )


def step_device(device):
    one("label", device)
    state_row(device)


def step_no_device(device):
    gone("list item", "State of %s" % device, prefix=True)


def step_close():
    click(one("push button", "Close", root=one("frame", "Keys")))


STEPS = {
    "close": step_close,
    "copy": step_copy,
    "save": step_save,
    "import": step_import,
    "import-again": step_import_again,
    "import-refused": step_import_refused,
    "import-fails": step_import_fails,
    "toast": step_toast,
    "register": step_register,
    "forget": step_forget,
    "device": step_device,
    "sensitive": step_sensitive,
    "no-device": step_no_device,
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

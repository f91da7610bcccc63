#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# libkeymux from Python: list the keys, make an Ed25519 key if there is
# none, sign a file with it, and answer prompts for a secret.
#
#   keymux-sign.py FILE SIGNATURE-OUT PUBLIC-KEY-OUT [SECRET]
#
# With SECRET, the script registers a prompter that answers with it and
# locks the store first, so that the signature needs the prompt.
import sys

import gi

gi.require_version("Keymux", "1")
from gi.repository import GLib, Keymux  # noqa: E402


def main():
    data_file, sig_file, pub_file = sys.argv[1:4]
    secret = sys.argv[4] if len(sys.argv) > 4 else None
    client = Keymux.Client.new_sync(None)
    print("peer-to-peer", client.get_peer_to_peer())
    for key in client.get_keys():
        print("key", key.get_id(), key.get_algorithm(), key.dup_label())

    device = client.lookup_device("softkey:login")
    key = next((k for k in device.get_keys() if k.get_algorithm() == "ed25519"), None)
    if key is None:
        key = device.generate_key_sync("ed25519", "made by keymux-sign.py", Keymux.CallFlags.NONE, None)
        print("generated", key.get_id())

    prompter = None
    if secret is not None:
        prompter = Keymux.Prompter.new(client)

        def ask(_prompter, request):
            print("asked", request.get_device_path(), request.get_message())
            request.reply(secret)
            return True

        prompter.connect("ask-secret", ask)
        prompter.register_sync(None)
        device.lock_sync(None)

    with open(data_file, "rb") as f:
        data = GLib.Bytes.new(f.read())
    loop = GLib.MainLoop()
    result = {}

    def signed(k, res):
        try:
            result["sig"] = k.sign_finish(res)
        except GLib.Error as e:
            result["error"] = e
        loop.quit()

    # asynchronous: the prompter answers on this main loop meanwhile
    key.sign("ed25519", data, Keymux.CallFlags.NONE, None, signed)
    loop.run()
    if "error" in result:
        print("error", result["error"].message, file=sys.stderr)
        return 1
    with open(sig_file, "wb") as f:
        f.write(result["sig"].get_data())
    with open(pub_file, "wb") as f:
        f.write(key.dup_public_key().get_data())
    print("signed with", key.get_id())
    return 0


if __name__ == "__main__":
    sys.exit(main())

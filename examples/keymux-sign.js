#!/usr/bin/gjs -m
// SPDX-License-Identifier: LGPL-2.1-or-later
// libkeymux from GJS: list the keys, make an ECDSA P-256 key, sign a file
// with it, and answer prompts for a secret.
//
//   gjs -m keymux-sign.js FILE SIGNATURE-OUT PUBLIC-KEY-OUT [SECRET]
//
// With SECRET, a prompter answers with it and the store is locked first,
// so that the signature needs the prompt.
import GLib from 'gi://GLib';
import Keymux from 'gi://Keymux?version=1';
import System from 'system';

const [dataFile, sigFile, pubFile, secret] = ARGV;
const client = Keymux.Client.new_sync(null);
print(`peer-to-peer ${client.get_peer_to_peer()}`);
for (const key of client.get_keys())
    print(`key ${key.get_id()} ${key.get_algorithm()} ${key.dup_label()}`);

const device = client.lookup_device('softkey:login');
let key = device.get_keys().find(k => k.get_algorithm() === 'ecdsa-p256');
if (!key) {
    key = device.generate_key_sync('ecdsa-p256', 'made by keymux-sign.js',
        Keymux.CallFlags.NONE, null);
    print(`generated ${key.get_id()}`);
}

if (secret !== undefined) {
    const prompter = Keymux.Prompter.new(client);
    prompter.connect('ask-secret', (_p, request) => {
        print(`asked ${request.get_device_path()} ${request.get_message()}`);
        request.reply(secret);
        return true;
    });
    prompter.register_sync(null);
    device.lock_sync(null);
    globalThis.prompter = prompter;
}

const [, data] = GLib.file_get_contents(dataFile);
const loop = new GLib.MainLoop(null, false);
let status = 0;
// asynchronous: the prompter answers on this main loop meanwhile
key.sign('ecdsa-sha256', new GLib.Bytes(data), Keymux.CallFlags.NONE, null, (k, res) => {
    try {
        const sig = k.sign_finish(res);
        GLib.file_set_contents(sigFile, sig.toArray());
        GLib.file_set_contents(pubFile, k.dup_public_key().toArray());
        print(`signed with ${k.get_id()}`);
    } catch (e) {
        printerr(`error ${e.message}`);
        status = 1;
    }
    loop.quit();
});
loop.run();
System.exit(status);

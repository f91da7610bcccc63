/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: bus names and object paths shared by the daemon and its clients */
#pragma once

#define KMX_DBUS_NAME		    "org.keymux.Keystore1"
#define KMX_DBUS_PATH		    "/org/keymux/Keystore1"
#define KMX_DBUS_DEVICES_PATH	    "/org/keymux/Keystore1/devices"
#define KMX_DBUS_MANAGER_INTERFACE  "org.keymux.Keystore1.Manager"
#define KMX_DBUS_DEVICE_INTERFACE   "org.keymux.Keystore1.Device"
#define KMX_DBUS_KEY_INTERFACE	    "org.keymux.Keystore1.Key"
#define KMX_DBUS_PROMPTER_INTERFACE "org.keymux.Keystore1.Prompter"
#define KMX_DBUS_ERROR_PREFIX	    "org.keymux.Keystore1.Error."

/*
 * The PKCS#11 module's view of keymuxd: a thread that listens to its
 * signals on a connection of its own (see kmx-p11-watch.c)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

typedef struct _KmxP11Watch KmxP11Watch;

typedef enum {
	/* @body: GetManagedObjects' (a{oa{sa{sv}}}), everything there is; or
	 * NULL: keymuxd is gone (or the bus), nothing is there */
	KMX_P11_WATCH_SNAPSHOT,
	/* @body: InterfacesAdded's (oa{sa{sv}}) */
	KMX_P11_WATCH_ADDED,
	/* @body: InterfacesRemoved's (oas) */
	KMX_P11_WATCH_REMOVED,
	/* @path changed; @body: PropertiesChanged's (sa{sv}as) */
	KMX_P11_WATCH_CHANGED,
} KmxP11WatchEvent;

/*
 * KmxP11WatchFunc: what keymuxd said, in the order it said it, called on the
 * watch's thread with no lock of the watch held.  Returns FALSE when the
 * change cannot be applied on its own: the watch then reads everything
 * again (a SNAPSHOT follows).
 */
typedef gboolean (*KmxP11WatchFunc)(KmxP11Watch *watch,
				    KmxP11WatchEvent event,
				    const char *path,
				    GVariant *body,
				    gpointer user_data);

/* starts the thread; it connects when kmx_p11_watch_sync() first asks */
KmxP11Watch *kmx_p11_watch_new(KmxP11WatchFunc func, gpointer user_data, GError **error);
KmxP11Watch *kmx_p11_watch_ref(KmxP11Watch *watch);
void kmx_p11_watch_unref(KmxP11Watch *watch);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxP11Watch, kmx_p11_watch_unref)

/*
 * kmx_p11_watch_sync: returns once everything keymuxd said before this call
 * has been given to the watch's function (a round trip on the watch's
 * connection: D-Bus keeps a sender's messages in order), or it is known to
 * be gone.  FALSE if the watch was stopped meanwhile.
 */
gboolean kmx_p11_watch_sync(KmxP11Watch *watch);

/* stop and join the thread; kmx_p11_watch_sync() callers return FALSE.
 * Not from the watch's function. */
void kmx_p11_watch_stop(KmxP11Watch *watch);

/* in a fork()ed child, which has no such thread: close its descriptors and
 * touch nothing else (its locks are the parent's) */
void kmx_p11_watch_abandon(KmxP11Watch *watch);

/* pthread_atfork handlers: the watch's lock is consistent in a child */
void kmx_p11_watch_lock(KmxP11Watch *watch);
void kmx_p11_watch_unlock(KmxP11Watch *watch);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PKCS#11 module's view of keymuxd, kept from its signals.
 *
 * keymuxd announces every change (DESIGN §4: InterfacesAdded,
 * InterfacesRemoved, PropertiesChanged) and the bus announces its coming
 * and going (NameOwnerChanged).  A thread of the module's own listens to
 * those on a connection of its own (kmx-p11-bus.c: no GDBusConnection, no
 * main loop of the host's), reads everything once with GetManagedObjects
 * when it connects or keymuxd comes back, and hands each change to the
 * module (KmxP11WatchFunc), which keeps its slots and objects from them
 * and turns a token coming or going into a slot event.
 *
 * Signals are not enough on their own to answer "what is there now": a
 * change keymuxd made before the caller asked may still be on its way.  So
 * kmx_p11_watch_sync() makes a round trip on the same connection, a Ping to
 * keymuxd: a sender's messages arrive in the order it sent them, so when
 * the Ping's reply is read, every signal keymuxd sent before it has been
 * applied.  That costs a few hundred bytes where reading everything again
 * cost the whole store.
 *
 * Only the signals of the name's current owner count: a snapshot's reply
 * says who that is, and NameOwnerChanged says when it changes (then
 * everything is read again).  C_Finalize stops the thread through an
 * eventfd and joins it; a fork()ed child has no such thread and abandons
 * the parent's watch.
 */
#include "kmx-p11-watch.h"

#include "kmx-p11-bus.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define KMX_NAME	     "org.keymux.Keystore1"
#define KMX_ROOT	     "/org/keymux/Keystore1"
#define BUS_NAME	     "org.freedesktop.DBus"
#define BUS_PATH	     "/org/freedesktop/DBus"
#define OBJECT_MANAGER_IFACE "org.freedesktop.DBus.ObjectManager"
#define PROPERTIES_IFACE     "org.freedesktop.DBus.Properties"
/* the largest message accepted (GetManagedObjects of a very large store) */
#define KMX_P11_WATCH_MAX_MESSAGE (64u * 1024u * 1024u)
/* a bus that went away is looked for again after this, doubling */
#define KMX_P11_WATCH_RETRY_MIN_MS 250
#define KMX_P11_WATCH_RETRY_MAX_MS 30000

typedef enum {
	KMX_REQUEST_MATCH = 1,
	KMX_REQUEST_PING,
	KMX_REQUEST_SNAPSHOT,
} KmxRequest;

struct _KmxP11Watch {
	gint refs;
	KmxP11WatchFunc func;
	gpointer user_data;
	pthread_t thread;
	gboolean thread_started;
	int wake_fd;
	char *address; /* the session bus's */

	GMutex mutex;
	GCond cond;
	/* under mutex */
	gboolean stopping;
	KmxP11Conn *conn;      /* NULL: not connected */
	guint generation;      /* connections made and lost */
	guint attempts;	       /* connection attempts done */
	gboolean want_connect; /* a caller waits for an attempt */
	gint64 retry_at;       /* the next attempt by itself; 0: none */
	guint retry_ms;
	GHashTable *pending;   /* serial -> KmxRequest */
	guint snapshots;       /* GetManagedObjects in flight */
	guint64 sent;	       /* requests sent */
	guint64 snapshot_sent; /* the value of sent at the last GetManagedObjects */
	char *owner;	       /* keymuxd's unique name; NULL: not known */

	/* the thread's own: bytes read, not yet a whole message */
	GByteArray *in;
};

static GDBusMessage *
kmx_p11_watch_message(const char *dest,
		      const char *path,
		      const char *iface,
		      const char *method,
		      GVariant *body,
		      gboolean auto_start)
{
	GDBusMessage *message = g_dbus_message_new_method_call(dest, path, iface, method);

	if (body != NULL)
		g_dbus_message_set_body(message, body);
	if (!auto_start)
		g_dbus_message_set_flags(message, G_DBUS_MESSAGE_FLAGS_NO_AUTO_START);
	return message;
}

/* send a request whose reply the thread waits for; with the lock.  0: the
 * connection failed, and the thread will see it closed */
static guint32
kmx_p11_watch_send_locked(KmxP11Watch *watch, GDBusMessage *message, KmxRequest kind)
{
	g_autoptr(GError) error = NULL;
	guint32 serial;

	if (watch->conn == NULL)
		return 0;
	serial = kmx_p11_conn_send(watch->conn, message, &error);
	if (serial == 0) {
		g_debug("keymux: the bus connection failed: %s", error->message);
		shutdown(kmx_p11_conn_get_fd(watch->conn), SHUT_RDWR);
		return 0;
	}
	g_hash_table_insert(watch->pending, GUINT_TO_POINTER(serial), GINT_TO_POINTER(kind));
	watch->sent++;
	if (kind == KMX_REQUEST_SNAPSHOT) {
		watch->snapshots++;
		watch->snapshot_sent = watch->sent;
	}
	return serial;
}

/* read everything again; @auto_start: keymuxd may be started for it */
static guint32
kmx_p11_watch_request_snapshot_locked(KmxP11Watch *watch, gboolean auto_start)
{
	g_autoptr(GDBusMessage) message = kmx_p11_watch_message(KMX_NAME,
								KMX_ROOT,
								OBJECT_MANAGER_IFACE,
								"GetManagedObjects",
								NULL,
								auto_start);
	return kmx_p11_watch_send_locked(watch, message, KMX_REQUEST_SNAPSHOT);
}

static gboolean
kmx_p11_watch_add_matches_locked(KmxP11Watch *watch)
{
	const char *rules[] = {
	    "type='signal',sender='" BUS_NAME "',path='" BUS_PATH "',interface='" BUS_NAME
	    "',member='NameOwnerChanged',arg0='" KMX_NAME "'",
	    "type='signal',sender='" KMX_NAME "',path='" KMX_ROOT
	    "',interface='" OBJECT_MANAGER_IFACE "'",
	    "type='signal',sender='" KMX_NAME "',interface='" PROPERTIES_IFACE
	    "',member='PropertiesChanged',path_namespace='" KMX_ROOT "'",
	};

	for (guint i = 0; i < G_N_ELEMENTS(rules); i++) {
		g_autoptr(GDBusMessage)
		    message = kmx_p11_watch_message(BUS_NAME,
						    BUS_PATH,
						    BUS_NAME,
						    "AddMatch",
						    g_variant_new("(s)", rules[i]),
						    TRUE);
		if (kmx_p11_watch_send_locked(watch, message, KMX_REQUEST_MATCH) == 0)
			return FALSE;
	}
	return TRUE;
}

static void
kmx_p11_watch_wake(KmxP11Watch *watch)
{
	guint64 one = 1;

	if (write(watch->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
		g_debug("keymux: cannot wake the watch: %s", g_strerror(errno));
}

/* keymuxd is gone, or the bus: nothing is there */
static void
kmx_p11_watch_gone(KmxP11Watch *watch)
{
	g_mutex_lock(&watch->mutex);
	g_clear_pointer(&watch->owner, g_free);
	g_mutex_unlock(&watch->mutex);
	watch->func(watch, KMX_P11_WATCH_SNAPSHOT, NULL, NULL, watch->user_data);
}

static void
kmx_p11_watch_retry_later_locked(KmxP11Watch *watch)
{
	watch->retry_at = g_get_monotonic_time() + (gint64)watch->retry_ms * 1000;
	watch->retry_ms = MIN(watch->retry_ms * 2, KMX_P11_WATCH_RETRY_MAX_MS);
}

static void
kmx_p11_watch_connect(KmxP11Watch *watch)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KmxP11Conn) conn = kmx_p11_conn_new(watch->address, &error);

	if (conn == NULL) {
		g_debug("keymux: cannot reach the session bus: %s", error->message);
		/* what is there is applied before a caller is told */
		kmx_p11_watch_gone(watch);
	}
	g_mutex_lock(&watch->mutex);
	if (conn != NULL && !watch->stopping) {
		watch->conn = g_steal_pointer(&conn);
		watch->generation++;
		watch->retry_ms = KMX_P11_WATCH_RETRY_MIN_MS;
		watch->retry_at = 0;
		g_byte_array_set_size(watch->in, 0);
		/* the rules first: the bus applies them before it passes the
		 * request on, so nothing after the snapshot is missed.  A
		 * failure closes the connection, which the thread sees next. */
		if (kmx_p11_watch_add_matches_locked(watch))
			kmx_p11_watch_request_snapshot_locked(watch, TRUE);
	} else if (conn == NULL) {
		kmx_p11_watch_retry_later_locked(watch);
	}
	watch->attempts++;
	g_cond_broadcast(&watch->cond);
	g_mutex_unlock(&watch->mutex);
}

/* the connection closed or broke: no keymuxd until it is back */
static void
kmx_p11_watch_lost(KmxP11Watch *watch)
{
	KmxP11Conn *conn;

	kmx_p11_watch_gone(watch);
	g_mutex_lock(&watch->mutex);
	conn = g_steal_pointer(&watch->conn);
	g_hash_table_remove_all(watch->pending);
	watch->snapshots = 0;
	watch->generation++;
	kmx_p11_watch_retry_later_locked(watch);
	g_cond_broadcast(&watch->cond);
	g_mutex_unlock(&watch->mutex);
	kmx_p11_conn_free(conn);
}

static void
kmx_p11_watch_reply(KmxP11Watch *watch, GDBusMessage *reply)
{
	guint32 serial = g_dbus_message_get_reply_serial(reply);
	const char *sender = g_dbus_message_get_sender(reply);
	GVariant *body = g_dbus_message_get_body(reply);
	g_autoptr(GError) error = NULL;
	gboolean failed;
	KmxRequest kind;

	g_mutex_lock(&watch->mutex);
	kind = GPOINTER_TO_INT(g_hash_table_lookup(watch->pending, GUINT_TO_POINTER(serial)));
	g_mutex_unlock(&watch->mutex);
	if (kind == 0)
		return; /* Hello's, or one a caller stopped waiting for */
	failed = g_dbus_message_to_gerror(reply, &error);
	switch (kind) {
	case KMX_REQUEST_MATCH:
		if (failed) {
			g_debug("keymux: the bus refused to pass keymuxd's signals: %s",
				error->message);
			g_mutex_lock(&watch->mutex);
			if (watch->conn != NULL)
				shutdown(kmx_p11_conn_get_fd(watch->conn), SHUT_RDWR);
			g_mutex_unlock(&watch->mutex);
		}
		break;
	case KMX_REQUEST_PING:
		if (failed) {
			g_debug("keymux: %s", error->message);
			kmx_p11_watch_gone(watch);
		} else {
			g_mutex_lock(&watch->mutex);
			/* another keymuxd answered: read what it has */
			if (watch->owner != NULL && g_strcmp0(sender, watch->owner) != 0) {
				g_clear_pointer(&watch->owner, g_free);
				kmx_p11_watch_request_snapshot_locked(watch, FALSE);
			}
			g_mutex_unlock(&watch->mutex);
		}
		break;
	case KMX_REQUEST_SNAPSHOT:
		if (!failed && sender != NULL && body != NULL &&
		    g_variant_is_of_type(body, G_VARIANT_TYPE("(a{oa{sa{sv}}})"))) {
			g_mutex_lock(&watch->mutex);
			g_free(watch->owner);
			watch->owner = g_strdup(sender);
			g_mutex_unlock(&watch->mutex);
			watch->func(watch, KMX_P11_WATCH_SNAPSHOT, NULL, body, watch->user_data);
		} else {
			g_debug("keymux: cannot list devices: %s",
				failed ? error->message : "a reply of the wrong type");
			kmx_p11_watch_gone(watch);
		}
		break;
	}
	g_mutex_lock(&watch->mutex);
	if (g_hash_table_remove(watch->pending, GUINT_TO_POINTER(serial)) &&
	    kind == KMX_REQUEST_SNAPSHOT)
		watch->snapshots--;
	g_cond_broadcast(&watch->cond);
	g_mutex_unlock(&watch->mutex);
}

static void
kmx_p11_watch_name_owner_changed(KmxP11Watch *watch, GVariant *body)
{
	const char *name, *old_owner, *new_owner;

	if (!g_variant_is_of_type(body, G_VARIANT_TYPE("(sss)")))
		return;
	g_variant_get(body, "(&s&s&s)", &name, &old_owner, &new_owner);
	if (!g_str_equal(name, KMX_NAME))
		return;
	if (*new_owner == '\0') {
		kmx_p11_watch_gone(watch);
		return;
	}
	/* keymuxd (again): what it has; its signals count from the reply on */
	g_mutex_lock(&watch->mutex);
	g_clear_pointer(&watch->owner, g_free);
	kmx_p11_watch_request_snapshot_locked(watch, FALSE);
	g_mutex_unlock(&watch->mutex);
}

static void
kmx_p11_watch_signal(KmxP11Watch *watch, GDBusMessage *message)
{
	const char *sender = g_dbus_message_get_sender(message);
	const char *path = g_dbus_message_get_path(message);
	const char *iface = g_dbus_message_get_interface(message);
	const char *member = g_dbus_message_get_member(message);
	GVariant *body = g_dbus_message_get_body(message);
	const char *object = NULL;
	gboolean from_owner, applied = TRUE;

	if (sender == NULL || path == NULL || iface == NULL || member == NULL || body == NULL)
		return;
	if (g_str_equal(sender, BUS_NAME)) {
		if (g_str_equal(iface, BUS_NAME) && g_str_equal(member, "NameOwnerChanged"))
			kmx_p11_watch_name_owner_changed(watch, body);
		return;
	}
	/* anyone may send us a signal: only keymuxd's count */
	g_mutex_lock(&watch->mutex);
	from_owner = g_strcmp0(sender, watch->owner) == 0;
	g_mutex_unlock(&watch->mutex);
	if (!from_owner)
		return;
	if (g_str_equal(iface, OBJECT_MANAGER_IFACE) && g_str_equal(path, KMX_ROOT)) {
		if (g_str_equal(member, "InterfacesAdded") &&
		    g_variant_is_of_type(body, G_VARIANT_TYPE("(oa{sa{sv}})"))) {
			g_variant_get_child(body, 0, "&o", &object);
			applied =
			    watch->func(watch, KMX_P11_WATCH_ADDED, object, body, watch->user_data);
		} else if (g_str_equal(member, "InterfacesRemoved") &&
			   g_variant_is_of_type(body, G_VARIANT_TYPE("(oas)"))) {
			g_variant_get_child(body, 0, "&o", &object);
			applied = watch->func(watch,
					      KMX_P11_WATCH_REMOVED,
					      object,
					      body,
					      watch->user_data);
		}
	} else if (g_str_equal(iface, PROPERTIES_IFACE) &&
		   g_str_equal(member, "PropertiesChanged") &&
		   g_str_has_prefix(path, KMX_ROOT "/") &&
		   g_variant_is_of_type(body, G_VARIANT_TYPE("(sa{sv}as)"))) {
		applied = watch->func(watch, KMX_P11_WATCH_CHANGED, path, body, watch->user_data);
	}
	if (!applied) {
		g_mutex_lock(&watch->mutex);
		kmx_p11_watch_request_snapshot_locked(watch, FALSE);
		g_mutex_unlock(&watch->mutex);
	}
}

/* what arrived on the connection; FALSE: it is closed or out of step */
static gboolean
kmx_p11_watch_read(KmxP11Watch *watch, int fd)
{
	guint8 buf[16384];
	gssize n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);

	if (n == 0)
		return FALSE;
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
	g_byte_array_append(watch->in, buf, n);
	while (watch->in->len >= 16) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GDBusMessage) message = NULL;
		gssize needed = g_dbus_message_bytes_needed(watch->in->data, 16, &error);

		if (needed < 16 || (gsize)needed > KMX_P11_WATCH_MAX_MESSAGE) {
			g_debug("keymux: the bus sent a message of %" G_GSSIZE_FORMAT " bytes",
				needed);
			return FALSE;
		}
		if (watch->in->len < (gsize)needed)
			break;
		message = g_dbus_message_new_from_blob(watch->in->data,
						       needed,
						       G_DBUS_CAPABILITY_FLAGS_NONE,
						       &error);
		g_byte_array_remove_range(watch->in, 0, needed);
		if (message == NULL) {
			g_debug("keymux: the bus sent a broken message: %s", error->message);
			return FALSE;
		}
		switch (g_dbus_message_get_message_type(message)) {
		case G_DBUS_MESSAGE_TYPE_METHOD_RETURN:
		case G_DBUS_MESSAGE_TYPE_ERROR:
			kmx_p11_watch_reply(watch, message);
			break;
		case G_DBUS_MESSAGE_TYPE_SIGNAL:
			kmx_p11_watch_signal(watch, message);
			break;
		default:
			/* we serve nothing */
			break;
		}
	}
	return TRUE;
}

static void *
kmx_p11_watch_thread(void *data)
{
	KmxP11Watch *watch = data;

	pthread_setname_np(pthread_self(), "kmx-p11-watch");
	for (;;) {
		struct pollfd fds[2] = {{watch->wake_fd, POLLIN, 0}, {-1, POLLIN, 0}};
		int timeout = -1;
		gboolean connect_now = FALSE;
		guint64 drained;

		g_mutex_lock(&watch->mutex);
		if (watch->stopping) {
			g_mutex_unlock(&watch->mutex);
			break;
		}
		if (watch->conn != NULL) {
			fds[1].fd = kmx_p11_conn_get_fd(watch->conn);
		} else if (watch->want_connect) {
			connect_now = TRUE;
		} else if (watch->retry_at != 0) {
			gint64 wait = watch->retry_at - g_get_monotonic_time();
			connect_now = wait <= 0;
			timeout = (int)MAX((wait + 999) / 1000, 0);
		}
		watch->want_connect = FALSE;
		g_mutex_unlock(&watch->mutex);

		if (connect_now) {
			kmx_p11_watch_connect(watch);
			continue;
		}
		if (poll(fds, fds[1].fd >= 0 ? 2 : 1, timeout) < 0) {
			if (errno == EINTR)
				continue;
			g_warning("keymux: poll: %s", g_strerror(errno));
			break;
		}
		if (fds[0].revents != 0 && read(watch->wake_fd, &drained, sizeof drained) < 0 &&
		    errno != EAGAIN)
			g_debug("keymux: the watch's wake-up: %s", g_strerror(errno));
		if (fds[1].fd >= 0 && fds[1].revents != 0 && !kmx_p11_watch_read(watch, fds[1].fd))
			kmx_p11_watch_lost(watch);
	}
	return NULL;
}

KmxP11Watch *
kmx_p11_watch_new(KmxP11WatchFunc func, gpointer user_data, GError **error)
{
	g_autoptr(KmxP11Watch) watch = g_new0(KmxP11Watch, 1);
	sigset_t all, old;
	int rc;

	watch->refs = 1;
	watch->func = func;
	watch->user_data = user_data;
	g_mutex_init(&watch->mutex);
	g_cond_init(&watch->cond);
	watch->pending = g_hash_table_new(g_direct_hash, g_direct_equal);
	watch->in = g_byte_array_new();
	watch->retry_ms = KMX_P11_WATCH_RETRY_MIN_MS;
	watch->wake_fd = -1;
	/* found here, on the host's thread: finding it may start dbus-launch,
	 * which must not inherit the watch thread's blocked signals */
	watch->address = g_dbus_address_get_for_bus_sync(G_BUS_TYPE_SESSION, NULL, error);
	if (watch->address == NULL)
		return NULL;
	watch->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (watch->wake_fd < 0) {
		g_set_error(error,
			    G_IO_ERROR,
			    g_io_error_from_errno(errno),
			    "eventfd: %s",
			    g_strerror(errno));
		return NULL;
	}
	/* the host's signals are for the host's threads */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&watch->thread, NULL, kmx_p11_watch_thread, watch);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		g_set_error(error,
			    G_IO_ERROR,
			    g_io_error_from_errno(rc),
			    "cannot start a thread: %s",
			    g_strerror(rc));
		return NULL;
	}
	watch->thread_started = TRUE;
	return g_steal_pointer(&watch);
}

KmxP11Watch *
kmx_p11_watch_ref(KmxP11Watch *watch)
{
	g_atomic_int_inc(&watch->refs);
	return watch;
}

void
kmx_p11_watch_stop(KmxP11Watch *watch)
{
	KmxP11Conn *conn;

	g_mutex_lock(&watch->mutex);
	if (watch->stopping) {
		g_mutex_unlock(&watch->mutex);
		return;
	}
	watch->stopping = TRUE;
	g_cond_broadcast(&watch->cond);
	g_mutex_unlock(&watch->mutex);
	if (watch->thread_started) {
		kmx_p11_watch_wake(watch);
		pthread_join(watch->thread, NULL);
		watch->thread_started = FALSE;
	}
	g_mutex_lock(&watch->mutex);
	conn = g_steal_pointer(&watch->conn);
	g_mutex_unlock(&watch->mutex);
	kmx_p11_conn_free(conn);
}

void
kmx_p11_watch_unref(KmxP11Watch *watch)
{
	if (watch == NULL || !g_atomic_int_dec_and_test(&watch->refs))
		return;
	kmx_p11_watch_stop(watch);
	if (watch->wake_fd >= 0)
		close(watch->wake_fd);
	g_hash_table_unref(watch->pending);
	g_byte_array_unref(watch->in);
	g_free(watch->owner);
	g_free(watch->address);
	g_cond_clear(&watch->cond);
	g_mutex_clear(&watch->mutex);
	g_free(watch);
}

void
kmx_p11_watch_abandon(KmxP11Watch *watch)
{
	if (watch->wake_fd >= 0)
		close(watch->wake_fd);
	watch->wake_fd = -1;
	if (watch->conn != NULL)
		close(kmx_p11_conn_get_fd(watch->conn));
	/* the rest stays as the parent left it: its locks may be held by
	 * threads that are not here */
}

void
kmx_p11_watch_lock(KmxP11Watch *watch)
{
	g_mutex_lock(&watch->mutex);
}

void
kmx_p11_watch_unlock(KmxP11Watch *watch)
{
	g_mutex_unlock(&watch->mutex);
}

gboolean
kmx_p11_watch_sync(KmxP11Watch *watch)
{
	gint64 deadline = g_get_monotonic_time() + KMX_P11_TIMEOUT_SHORT * G_TIME_SPAN_SECOND;
	guint64 mark;
	guint32 serial = 0;
	guint generation;
	gboolean timed_out = FALSE, stopped;

	g_mutex_lock(&watch->mutex);
	mark = watch->sent;
	if (watch->conn == NULL && !watch->stopping) {
		guint attempts = watch->attempts;

		watch->want_connect = TRUE;
		kmx_p11_watch_wake(watch);
		while (watch->attempts == attempts && !watch->stopping)
			if (!g_cond_wait_until(&watch->cond, &watch->mutex, deadline))
				break;
	}
	generation = watch->generation;
	if (watch->conn != NULL && !watch->stopping) {
		if (watch->owner != NULL) {
			g_autoptr(GDBusMessage)
			    ping = kmx_p11_watch_message(KMX_NAME,
							 KMX_ROOT,
							 "org.freedesktop.DBus.Peer",
							 "Ping",
							 NULL,
							 FALSE);
			serial = kmx_p11_watch_send_locked(watch, ping, KMX_REQUEST_PING);
		} else if (watch->snapshots == 0 || watch->snapshot_sent <= mark) {
			/* no keymuxd known: read what there is, starting it if
			 * it can be (a snapshot asked for since this call began
			 * would do as well) */
			serial = kmx_p11_watch_request_snapshot_locked(watch, TRUE);
		}
		while (!watch->stopping && watch->generation == generation &&
		       (watch->snapshots > 0 ||
			(serial != 0 &&
			 g_hash_table_contains(watch->pending, GUINT_TO_POINTER(serial))))) {
			if (!g_cond_wait_until(&watch->cond, &watch->mutex, deadline)) {
				timed_out = TRUE;
				break;
			}
		}
	}
	if (timed_out) {
		/* keymuxd does not answer: as if gone (the thread says so when
		 * it sees the connection closed), and everything is read again
		 * on a new one next time */
		g_debug("keymux: keymuxd did not answer in %d s", KMX_P11_TIMEOUT_SHORT);
		if (watch->conn != NULL && watch->generation == generation)
			shutdown(kmx_p11_conn_get_fd(watch->conn), SHUT_RDWR);
		while (!watch->stopping && watch->generation == generation)
			g_cond_wait(&watch->cond, &watch->mutex);
	}
	stopped = watch->stopping;
	g_mutex_unlock(&watch->mutex);
	return !stopped;
}

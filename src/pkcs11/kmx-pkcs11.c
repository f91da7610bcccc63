/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libkeymux-pkcs11.so: keymux's devices as PKCS#11 v2.40 tokens (DESIGN §9)
 *
 * One slot per keymux device, its token present while the device is
 * available; per key a private and a public key object.  Everything the
 * module knows comes from keymuxd over D-Bus (kmx-p11-bus.c): the state is
 * kept from keymuxd's signals by a thread of the module's (kmx-p11-watch.c),
 * which also makes the slot events of C_WaitForSlotEvent, and brought up to
 * date with a round trip when a caller lists slots, opens a session, asks
 * for slot, token or session information or searches for objects, so a
 * device that comes, goes or unlocks is seen at once.  Nothing about login
 * is kept here: C_Login is Device.Unlock, C_Logout is Device.Lock.
 *
 * Threads: one mutex guards the tables and is never held across a D-Bus
 * call.  fork(): every entry point compares getpid() with the process that
 * called C_Initialize; a child gets CKR_CRYPTOKI_NOT_INITIALIZED until it
 * calls C_Initialize itself, which drops the parent's state and starts a
 * watch of its own.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "kmx-p11-bus.h"
#include "kmx-p11-object.h"
#include "kmx-p11-watch.h"

#include <limits.h>
#include <openssl/asn1.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define KMX_ROOT	 "/org/keymux/Keystore1"
#define KMX_DEVICE_IFACE "org.keymux.Keystore1.Device"
#define KMX_KEY_IFACE	 "org.keymux.Keystore1.Key"
#define KMX_ERROR_PREFIX "org.keymux.Keystore1.Error."
/* a message to sign without hashing, held until C_SignFinal */
#define KMX_P11_MAX_BUFFERED (1024u * 1024u)

#define KMX_P11_EXPORT __attribute__((visibility("default")))

G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_MD_CTX, EVP_MD_CTX_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ECDSA_SIG, ECDSA_SIG_free)

typedef struct {
	CK_SLOT_ID id;
	char *path;
	/* from the last refresh */
	gboolean listed;
	gboolean available;
	gboolean locked;
	gboolean protected_;
	gboolean has_secret;
	gint32 pin_retries;
	char *label;
	char *backend;
	char *device_id;
} KmxP11Slot;

typedef enum {
	KMX_OP_NONE,
	KMX_OP_SIGN,
	KMX_OP_DECRYPT,
} KmxOpKind;

typedef struct {
	KmxOpKind kind;
	guint serial;
	CK_MECHANISM_TYPE mechanism;
	KmxP11Key *key;
	const char *algorithm;
	gboolean prehashed;
	/* hashing mechanisms: the digest so far; others: the message */
	EVP_MD_CTX *md;
	GByteArray *buffer;
	/* the digest length a raw PSS signature needs */
	gsize digest_len;
	/* ECDSA: DER from keymuxd, r || s to the caller */
	gboolean raw_ecdsa;
	/* the result, kept while the caller's buffer is too small */
	guint8 *result;
	gsize result_len;
	gboolean updated;
} KmxP11Op;

typedef struct {
	CK_SESSION_HANDLE handle;
	CK_SLOT_ID slot;
	CK_FLAGS flags;
	GArray *found;
	guint found_pos;
	gboolean finding;
	KmxP11Op sign;
	KmxP11Op decrypt;
} KmxP11Session;

/* slot events not yet reported by C_WaitForSlotEvent */
typedef struct {
	pthread_cond_t cond; /* with lock: an event, or C_Finalize */
	GQueue queue;	     /* slot ids, each once */
	guint waiters;	     /* threads in C_WaitForSlotEvent */
	gboolean armed;	     /* what the first snapshot finds is no event */
} KmxP11Events;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static gboolean initialized;
static pid_t init_pid;
static KmxP11Watch *watch; /* keymuxd's signals; made at the first refresh */
static KmxP11Events *events;
/* C_GetSlotList with NULL: the list the next call with a buffer gives */
static GArray *slot_lists[2];
static GPtrArray *slots;	/* KmxP11Slot, index = id - 1 */
static GHashTable *sessions;	/* handle -> KmxP11Session */
static GHashTable *objects;	/* handle -> KmxP11Object */
static GHashTable *key_handles; /* "class:path" -> handle */
static CK_SESSION_HANDLE next_session;
static CK_OBJECT_HANDLE next_object;
static guint next_op_serial;

/* ---- state ---- */

static void
kmx_p11_slot_free(KmxP11Slot *slot)
{
	g_free(slot->path);
	g_free(slot->label);
	g_free(slot->backend);
	g_free(slot->device_id);
	g_free(slot);
}

static void
kmx_p11_op_clear(KmxP11Op *op)
{
	g_clear_pointer(&op->key, kmx_p11_key_unref);
	g_clear_pointer(&op->md, EVP_MD_CTX_free);
	if (op->buffer != NULL) {
		/* (an empty GByteArray may have no data at all) */
		if (op->buffer->len > 0)
			explicit_bzero(op->buffer->data, op->buffer->len);
		g_byte_array_unref(op->buffer);
	}
	if (op->result != NULL) {
		explicit_bzero(op->result, op->result_len);
		g_free(op->result);
	}
	memset(op, 0, sizeof *op);
}

static void
kmx_p11_session_free(KmxP11Session *session)
{
	kmx_p11_op_clear(&session->sign);
	kmx_p11_op_clear(&session->decrypt);
	g_clear_pointer(&session->found, g_array_unref);
	g_free(session);
}

static void
kmx_p11_state_free(void)
{
	g_clear_pointer(&slot_lists[0], g_array_unref);
	g_clear_pointer(&slot_lists[1], g_array_unref);
	g_clear_pointer(&sessions, g_hash_table_unref);
	g_clear_pointer(&objects, g_hash_table_unref);
	g_clear_pointer(&key_handles, g_hash_table_unref);
	g_clear_pointer(&slots, g_ptr_array_unref);
	kmx_p11_bus_reset();
}

static void
kmx_p11_state_new(void)
{
	slots = g_ptr_array_new_with_free_func((GDestroyNotify)kmx_p11_slot_free);
	sessions = g_hash_table_new_full(g_direct_hash,
					 g_direct_equal,
					 NULL,
					 (GDestroyNotify)kmx_p11_session_free);
	objects = g_hash_table_new_full(g_direct_hash,
					g_direct_equal,
					NULL,
					(GDestroyNotify)kmx_p11_object_free);
	key_handles = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	events = g_new0(KmxP11Events, 1);
	pthread_cond_init(&events->cond, NULL);
	g_queue_init(&events->queue);
	next_session = 1;
	next_object = 1;
	init_pid = getpid();
	initialized = TRUE;
}

/* the lock must be consistent in a child whatever another thread did */
static void
kmx_p11_atfork_prepare(void)
{
	pthread_mutex_lock(&lock);
	kmx_p11_bus_lock();
	if (watch != NULL)
		kmx_p11_watch_lock(watch);
}

static void
kmx_p11_atfork_release(void)
{
	if (watch != NULL)
		kmx_p11_watch_unlock(watch);
	kmx_p11_bus_unlock();
	pthread_mutex_unlock(&lock);
}

static gboolean
kmx_p11_ready(void)
{
	return initialized && init_pid == getpid();
}

/* ---- errors ---- */

static gboolean
kmx_p11_error_is_gone(const GError *error)
{
	g_autofree char *name = NULL;

	/* not a reply: the bus or keymuxd went away, or never answered */
	if (!g_dbus_error_is_remote_error(error))
		return !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
	name = g_dbus_error_get_remote_error(error);
	return name != NULL && (g_str_equal(name, "org.freedesktop.DBus.Error.ServiceUnknown") ||
				g_str_equal(name, "org.freedesktop.DBus.Error.NameHasNoOwner") ||
				g_str_equal(name, "org.freedesktop.DBus.Error.NoReply") ||
				g_str_equal(name, "org.freedesktop.DBus.Error.Disconnected") ||
				g_str_equal(name, "org.freedesktop.DBus.Error.Spawn.ChildExited") ||
				g_str_equal(name, "org.freedesktop.DBus.Error.Spawn.Failed"));
}

/* a keymux error as a CKR; @invalid for InvalidArgument, which depends on
 * the operation */
static CK_RV
kmx_p11_rv_from_error(const GError *error, CK_RV invalid)
{
	g_autofree char *name = NULL;
	const char *kmx;

	g_debug("keymux: %s", error->message);
	if (kmx_p11_error_is_gone(error))
		return CKR_DEVICE_REMOVED;
	if (!g_dbus_error_is_remote_error(error))
		return CKR_DEVICE_ERROR;
	name = g_dbus_error_get_remote_error(error);
	if (name == NULL || !g_str_has_prefix(name, KMX_ERROR_PREFIX)) {
		if (name != NULL && g_str_equal(name, "org.freedesktop.DBus.Error.UnknownObject"))
			return CKR_DEVICE_REMOVED;
		return CKR_FUNCTION_FAILED;
	}
	kmx = name + strlen(KMX_ERROR_PREFIX);
	if (g_str_equal(kmx, "Locked"))
		return CKR_USER_NOT_LOGGED_IN;
	if (g_str_equal(kmx, "BadSecret"))
		return CKR_PIN_INCORRECT;
	if (g_str_equal(kmx, "Blocked"))
		return CKR_PIN_LOCKED;
	if (g_str_equal(kmx, "Unavailable"))
		return CKR_DEVICE_REMOVED;
	if (g_str_equal(kmx, "NotFound"))
		return CKR_KEY_HANDLE_INVALID;
	if (g_str_equal(kmx, "NotSupported"))
		return CKR_KEY_FUNCTION_NOT_PERMITTED;
	if (g_str_equal(kmx, "InvalidArgument"))
		return invalid;
	if (g_str_equal(kmx, "Cancelled"))
		return CKR_FUNCTION_CANCELED;
	if (g_str_equal(kmx, "Denied"))
		return CKR_FUNCTION_REJECTED;
	return CKR_FUNCTION_FAILED;
}

/* ---- refresh: what keymuxd has now ---- */

static KmxP11Slot *
kmx_p11_slot_get(CK_SLOT_ID id)
{
	if (id == 0 || id > slots->len)
		return NULL;
	return g_ptr_array_index(slots, id - 1);
}

static KmxP11Slot *
kmx_p11_slot_for_path(const char *path)
{
	for (guint i = 0; i < slots->len; i++) {
		KmxP11Slot *slot = g_ptr_array_index(slots, i);
		if (g_str_equal(slot->path, path))
			return slot;
	}
	return NULL;
}

static gboolean
kmx_p11_slot_present(KmxP11Slot *slot)
{
	return slot != NULL && slot->listed && slot->available;
}

static void
kmx_p11_lookup_string(GVariant *props, const char *name, char **field)
{
	const char *value;

	if (g_variant_lookup(props, name, "&s", &value)) {
		g_free(*field);
		*field = g_strdup(value);
	}
}

/* a Device's properties: all of them (a new device, a snapshot) or those
 * that changed */
static void
kmx_p11_slot_update(const char *path, GVariant *props)
{
	KmxP11Slot *slot = kmx_p11_slot_for_path(path);
	g_autoptr(GVariant) details = NULL;
	gboolean had_secret;

	if (slot == NULL) {
		/* a new device: a new slot id, never one that was another's */
		slot = g_new0(KmxP11Slot, 1);
		slot->path = g_strdup(path);
		slot->label = g_strdup("");
		slot->backend = g_strdup("");
		slot->device_id = g_strdup(path);
		slot->pin_retries = -1;
		g_ptr_array_add(slots, slot);
		slot->id = slots->len;
	}
	had_secret = slot->has_secret;
	slot->listed = TRUE;
	kmx_p11_lookup_string(props, "Label", &slot->label);
	kmx_p11_lookup_string(props, "Backend", &slot->backend);
	kmx_p11_lookup_string(props, "Id", &slot->device_id);
	g_variant_lookup(props, "Available", "b", &slot->available);
	g_variant_lookup(props, "Locked", "b", &slot->locked);
	g_variant_lookup(props, "PinRetries", "i", &slot->pin_retries);
	details = g_variant_lookup_value(props, "Details", G_VARIANT_TYPE_VARDICT);
	if (details != NULL && !g_variant_lookup(details, "protected", "b", &slot->protected_))
		slot->protected_ = FALSE;
	slot->has_secret = slot->protected_ || slot->locked || slot->pin_retries >= 0;
	if (slot->has_secret != had_secret) {
		GHashTableIter iter;
		gpointer value;

		g_hash_table_iter_init(&iter, objects);
		while (g_hash_table_iter_next(&iter, NULL, &value)) {
			KmxP11Object *obj = value;
			if (obj->key != NULL && obj->slot == slot->id)
				obj->needs_login = slot->has_secret;
		}
	}
}

/* FALSE: its device has no slot (yet) */
static gboolean
kmx_p11_key_update(const char *path, GVariant *props)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KmxP11Key) key = kmx_p11_key_new(path, props, &error);
	KmxP11Slot *slot;
	CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY};

	if (key == NULL) {
		g_debug("keymux: %s", error->message);
		return TRUE;
	}
	slot = kmx_p11_slot_for_path(key->device);
	if (slot == NULL)
		return FALSE;
	for (guint i = 0; i < G_N_ELEMENTS(classes); i++) {
		g_autofree char *name = g_strdup_printf("%lu:%s", classes[i], path);
		CK_OBJECT_HANDLE handle = GPOINTER_TO_SIZE(g_hash_table_lookup(key_handles, name));
		KmxP11Object *obj =
		    handle != 0 ? g_hash_table_lookup(objects, GSIZE_TO_POINTER(handle)) : NULL;

		if (obj == NULL) {
			obj = g_new0(KmxP11Object, 1);
			obj->handle = next_object++;
			obj->klass = classes[i];
			obj->slot = slot->id;
			g_hash_table_insert(objects, GSIZE_TO_POINTER(obj->handle), obj);
			g_hash_table_insert(key_handles,
					    g_steal_pointer(&name),
					    GSIZE_TO_POINTER(obj->handle));
		}
		kmx_p11_key_unref(obj->key);
		obj->key = g_atomic_rc_box_acquire(key);
		obj->needs_login = slot->has_secret;
		obj->seen = TRUE;
	}
	return TRUE;
}

/* a deleted key: its handles are invalid from now on */
static void
kmx_p11_key_drop(const char *path)
{
	CK_OBJECT_CLASS classes[] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY};

	for (guint i = 0; i < G_N_ELEMENTS(classes); i++) {
		g_autofree char *name = g_strdup_printf("%lu:%s", classes[i], path);
		gpointer handle = g_hash_table_lookup(key_handles, name);

		if (handle != NULL) {
			g_hash_table_remove(objects, handle);
			g_hash_table_remove(key_handles, name);
		}
	}
}

/* a snapshot: GetManagedObjects' reply (NULL: keymuxd is gone); with the lock */
static void
kmx_p11_apply(GVariant *reply)
{
	g_autoptr(GVariant) managed = NULL;
	GVariantIter iter;
	const char *path;
	GVariant *ifaces;
	GHashTableIter hiter;
	gpointer value;

	for (guint i = 0; i < slots->len; i++)
		((KmxP11Slot *)g_ptr_array_index(slots, i))->listed = FALSE;
	if (reply == NULL)
		return; /* the key objects stay: their use fails until it is back */
	managed = g_variant_get_child_value(reply, 0);
	g_variant_iter_init(&iter, managed);
	while (g_variant_iter_loop(&iter, "{&o@a{sa{sv}}}", &path, &ifaces)) {
		g_autoptr(GVariant) props =
		    g_variant_lookup_value(ifaces, KMX_DEVICE_IFACE, G_VARIANT_TYPE_VARDICT);
		if (props != NULL)
			kmx_p11_slot_update(path, props);
	}
	g_hash_table_iter_init(&hiter, objects);
	while (g_hash_table_iter_next(&hiter, NULL, &value))
		((KmxP11Object *)value)->seen = FALSE;
	g_variant_iter_init(&iter, managed);
	while (g_variant_iter_loop(&iter, "{&o@a{sa{sv}}}", &path, &ifaces)) {
		g_autoptr(GVariant)
		    props = g_variant_lookup_value(ifaces, KMX_KEY_IFACE, G_VARIANT_TYPE_VARDICT);
		if (props != NULL)
			kmx_p11_key_update(path, props);
	}
	/* deleted keys: their handles are invalid from now on */
	g_hash_table_iter_init(&hiter, objects);
	while (g_hash_table_iter_next(&hiter, NULL, &value)) {
		KmxP11Object *obj = value;
		if (obj->key != NULL && !obj->seen) {
			g_autofree char *name =
			    g_strdup_printf("%lu:%s", obj->klass, obj->key->path);
			g_hash_table_remove(key_handles, name);
			g_hash_table_iter_remove(&hiter);
		}
	}
}

/* InterfacesAdded: a device or a key; FALSE: read everything again */
static gboolean
kmx_p11_object_added(const char *path, GVariant *body)
{
	g_autoptr(GVariant) ifaces = g_variant_get_child_value(body, 1);
	g_autoptr(GVariant)
	    device = g_variant_lookup_value(ifaces, KMX_DEVICE_IFACE, G_VARIANT_TYPE_VARDICT);
	g_autoptr(GVariant)
	    key = g_variant_lookup_value(ifaces, KMX_KEY_IFACE, G_VARIANT_TYPE_VARDICT);

	if (device != NULL)
		kmx_p11_slot_update(path, device);
	if (key != NULL)
		return kmx_p11_key_update(path, key);
	return TRUE;
}

/* InterfacesRemoved: a key deleted, a device gone (its keys went first) */
static void
kmx_p11_object_removed(const char *path, GVariant *body)
{
	g_autofree const char **ifaces = NULL;
	KmxP11Slot *slot;

	g_variant_get_child(body, 1, "^a&s", &ifaces);
	if (g_strv_contains(ifaces, KMX_KEY_IFACE))
		kmx_p11_key_drop(path);
	slot = kmx_p11_slot_for_path(path);
	if (slot != NULL && g_strv_contains(ifaces, KMX_DEVICE_IFACE))
		slot->listed = FALSE;
}

/* PropertiesChanged; FALSE: read everything again */
static gboolean
kmx_p11_object_changed(const char *path, GVariant *body)
{
	const char *iface;
	g_autoptr(GVariant) changed = NULL;
	g_autoptr(GVariant) invalidated = NULL;
	KmxP11Slot *slot;

	g_variant_get(body, "(&s@a{sv}@as)", &iface, &changed, &invalidated);
	if (g_variant_n_children(invalidated) > 0)
		return FALSE;
	if (g_str_equal(iface, KMX_DEVICE_IFACE)) {
		slot = kmx_p11_slot_for_path(path);
		if (slot == NULL || !slot->listed)
			return FALSE;
		kmx_p11_slot_update(path, changed);
		return TRUE;
	}
	if (!g_str_equal(iface, KMX_KEY_IFACE))
		return TRUE;
	/* a key's Locked and Available are its device's; anything else (a
	 * new label) is read again with the rest: it is rare */
	for (gsize i = 0; i < g_variant_n_children(changed); i++) {
		g_autoptr(GVariant) entry = g_variant_get_child_value(changed, i);
		g_autoptr(GVariant) name = g_variant_get_child_value(entry, 0);
		const char *n = g_variant_get_string(name, NULL);

		if (!g_str_equal(n, "Locked") && !g_str_equal(n, "Available"))
			return FALSE;
	}
	return TRUE;
}

/* which slots have a token now */
static GArray *
kmx_p11_presence(void)
{
	GArray *present = g_array_sized_new(FALSE, FALSE, sizeof(gboolean), slots->len);

	for (guint i = 0; i < slots->len; i++) {
		gboolean yes = kmx_p11_slot_present(g_ptr_array_index(slots, i));
		g_array_append_val(present, yes);
	}
	return present;
}

/* a slot whose token came or went since @before is an event */
static void
kmx_p11_note_events(GArray *before)
{
	for (guint i = 0; i < slots->len; i++) {
		KmxP11Slot *slot = g_ptr_array_index(slots, i);
		gboolean was = i < before->len && g_array_index(before, gboolean, i);
		gpointer id = GSIZE_TO_POINTER(slot->id);

		if (!events->armed || was == kmx_p11_slot_present(slot) ||
		    g_queue_find(&events->queue, id) != NULL)
			continue;
		g_queue_push_tail(&events->queue, id);
		pthread_cond_broadcast(&events->cond);
	}
}

/* what keymuxd says, on the watch's thread */
static gboolean
kmx_p11_watch_changed(KmxP11Watch *from,
		      KmxP11WatchEvent event,
		      const char *path,
		      GVariant *body,
		      gpointer user_data)
{
	g_autoptr(GArray) before = NULL;
	gboolean applied = TRUE;

	pthread_mutex_lock(&lock);
	/* a watch of before C_Finalize has nothing to say */
	if (!kmx_p11_ready() || from != watch) {
		pthread_mutex_unlock(&lock);
		return TRUE;
	}
	before = kmx_p11_presence();
	switch (event) {
	case KMX_P11_WATCH_SNAPSHOT:
		kmx_p11_apply(body);
		break;
	case KMX_P11_WATCH_ADDED:
		applied = kmx_p11_object_added(path, body);
		break;
	case KMX_P11_WATCH_REMOVED:
		kmx_p11_object_removed(path, body);
		break;
	case KMX_P11_WATCH_CHANGED:
		applied = kmx_p11_object_changed(path, body);
		break;
	}
	kmx_p11_note_events(before);
	if (event == KMX_P11_WATCH_SNAPSHOT)
		events->armed = TRUE;
	pthread_mutex_unlock(&lock);
	return applied;
}

/*
 * refresh: what keymuxd has now.  The state is kept from keymuxd's signals
 * (kmx-p11-watch.c); this makes sure that everything it said before this
 * call is in it.  Takes and releases the lock; FALSE if C_Finalize came
 * between.
 */
static gboolean
kmx_p11_refresh(void)
{
	g_autoptr(KmxP11Watch) current = NULL;
	gboolean ok;

	pthread_mutex_lock(&lock);
	if (!kmx_p11_ready()) {
		pthread_mutex_unlock(&lock);
		return FALSE;
	}
	if (watch == NULL) {
		g_autoptr(GError) error = NULL;

		watch = kmx_p11_watch_new(kmx_p11_watch_changed, NULL, &error);
		if (watch == NULL) {
			/* no bus: nothing there, and asked again next time */
			g_debug("keymux: %s", error->message);
			kmx_p11_apply(NULL);
			events->armed = TRUE;
			pthread_mutex_unlock(&lock);
			return TRUE;
		}
	}
	current = kmx_p11_watch_ref(watch);
	pthread_mutex_unlock(&lock);
	if (!kmx_p11_watch_sync(current))
		return FALSE;
	pthread_mutex_lock(&lock);
	ok = kmx_p11_ready();
	pthread_mutex_unlock(&lock);
	return ok;
}

/* lock and check; every entry point that needs a session uses these */
#define KMX_LOCK_OR_RETURN()                                                                       \
	G_STMT_START                                                                               \
	{                                                                                          \
		pthread_mutex_lock(&lock);                                                         \
		if (!kmx_p11_ready()) {                                                            \
			pthread_mutex_unlock(&lock);                                               \
			return CKR_CRYPTOKI_NOT_INITIALIZED;                                       \
		}                                                                                  \
	}                                                                                          \
	G_STMT_END

#define KMX_UNLOCK_RETURN(rv)                                                                      \
	G_STMT_START                                                                               \
	{                                                                                          \
		CK_RV kmx_rv_ = (rv);                                                              \
		pthread_mutex_unlock(&lock);                                                       \
		return kmx_rv_;                                                                    \
	}                                                                                          \
	G_STMT_END

static KmxP11Session *
kmx_p11_session_get(CK_SESSION_HANDLE handle)
{
	return g_hash_table_lookup(sessions, GSIZE_TO_POINTER(handle));
}

/* ---- general ---- */

static CK_FUNCTION_LIST kmx_p11_functions;

static CK_RV
kmx_C_Initialize(CK_VOID_PTR init_args)
{
	static gboolean atfork_done;
	CK_C_INITIALIZE_ARGS *args = init_args;

	if (args != NULL) {
		gboolean any = args->CreateMutex || args->DestroyMutex || args->LockMutex ||
			       args->UnlockMutex;
		gboolean all = args->CreateMutex && args->DestroyMutex && args->LockMutex &&
			       args->UnlockMutex;
		if (args->pReserved != NULL || (any && !all))
			return CKR_ARGUMENTS_BAD;
		/* with the caller's mutexes only: we have no others to offer */
		if (any && !(args->flags & CKF_OS_LOCKING_OK))
			return CKR_CANT_LOCK;
	}
	pthread_mutex_lock(&lock);
	if (!atfork_done) {
		pthread_atfork(kmx_p11_atfork_prepare,
			       kmx_p11_atfork_release,
			       kmx_p11_atfork_release);
		atfork_done = TRUE;
	}
	if (initialized && init_pid == getpid())
		KMX_UNLOCK_RETURN(CKR_CRYPTOKI_ALREADY_INITIALIZED);
	/* a fork()ed child: the parent's sessions are not ours, nor its
	 * thread; what its other threads may hold is left alone */
	if (initialized) {
		if (watch != NULL)
			kmx_p11_watch_abandon(watch);
		watch = NULL;
		events = NULL;
		kmx_p11_state_free();
	}
	kmx_p11_state_new();
	KMX_UNLOCK_RETURN(CKR_OK);
}

static CK_RV
kmx_C_Finalize(CK_VOID_PTR reserved)
{
	g_autoptr(KmxP11Watch) old_watch = NULL;
	KmxP11Events *old_events;

	if (reserved != NULL)
		return CKR_ARGUMENTS_BAD;
	KMX_LOCK_OR_RETURN();
	initialized = FALSE;
	old_watch = g_steal_pointer(&watch);
	old_events = g_steal_pointer(&events);
	/* threads in C_WaitForSlotEvent return CKR_CRYPTOKI_NOT_INITIALIZED:
	 * wake them and wait until they have left */
	pthread_cond_broadcast(&old_events->cond);
	while (old_events->waiters > 0)
		pthread_cond_wait(&old_events->cond, &lock);
	kmx_p11_state_free();
	pthread_mutex_unlock(&lock);
	pthread_cond_destroy(&old_events->cond);
	g_queue_clear(&old_events->queue);
	g_free(old_events);
	/* its thread may be waiting for the lock: stopped without it */
	if (old_watch != NULL)
		kmx_p11_watch_stop(old_watch);
	return CKR_OK;
}

static CK_RV
kmx_C_GetInfo(CK_INFO_PTR info)
{
	if (info == NULL)
		return CKR_ARGUMENTS_BAD;
	KMX_LOCK_OR_RETURN();
	memset(info, 0, sizeof *info);
	info->cryptokiVersion.major = CRYPTOKI_VERSION_MAJOR;
	info->cryptokiVersion.minor = CRYPTOKI_VERSION_MINOR;
	kmx_p11_pad(info->manufacturerID, sizeof info->manufacturerID, "keymux");
	kmx_p11_pad(info->libraryDescription,
		    sizeof info->libraryDescription,
		    "keymux keys through keymuxd");
	info->libraryVersion.major = 0;
	info->libraryVersion.minor = 1;
	KMX_UNLOCK_RETURN(CKR_OK);
}

KMX_P11_EXPORT CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	if (list == NULL)
		return CKR_ARGUMENTS_BAD;
	*list = &kmx_p11_functions;
	return CKR_OK;
}

/* ---- slots and tokens ---- */

static CK_RV
kmx_C_GetSlotList(CK_BBOOL token_present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
	g_autoptr(GArray) ids = NULL;
	guint which = token_present ? 1 : 0;
	CK_RV rv = CKR_OK;

	if (count == NULL)
		return CKR_ARGUMENTS_BAD;
	/* a buffer after a size query: the list that query counted (PKCS#11
	 * v2.40 5.5), so that a card coming in between does not make the
	 * caller's buffer too small */
	KMX_LOCK_OR_RETURN();
	if (list != NULL)
		ids = g_steal_pointer(&slot_lists[which]);
	pthread_mutex_unlock(&lock);
	if (ids == NULL && !kmx_p11_refresh())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	KMX_LOCK_OR_RETURN();
	if (ids == NULL) {
		ids = g_array_new(FALSE, FALSE, sizeof(CK_SLOT_ID));
		for (guint i = 0; i < slots->len; i++) {
			KmxP11Slot *slot = g_ptr_array_index(slots, i);
			if (slot->listed && (!token_present || slot->available))
				g_array_append_val(ids, slot->id);
		}
	}
	if (list == NULL || *count < ids->len) {
		/* for the call with a buffer (again) */
		g_clear_pointer(&slot_lists[which], g_array_unref);
		slot_lists[which] = g_array_ref(ids);
		if (list != NULL)
			rv = CKR_BUFFER_TOO_SMALL;
	} else {
		memcpy(list, ids->data, ids->len * sizeof(CK_SLOT_ID));
	}
	*count = ids->len;
	KMX_UNLOCK_RETURN(rv);
}

static CK_RV
kmx_C_GetSlotInfo(CK_SLOT_ID id, CK_SLOT_INFO_PTR info)
{
	KmxP11Slot *slot;
	g_autofree char *description = NULL;

	if (info == NULL)
		return CKR_ARGUMENTS_BAD;
	if (!kmx_p11_ready())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	if (!kmx_p11_refresh())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	KMX_LOCK_OR_RETURN();
	slot = kmx_p11_slot_get(id);
	if (slot == NULL)
		KMX_UNLOCK_RETURN(CKR_SLOT_ID_INVALID);
	memset(info, 0, sizeof *info);
	description = g_strdup_printf("keymux %s", slot->device_id);
	kmx_p11_pad(info->slotDescription, sizeof info->slotDescription, description);
	kmx_p11_pad(info->manufacturerID, sizeof info->manufacturerID, "keymux");
	info->flags = CKF_REMOVABLE_DEVICE | (kmx_p11_slot_present(slot) ? CKF_TOKEN_PRESENT : 0);
	KMX_UNLOCK_RETURN(CKR_OK);
}

static CK_RV
kmx_C_GetTokenInfo(CK_SLOT_ID id, CK_TOKEN_INFO_PTR info)
{
	KmxP11Slot *slot;
	g_autofree char *serial = NULL;

	if (info == NULL)
		return CKR_ARGUMENTS_BAD;
	if (!kmx_p11_ready())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	if (!kmx_p11_refresh())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	KMX_LOCK_OR_RETURN();
	slot = kmx_p11_slot_get(id);
	if (slot == NULL)
		KMX_UNLOCK_RETURN(CKR_SLOT_ID_INVALID);
	if (!kmx_p11_slot_present(slot))
		KMX_UNLOCK_RETURN(CKR_TOKEN_NOT_PRESENT);
	memset(info, 0, sizeof *info);
	kmx_p11_pad(info->label, sizeof info->label, slot->label);
	kmx_p11_pad(info->manufacturerID, sizeof info->manufacturerID, "keymux");
	kmx_p11_pad(info->model, sizeof info->model, slot->backend);
	/* stable for a device: its id's digest */
	serial = g_compute_checksum_for_string(G_CHECKSUM_SHA256, slot->device_id, -1);
	kmx_p11_pad(info->serialNumber, sizeof info->serialNumber, serial);
	info->flags = CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED;
	if (slot->has_secret)
		info->flags |= CKF_LOGIN_REQUIRED | CKF_PROTECTED_AUTHENTICATION_PATH;
	if (slot->pin_retries == 1)
		info->flags |= CKF_USER_PIN_FINAL_TRY;
	else if (slot->pin_retries == 0)
		info->flags |= CKF_USER_PIN_LOCKED;
	info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
	info->ulSessionCount = CK_UNAVAILABLE_INFORMATION;
	info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
	info->ulRwSessionCount = CK_UNAVAILABLE_INFORMATION;
	info->ulMaxPinLen = 256;
	info->ulMinPinLen = 0;
	info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
	memset(info->utcTime, ' ', sizeof info->utcTime);
	KMX_UNLOCK_RETURN(CKR_OK);
}

/*
 * An event is a slot whose token came or went (a device became available or
 * not, was added or removed, keymuxd left or came back) since it was last
 * reported; each slot is reported once however often it changed, in the
 * order the first changes came.
 */
static CK_RV
kmx_C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved)
{
	KmxP11Events *mine;
	CK_RV rv;

	if (slot == NULL || reserved != NULL)
		return CKR_ARGUMENTS_BAD;
	if (!kmx_p11_ready())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	/* what happened before this call is known before it answers */
	if (!kmx_p11_refresh())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	KMX_LOCK_OR_RETURN();
	mine = events;
	mine->waiters++;
	for (;;) {
		if (!kmx_p11_ready() || events != mine) {
			rv = CKR_CRYPTOKI_NOT_INITIALIZED;
			break;
		}
		if (!g_queue_is_empty(&mine->queue)) {
			*slot = GPOINTER_TO_SIZE(g_queue_pop_head(&mine->queue));
			rv = CKR_OK;
			break;
		}
		if (flags & CKF_DONT_BLOCK) {
			rv = CKR_NO_EVENT;
			break;
		}
		pthread_cond_wait(&mine->cond, &lock);
	}
	/* C_Finalize waits for the last one */
	if (--mine->waiters == 0)
		pthread_cond_broadcast(&mine->cond);
	KMX_UNLOCK_RETURN(rv);
}

/* ---- mechanisms ---- */

typedef struct {
	CK_MECHANISM_TYPE type;
	CK_KEY_TYPE key_type;
	CK_FLAGS flags;
	const char *sign;    /* keymux's sign algorithm */
	const char *decrypt; /* keymux's decrypt algorithm */
	const char *hash;    /* hashed here, sent "prehashed" */
} KmxP11Mechanism;

static const KmxP11Mechanism mechanisms[] = {
    {CKM_RSA_PKCS, CKK_RSA, CKF_SIGN | CKF_DECRYPT, "rsa-pkcs1", "rsa-pkcs1", NULL},
    {CKM_SHA256_RSA_PKCS, CKK_RSA, CKF_SIGN, "rsa-pkcs1-sha256", NULL, "SHA256"},
    {CKM_SHA384_RSA_PKCS, CKK_RSA, CKF_SIGN, "rsa-pkcs1-sha384", NULL, "SHA384"},
    {CKM_SHA512_RSA_PKCS, CKK_RSA, CKF_SIGN, "rsa-pkcs1-sha512", NULL, "SHA512"},
    /* the algorithm follows the parameters' hash */
    {CKM_RSA_PKCS_PSS, CKK_RSA, CKF_SIGN, "rsa-pss", NULL, NULL},
    {CKM_SHA256_RSA_PKCS_PSS, CKK_RSA, CKF_SIGN, "rsa-pss-sha256", NULL, "SHA256"},
    {CKM_SHA384_RSA_PKCS_PSS, CKK_RSA, CKF_SIGN, "rsa-pss-sha384", NULL, "SHA384"},
    {CKM_SHA512_RSA_PKCS_PSS, CKK_RSA, CKF_SIGN, "rsa-pss-sha512", NULL, "SHA512"},
    {CKM_RSA_PKCS_OAEP, CKK_RSA, CKF_DECRYPT, NULL, "rsa-oaep-sha256", NULL},
    {CKM_ECDSA, CKK_EC, CKF_SIGN, "ecdsa", NULL, NULL},
    {CKM_ECDSA_SHA256, CKK_EC, CKF_SIGN, "ecdsa-sha256", NULL, "SHA256"},
    {CKM_ECDSA_SHA384, CKK_EC, CKF_SIGN, "ecdsa-sha384", NULL, "SHA384"},
    {CKM_ECDH1_DERIVE, CKK_EC, CKF_DERIVE, NULL, NULL, NULL},
    {CKM_EDDSA, CKK_EC_EDWARDS, CKF_SIGN, "ed25519", NULL, NULL},
    /* offered on the slots whose device makes keys of the type */
    {CKM_RSA_PKCS_KEY_PAIR_GEN, CKK_RSA, CKF_GENERATE_KEY_PAIR, NULL, NULL, NULL},
    {CKM_EC_KEY_PAIR_GEN, CKK_EC, CKF_GENERATE_KEY_PAIR, NULL, NULL, NULL},
    {CKM_EC_EDWARDS_KEY_PAIR_GEN, CKK_EC_EDWARDS, CKF_GENERATE_KEY_PAIR, NULL, NULL, NULL},
};

/*
 * The keys Device.GenerateKey makes, by backend.  DESIGN §4 has no property
 * that says so: this follows the backends.  A card is left out on purpose:
 * its new key takes a slot (sig, dec, aut), may replace the key there and
 * wants the admin PIN, none of which C_GenerateKeyPair can say; cards get
 * their keys with keymuxctl.  X25519 has no PKCS#11 v2.40 key type.
 */
typedef struct {
	const char *backend;
	const char *algorithms[7];
} KmxP11Maker;

static const KmxP11Maker makers[] = {
    {"softkey", {"rsa2048", "rsa3072", "rsa4096", "ecdsa-p256", "ecdsa-p384", "ed25519", NULL}},
    {"tpm", {"rsa2048", "rsa3072", "ecdsa-p256", "ecdsa-p384", NULL}},
};

/* whether @slot's device makes @algorithm keys (NULL: any key of @key_type) */
static gboolean
kmx_p11_slot_makes(KmxP11Slot *slot, const char *algorithm, CK_KEY_TYPE key_type)
{
	static const struct {
		const char *prefix;
		CK_KEY_TYPE key_type;
	} families[] = {{"rsa", CKK_RSA}, {"ecdsa-", CKK_EC}, {"ed25519", CKK_EC_EDWARDS}};

	for (guint i = 0; i < G_N_ELEMENTS(makers); i++) {
		if (g_strcmp0(slot->backend, makers[i].backend) != 0)
			continue;
		for (const char *const *a = makers[i].algorithms; *a != NULL; a++) {
			if (algorithm != NULL) {
				if (g_str_equal(*a, algorithm))
					return TRUE;
				continue;
			}
			for (guint f = 0; f < G_N_ELEMENTS(families); f++)
				if (families[f].key_type == key_type &&
				    g_str_has_prefix(*a, families[f].prefix))
					return TRUE;
		}
	}
	return FALSE;
}

/* whether @slot offers @mech: generating only where the device can */
static gboolean
kmx_p11_slot_offers(KmxP11Slot *slot, const KmxP11Mechanism *mech)
{
	if (!(mech->flags & CKF_GENERATE_KEY_PAIR))
		return TRUE;
	return kmx_p11_slot_makes(slot, NULL, mech->key_type);
}

static const KmxP11Mechanism *
kmx_p11_mechanism(CK_MECHANISM_TYPE type)
{
	for (guint i = 0; i < G_N_ELEMENTS(mechanisms); i++)
		if (mechanisms[i].type == type)
			return &mechanisms[i];
	return NULL;
}

static CK_RV
kmx_C_GetMechanismList(CK_SLOT_ID id, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
	CK_MECHANISM_TYPE offered[G_N_ELEMENTS(mechanisms)];
	CK_ULONG n = 0;
	KmxP11Slot *slot;
	CK_RV rv = CKR_OK;

	if (count == NULL)
		return CKR_ARGUMENTS_BAD;
	KMX_LOCK_OR_RETURN();
	slot = kmx_p11_slot_get(id);
	if (slot == NULL)
		KMX_UNLOCK_RETURN(CKR_SLOT_ID_INVALID);
	for (guint i = 0; i < G_N_ELEMENTS(mechanisms); i++)
		if (kmx_p11_slot_offers(slot, &mechanisms[i]))
			offered[n++] = mechanisms[i].type;
	if (list != NULL) {
		if (*count < n)
			rv = CKR_BUFFER_TOO_SMALL;
		else
			memcpy(list, offered, n * sizeof offered[0]);
	}
	*count = n;
	KMX_UNLOCK_RETURN(rv);
}

static CK_RV
kmx_C_GetMechanismInfo(CK_SLOT_ID id, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info)
{
	const KmxP11Mechanism *mech = kmx_p11_mechanism(type);
	KmxP11Slot *slot;

	if (info == NULL)
		return CKR_ARGUMENTS_BAD;
	KMX_LOCK_OR_RETURN();
	slot = kmx_p11_slot_get(id);
	if (slot == NULL)
		KMX_UNLOCK_RETURN(CKR_SLOT_ID_INVALID);
	if (mech == NULL || !kmx_p11_slot_offers(slot, mech))
		KMX_UNLOCK_RETURN(CKR_MECHANISM_INVALID);
	/* done by another party, keymuxd: pkcs11-tool --test wants CKF_HW */
	info->flags = mech->flags | CKF_HW;
	switch (mech->key_type) {
	case CKK_RSA:
		info->ulMinKeySize = 2048;
		info->ulMaxKeySize = 4096;
		/* a TPM 2.0 makes no 4096-bit keys */
		if ((mech->flags & CKF_GENERATE_KEY_PAIR) &&
		    !kmx_p11_slot_makes(slot, "rsa4096", 0))
			info->ulMaxKeySize = 3072;
		break;
	case CKK_EC:
		info->ulMinKeySize = 256;
		info->ulMaxKeySize = 384;
		info->flags |= CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
		break;
	default:
		info->ulMinKeySize = 255;
		info->ulMaxKeySize = 255;
		break;
	}
	KMX_UNLOCK_RETURN(CKR_OK);
}

/* ---- sessions and login ---- */

static CK_RV
kmx_C_OpenSession(CK_SLOT_ID id,
		  CK_FLAGS flags,
		  CK_VOID_PTR application,
		  CK_NOTIFY notify,
		  CK_SESSION_HANDLE_PTR handle)
{
	KmxP11Slot *slot;
	KmxP11Session *session;

	if (handle == NULL)
		return CKR_ARGUMENTS_BAD;
	if (!(flags & CKF_SERIAL_SESSION))
		return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
	if (!kmx_p11_ready())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	if (!kmx_p11_refresh())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	KMX_LOCK_OR_RETURN();
	slot = kmx_p11_slot_get(id);
	if (slot == NULL)
		KMX_UNLOCK_RETURN(CKR_SLOT_ID_INVALID);
	if (!kmx_p11_slot_present(slot))
		KMX_UNLOCK_RETURN(CKR_TOKEN_NOT_PRESENT);
	session = g_new0(KmxP11Session, 1);
	session->handle = next_session++;
	session->slot = id;
	session->flags = flags;
	g_hash_table_insert(sessions, GSIZE_TO_POINTER(session->handle), session);
	*handle = session->handle;
	KMX_UNLOCK_RETURN(CKR_OK);
}

/* the session objects (derived keys) of a session go with it */
static void
kmx_p11_drop_session_objects(CK_SESSION_HANDLE handle)
{
	GHashTableIter iter;
	gpointer value;

	g_hash_table_iter_init(&iter, objects);
	while (g_hash_table_iter_next(&iter, NULL, &value))
		if (((KmxP11Object *)value)->session == handle)
			g_hash_table_iter_remove(&iter);
}

static CK_RV
kmx_C_CloseSession(CK_SESSION_HANDLE handle)
{
	KMX_LOCK_OR_RETURN();
	if (!g_hash_table_remove(sessions, GSIZE_TO_POINTER(handle)))
		KMX_UNLOCK_RETURN(CKR_SESSION_HANDLE_INVALID);
	kmx_p11_drop_session_objects(handle);
	KMX_UNLOCK_RETURN(CKR_OK);
}

static CK_RV
kmx_C_CloseAllSessions(CK_SLOT_ID id)
{
	GHashTableIter iter;
	gpointer value;

	KMX_LOCK_OR_RETURN();
	if (kmx_p11_slot_get(id) == NULL)
		KMX_UNLOCK_RETURN(CKR_SLOT_ID_INVALID);
	g_hash_table_iter_init(&iter, sessions);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		KmxP11Session *session = value;
		if (session->slot == id) {
			kmx_p11_drop_session_objects(session->handle);
			g_hash_table_iter_remove(&iter);
		}
	}
	KMX_UNLOCK_RETURN(CKR_OK);
}

static CK_RV
kmx_C_GetSessionInfo(CK_SESSION_HANDLE handle, CK_SESSION_INFO_PTR info)
{
	KmxP11Session *session;
	KmxP11Slot *slot;
	gboolean rw;

	if (info == NULL)
		return CKR_ARGUMENTS_BAD;
	if (!kmx_p11_ready())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	if (!kmx_p11_refresh())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	KMX_LOCK_OR_RETURN();
	session = kmx_p11_session_get(handle);
	if (session == NULL)
		KMX_UNLOCK_RETURN(CKR_SESSION_HANDLE_INVALID);
	slot = kmx_p11_slot_get(session->slot);
	rw = (session->flags & CKF_RW_SESSION) != 0;
	info->slotID = session->slot;
	info->flags = session->flags;
	info->ulDeviceError = 0;
	if (slot->locked)
		info->state = rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION;
	else
		info->state = rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS;
	KMX_UNLOCK_RETURN(CKR_OK);
}

/* the device path of a session's slot, for a call without the lock */
static CK_RV
kmx_p11_session_device(CK_SESSION_HANDLE handle, char **path, gboolean *locked)
{
	KmxP11Session *session;
	KmxP11Slot *slot;

	KMX_LOCK_OR_RETURN();
	session = kmx_p11_session_get(handle);
	if (session == NULL)
		KMX_UNLOCK_RETURN(CKR_SESSION_HANDLE_INVALID);
	slot = kmx_p11_slot_get(session->slot);
	*path = g_strdup(slot->path);
	if (locked != NULL)
		*locked = slot->locked;
	KMX_UNLOCK_RETURN(CKR_OK);
}

static void
kmx_p11_wipe_string(gpointer data)
{
	explicit_bzero(data, strlen(data));
	g_free(data);
}

/* a PIN as a D-Bus string whose memory is wiped when the call is done (the
 * caller has checked: UTF-8, no NUL) */
static GVariant *
kmx_p11_pin_variant(CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	char *copy = g_malloc(len + 1);
	g_autoptr(GBytes) bytes = NULL;

	if (len > 0)
		memcpy(copy, pin, len);
	copy[len] = '\0';
	bytes = g_bytes_new_with_free_func(copy, len + 1, kmx_p11_wipe_string, copy);
	return g_variant_new_from_bytes(G_VARIANT_TYPE_STRING, bytes, TRUE);
}

static CK_RV
kmx_C_Login(CK_SESSION_HANDLE handle, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len)
{
	g_autofree char *path = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = NULL;
	gboolean locked = TRUE;
	CK_RV rv;

	if (user == CKU_SO)
		return kmx_p11_ready() ? CKR_USER_TYPE_INVALID : CKR_CRYPTOKI_NOT_INITIALIZED;
	if (user != CKU_USER && user != CKU_CONTEXT_SPECIFIC)
		return kmx_p11_ready() ? CKR_USER_TYPE_INVALID : CKR_CRYPTOKI_NOT_INITIALIZED;
	if (pin == NULL && pin_len != 0)
		return CKR_ARGUMENTS_BAD;
	if (!kmx_p11_ready())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	if (!kmx_p11_refresh())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	rv = kmx_p11_session_device(handle, &path, &locked);
	if (rv != CKR_OK)
		return rv;
	if (!locked && user == CKU_USER)
		return CKR_USER_ALREADY_LOGGED_IN;
	if (pin != NULL && !g_utf8_validate((const char *)pin, pin_len, NULL))
		return CKR_PIN_INVALID;
	if (pin != NULL && memchr(pin, 0, pin_len) != NULL)
		return CKR_PIN_INVALID;
	/* NULL: the protected authentication path, keymux's prompt */
	reply =
	    kmx_p11_bus_call(path,
			     KMX_DEVICE_IFACE,
			     "Unlock",
			     g_variant_new("(@sa{sv})", kmx_p11_pin_variant(pin, pin_len), NULL),
			     NULL,
			     KMX_P11_TIMEOUT_NONE,
			     &error);
	if (reply == NULL) {
		rv = kmx_p11_rv_from_error(error, CKR_PIN_INCORRECT);
		/* nobody could be asked: the protected path's prompt did not happen */
		return rv == CKR_USER_NOT_LOGGED_IN ? CKR_FUNCTION_CANCELED : rv;
	}
	return CKR_OK;
}

static CK_RV
kmx_C_Logout(CK_SESSION_HANDLE handle)
{
	g_autofree char *path = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = NULL;
	gboolean locked = FALSE;
	CK_RV rv;

	if (!kmx_p11_ready())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	if (!kmx_p11_refresh())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	rv = kmx_p11_session_device(handle, &path, &locked);
	if (rv != CKR_OK)
		return rv;
	if (locked)
		return CKR_USER_NOT_LOGGED_IN;
	reply = kmx_p11_bus_call(path,
				 KMX_DEVICE_IFACE,
				 "Lock",
				 NULL,
				 NULL,
				 KMX_P11_TIMEOUT_SHORT,
				 &error);
	if (reply == NULL)
		return kmx_p11_rv_from_error(error, CKR_FUNCTION_FAILED);
	return CKR_OK;
}

static CK_RV
kmx_C_SetPIN(CK_SESSION_HANDLE handle,
	     CK_UTF8CHAR_PTR old_pin,
	     CK_ULONG old_len,
	     CK_UTF8CHAR_PTR new_pin,
	     CK_ULONG new_len)
{
	g_autofree char *path = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = NULL;
	CK_RV rv;

	if ((old_pin == NULL && old_len != 0) || (new_pin == NULL && new_len != 0))
		return CKR_ARGUMENTS_BAD;
	if (!kmx_p11_ready())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	/* no prompt: the protected path cannot give two secrets */
	if (old_pin == NULL || new_pin == NULL)
		return CKR_FUNCTION_NOT_SUPPORTED;
	if (!g_utf8_validate((const char *)old_pin, old_len, NULL) ||
	    !g_utf8_validate((const char *)new_pin, new_len, NULL) ||
	    memchr(old_pin, 0, old_len) != NULL || memchr(new_pin, 0, new_len) != NULL)
		return CKR_PIN_INVALID;
	rv = kmx_p11_session_device(handle, &path, NULL);
	if (rv != CKR_OK)
		return rv;
	reply = kmx_p11_bus_call(path,
				 KMX_DEVICE_IFACE,
				 "ChangeSecret",
				 g_variant_new("(@s@s)",
					       kmx_p11_pin_variant(old_pin, old_len),
					       kmx_p11_pin_variant(new_pin, new_len)),
				 NULL,
				 KMX_P11_TIMEOUT_NONE,
				 &error);
	if (reply == NULL)
		return kmx_p11_rv_from_error(error, CKR_PIN_INVALID);
	return CKR_OK;
}

/* ---- objects ---- */

static KmxP11Object *
kmx_p11_object_get(KmxP11Session *session, CK_OBJECT_HANDLE handle)
{
	KmxP11Object *obj = g_hash_table_lookup(objects, GSIZE_TO_POINTER(handle));

	if (obj == NULL || obj->slot != session->slot)
		return NULL;
	return obj;
}

static gboolean
kmx_p11_object_matches(KmxP11Object *obj, CK_ATTRIBUTE_PTR templ, CK_ULONG count)
{
	for (CK_ULONG i = 0; i < count; i++) {
		g_autoptr(GBytes) value = NULL;
		gsize len = 0;
		const void *data;

		if (kmx_p11_object_attribute(obj, templ[i].type, &value) != CKR_OK)
			return FALSE;
		data = g_bytes_get_data(value, &len);
		if (len != templ[i].ulValueLen)
			return FALSE;
		if (len > 0 && (templ[i].pValue == NULL || memcmp(data, templ[i].pValue, len) != 0))
			return FALSE;
	}
	return TRUE;
}

static gint
kmx_p11_handle_cmp(gconstpointer a, gconstpointer b)
{
	CK_OBJECT_HANDLE x = *(const CK_OBJECT_HANDLE *)a, y = *(const CK_OBJECT_HANDLE *)b;
	return x < y ? -1 : x > y;
}

static CK_RV
kmx_C_FindObjectsInit(CK_SESSION_HANDLE handle, CK_ATTRIBUTE_PTR templ, CK_ULONG count)
{
	KmxP11Session *session;
	GHashTableIter iter;
	gpointer value;

	if (templ == NULL && count != 0)
		return CKR_ARGUMENTS_BAD;
	if (!kmx_p11_ready())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	if (!kmx_p11_refresh())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	KMX_LOCK_OR_RETURN();
	session = kmx_p11_session_get(handle);
	if (session == NULL)
		KMX_UNLOCK_RETURN(CKR_SESSION_HANDLE_INVALID);
	if (session->finding)
		KMX_UNLOCK_RETURN(CKR_OPERATION_ACTIVE);
	g_clear_pointer(&session->found, g_array_unref);
	session->found = g_array_new(FALSE, FALSE, sizeof(CK_OBJECT_HANDLE));
	session->found_pos = 0;
	g_hash_table_iter_init(&iter, objects);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		KmxP11Object *obj = value;
		if (obj->slot == session->slot && kmx_p11_object_matches(obj, templ, count))
			g_array_append_val(session->found, obj->handle);
	}
	/* the order keymuxd lists keys in, private key before public key */
	g_array_sort(session->found, kmx_p11_handle_cmp);
	session->finding = TRUE;
	KMX_UNLOCK_RETURN(CKR_OK);
}

static CK_RV
kmx_C_FindObjects(CK_SESSION_HANDLE handle,
		  CK_OBJECT_HANDLE_PTR list,
		  CK_ULONG max,
		  CK_ULONG_PTR count)
{
	KmxP11Session *session;
	CK_ULONG n = 0;

	if ((list == NULL && max != 0) || count == NULL)
		return CKR_ARGUMENTS_BAD;
	KMX_LOCK_OR_RETURN();
	session = kmx_p11_session_get(handle);
	if (session == NULL)
		KMX_UNLOCK_RETURN(CKR_SESSION_HANDLE_INVALID);
	if (!session->finding)
		KMX_UNLOCK_RETURN(CKR_OPERATION_NOT_INITIALIZED);
	while (n < max && session->found_pos < session->found->len)
		list[n++] = g_array_index(session->found, CK_OBJECT_HANDLE, session->found_pos++);
	*count = n;
	KMX_UNLOCK_RETURN(CKR_OK);
}

static CK_RV
kmx_C_FindObjectsFinal(CK_SESSION_HANDLE handle)
{
	KmxP11Session *session;

	KMX_LOCK_OR_RETURN();
	session = kmx_p11_session_get(handle);
	if (session == NULL)
		KMX_UNLOCK_RETURN(CKR_SESSION_HANDLE_INVALID);
	if (!session->finding)
		KMX_UNLOCK_RETURN(CKR_OPERATION_NOT_INITIALIZED);
	session->finding = FALSE;
	g_clear_pointer(&session->found, g_array_unref);
	KMX_UNLOCK_RETURN(CKR_OK);
}

static CK_RV
kmx_C_GetAttributeValue(CK_SESSION_HANDLE handle,
			CK_OBJECT_HANDLE object,
			CK_ATTRIBUTE_PTR templ,
			CK_ULONG count)
{
	KmxP11Session *session;
	KmxP11Object *obj;
	CK_RV rv = CKR_OK;

	if (templ == NULL && count != 0)
		return CKR_ARGUMENTS_BAD;
	KMX_LOCK_OR_RETURN();
	session = kmx_p11_session_get(handle);
	if (session == NULL)
		KMX_UNLOCK_RETURN(CKR_SESSION_HANDLE_INVALID);
	obj = kmx_p11_object_get(session, object);
	if (obj == NULL)
		KMX_UNLOCK_RETURN(CKR_OBJECT_HANDLE_INVALID);
	/* every attribute is answered; the last error is returned */
	for (CK_ULONG i = 0; i < count; i++) {
		g_autoptr(GBytes) value = NULL;
		CK_RV one = kmx_p11_object_attribute(obj, templ[i].type, &value);
		gsize len = 0;
		const void *data;

		if (one != CKR_OK) {
			templ[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = one;
			continue;
		}
		data = g_bytes_get_data(value, &len);
		if (templ[i].pValue == NULL) {
			templ[i].ulValueLen = len;
		} else if (templ[i].ulValueLen < len) {
			templ[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_BUFFER_TOO_SMALL;
		} else {
			if (len > 0)
				memcpy(templ[i].pValue, data, len);
			templ[i].ulValueLen = len;
		}
	}
	KMX_UNLOCK_RETURN(rv);
}

static CK_RV
kmx_C_GetObjectSize(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE object, CK_ULONG_PTR size)
{
	KmxP11Session *session;

	if (size == NULL)
		return CKR_ARGUMENTS_BAD;
	KMX_LOCK_OR_RETURN();
	session = kmx_p11_session_get(handle);
	if (session == NULL)
		KMX_UNLOCK_RETURN(CKR_SESSION_HANDLE_INVALID);
	if (kmx_p11_object_get(session, object) == NULL)
		KMX_UNLOCK_RETURN(CKR_OBJECT_HANDLE_INVALID);
	*size = CK_UNAVAILABLE_INFORMATION;
	KMX_UNLOCK_RETURN(CKR_OK);
}

static CK_RV
kmx_C_DestroyObject(CK_SESSION_HANDLE handle, CK_OBJECT_HANDLE object)
{
	KmxP11Session *session;
	KmxP11Object *obj;

	KMX_LOCK_OR_RETURN();
	session = kmx_p11_session_get(handle);
	if (session == NULL)
		KMX_UNLOCK_RETURN(CKR_SESSION_HANDLE_INVALID);
	obj = kmx_p11_object_get(session, object);
	if (obj == NULL)
		KMX_UNLOCK_RETURN(CKR_OBJECT_HANDLE_INVALID);
	/* keys are deleted with keymuxctl, not by a PKCS#11 application */
	if (obj->key != NULL)
		KMX_UNLOCK_RETURN(CKR_ACTION_PROHIBITED);
	g_hash_table_remove(objects, GSIZE_TO_POINTER(object));
	KMX_UNLOCK_RETURN(CKR_OK);
}

/* ---- signing and decrypting ---- */

static const EVP_MD *
kmx_p11_md_of(CK_MECHANISM_TYPE hash)
{
	switch (hash) {
	case CKM_SHA256:
		return EVP_sha256();
	case CKM_SHA384:
		return EVP_sha384();
	case CKM_SHA512:
		return EVP_sha512();
	default:
		return NULL;
	}
}

static CK_RSA_PKCS_MGF_TYPE
kmx_p11_mgf_of(CK_MECHANISM_TYPE hash)
{
	switch (hash) {
	case CKM_SHA256:
		return CKG_MGF1_SHA256;
	case CKM_SHA384:
		return CKG_MGF1_SHA384;
	case CKM_SHA512:
		return CKG_MGF1_SHA512;
	default:
		return 0;
	}
}

/* PSS parameters keymux can honour: salt as long as the digest, MGF1 with
 * the same hash; the mechanism's own hash when it hashes */
static CK_RV
kmx_p11_check_pss(CK_MECHANISM_PTR mech,
		  const char *hash,
		  const char **algorithm,
		  gsize *digest_len)
{
	CK_RSA_PKCS_PSS_PARAMS *params = mech->pParameter;
	const EVP_MD *md;

	if (params == NULL || mech->ulParameterLen != sizeof *params)
		return CKR_MECHANISM_PARAM_INVALID;
	md = kmx_p11_md_of(params->hashAlg);
	if (md == NULL || params->mgf != kmx_p11_mgf_of(params->hashAlg) ||
	    params->sLen != (CK_ULONG)EVP_MD_get_size(md))
		return CKR_MECHANISM_PARAM_INVALID;
	if (hash != NULL && EVP_MD_get_type(md) != EVP_MD_get_type(EVP_get_digestbyname(hash)))
		return CKR_MECHANISM_PARAM_INVALID;
	switch (params->hashAlg) {
	case CKM_SHA256:
		*algorithm = "rsa-pss-sha256";
		break;
	case CKM_SHA384:
		*algorithm = "rsa-pss-sha384";
		break;
	default:
		*algorithm = "rsa-pss-sha512";
		break;
	}
	*digest_len = EVP_MD_get_size(md);
	return CKR_OK;
}

static CK_RV
kmx_p11_check_oaep(CK_MECHANISM_PTR mech)
{
	CK_RSA_PKCS_OAEP_PARAMS *params = mech->pParameter;

	if (params == NULL || mech->ulParameterLen != sizeof *params)
		return CKR_MECHANISM_PARAM_INVALID;
	if (params->hashAlg != CKM_SHA256 || params->mgf != CKG_MGF1_SHA256)
		return CKR_MECHANISM_PARAM_INVALID;
	if (params->source != 0 && params->source != CKZ_DATA_SPECIFIED)
		return CKR_MECHANISM_PARAM_INVALID;
	if (params->ulSourceDataLen != 0)
		return CKR_MECHANISM_PARAM_INVALID;
	return CKR_OK;
}

static CK_RV
kmx_p11_op_init(CK_SESSION_HANDLE handle,
		KmxOpKind kind,
		CK_MECHANISM_PTR mech,
		CK_OBJECT_HANDLE key)
{
	const KmxP11Mechanism *m;
	KmxP11Session *session;
	KmxP11Object *obj;
	KmxP11Op *op;
	const char *algorithm = NULL;
	gsize digest_len = 0;
	CK_RV rv;

	if (mech == NULL)
		return CKR_ARGUMENTS_BAD;
	KMX_LOCK_OR_RETURN();
	session = kmx_p11_session_get(handle);
	if (session == NULL)
		KMX_UNLOCK_RETURN(CKR_SESSION_HANDLE_INVALID);
	op = kind == KMX_OP_SIGN ? &session->sign : &session->decrypt;
	if (op->kind != KMX_OP_NONE)
		KMX_UNLOCK_RETURN(CKR_OPERATION_ACTIVE);
	obj = kmx_p11_object_get(session, key);
	if (obj == NULL || obj->klass != CKO_PRIVATE_KEY)
		KMX_UNLOCK_RETURN(CKR_KEY_HANDLE_INVALID);
	m = kmx_p11_mechanism(mech->mechanism);
	if (m == NULL || (kind == KMX_OP_SIGN ? m->sign : m->decrypt) == NULL)
		KMX_UNLOCK_RETURN(CKR_MECHANISM_INVALID);
	if (m->key_type != obj->key->key_type)
		KMX_UNLOCK_RETURN(CKR_KEY_TYPE_INCONSISTENT);
	if (kind == KMX_OP_SIGN ? !obj->key->can_sign : !obj->key->can_decrypt)
		KMX_UNLOCK_RETURN(CKR_KEY_FUNCTION_NOT_PERMITTED);
	algorithm = kind == KMX_OP_SIGN ? m->sign : m->decrypt;
	if (m->type == CKM_RSA_PKCS_PSS || m->type == CKM_SHA256_RSA_PKCS_PSS ||
	    m->type == CKM_SHA384_RSA_PKCS_PSS || m->type == CKM_SHA512_RSA_PKCS_PSS) {
		rv = kmx_p11_check_pss(mech, m->hash, &algorithm, &digest_len);
		if (rv != CKR_OK)
			KMX_UNLOCK_RETURN(rv);
	} else if (m->type == CKM_RSA_PKCS_OAEP) {
		rv = kmx_p11_check_oaep(mech);
		if (rv != CKR_OK)
			KMX_UNLOCK_RETURN(rv);
	} else if (mech->ulParameterLen != 0) {
		KMX_UNLOCK_RETURN(CKR_MECHANISM_PARAM_INVALID);
	}
	op->kind = kind;
	op->serial = ++next_op_serial;
	op->mechanism = m->type;
	op->key = g_atomic_rc_box_acquire(obj->key);
	op->algorithm = algorithm;
	op->digest_len = digest_len;
	op->raw_ecdsa = m->key_type == CKK_EC;
	if (m->hash != NULL) {
		op->md = EVP_MD_CTX_new();
		if (op->md == NULL ||
		    !EVP_DigestInit_ex(op->md, EVP_get_digestbyname(m->hash), NULL)) {
			kmx_p11_op_clear(op);
			KMX_UNLOCK_RETURN(CKR_HOST_MEMORY);
		}
		op->prehashed = TRUE;
	} else {
		op->buffer = g_byte_array_new();
	}
	KMX_UNLOCK_RETURN(CKR_OK);
}

static KmxP11Op *
kmx_p11_op_get(CK_SESSION_HANDLE handle, KmxOpKind kind, CK_RV *rv)
{
	KmxP11Session *session = kmx_p11_session_get(handle);
	KmxP11Op *op;

	if (session == NULL) {
		*rv = CKR_SESSION_HANDLE_INVALID;
		return NULL;
	}
	op = kind == KMX_OP_SIGN ? &session->sign : &session->decrypt;
	if (op->kind != kind) {
		*rv = CKR_OPERATION_NOT_INITIALIZED;
		return NULL;
	}
	return op;
}

/* add data to an operation; with the lock */
static CK_RV
kmx_p11_op_update(KmxP11Op *op, CK_BYTE_PTR data, CK_ULONG len)
{
	if (data == NULL && len != 0)
		return CKR_ARGUMENTS_BAD;
	op->updated = TRUE;
	if (op->md != NULL)
		return EVP_DigestUpdate(op->md, data, len) ? CKR_OK : CKR_FUNCTION_FAILED;
	/* a ciphertext is one block, as long as the modulus */
	if (op->kind == KMX_OP_DECRYPT && len > op->key->sig_len - op->buffer->len)
		return CKR_ENCRYPTED_DATA_LEN_RANGE;
	if (len > KMX_P11_MAX_BUFFERED - op->buffer->len)
		return CKR_DATA_LEN_RANGE;
	g_byte_array_append(op->buffer, data, len);
	return CKR_OK;
}

/* DER ECDSA-Sig-Value to PKCS#11's r || s, each as long as the order */
static CK_RV
kmx_p11_ecdsa_raw(const guint8 *der, gsize der_len, gsize raw_len, guint8 **raw)
{
	const unsigned char *p = der;
	g_autoptr(ECDSA_SIG) sig = NULL;
	const BIGNUM *r, *s;
	gsize half = raw_len / 2;

	if (der_len > G_MAXINT32)
		return CKR_DEVICE_ERROR;
	sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	if (sig == NULL || p != der + der_len)
		return CKR_DEVICE_ERROR;
	ECDSA_SIG_get0(sig, &r, &s);
	*raw = g_malloc(raw_len);
	if (BN_bn2binpad(r, *raw, half) < 0 || BN_bn2binpad(s, *raw + half, half) < 0) {
		g_clear_pointer(raw, g_free);
		return CKR_DEVICE_ERROR;
	}
	return CKR_OK;
}

/* what the operation sends to keymuxd; with the lock */
static CK_RV
kmx_p11_op_payload(KmxP11Op *op, GBytes **payload)
{
	gsize len;

	if (op->md != NULL) {
		guint8 digest[EVP_MAX_MD_SIZE];
		unsigned int digest_len = 0;

		if (!EVP_DigestFinal_ex(op->md, digest, &digest_len))
			return CKR_FUNCTION_FAILED;
		*payload = g_bytes_new(digest, digest_len);
		return CKR_OK;
	}
	len = op->buffer->len;
	if (op->kind == KMX_OP_DECRYPT) {
		if (len != op->key->sig_len)
			return CKR_ENCRYPTED_DATA_LEN_RANGE;
	} else if (op->mechanism == CKM_RSA_PKCS) {
		if (len > op->key->sig_len - 11)
			return CKR_DATA_LEN_RANGE;
	} else if (op->mechanism == CKM_RSA_PKCS_PSS) {
		if (len != op->digest_len)
			return CKR_DATA_LEN_RANGE;
		op->prehashed = TRUE;
	} else if (op->mechanism == CKM_ECDSA) {
		if (len == 0 || len > 64)
			return CKR_DATA_LEN_RANGE;
	}
	*payload = g_bytes_new(op->buffer->data, len);
	return CKR_OK;
}

/* hand the result over, or say how long it is; ends the operation when it
 * is delivered or failed, keeps it for a size query or a short buffer */
static CK_RV
kmx_p11_op_deliver(KmxP11Session *session,
		   KmxP11Op *op,
		   CK_RV rv,
		   CK_BYTE_PTR out,
		   CK_ULONG_PTR out_len)
{
	if (rv != CKR_OK) {
		kmx_p11_op_clear(op);
		return rv;
	}
	if (out == NULL) {
		*out_len = op->result_len;
		return CKR_OK;
	}
	if (*out_len < op->result_len) {
		*out_len = op->result_len;
		return CKR_BUFFER_TOO_SMALL;
	}
	memcpy(out, op->result, op->result_len);
	*out_len = op->result_len;
	kmx_p11_op_clear(op);
	return CKR_OK;
}

/* finish: ask keymuxd once, keep the result until it is delivered */
static CK_RV
kmx_p11_op_final(CK_SESSION_HANDLE handle, KmxOpKind kind, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	g_autoptr(GBytes) payload = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GVariant) result = NULL;
	g_autoptr(KmxP11Key) key = NULL;
	g_auto(GVariantBuilder) options = G_VARIANT_BUILDER_INIT(G_VARIANT_TYPE_VARDICT);
	g_autofree char *algorithm = NULL;
	KmxP11Session *session;
	KmxP11Op *op;
	guint serial;
	gboolean raw_ecdsa;
	guint8 *value = NULL;
	gsize value_len = 0;
	CK_RV rv = CKR_OK;

	if (out_len == NULL)
		return CKR_ARGUMENTS_BAD;
	KMX_LOCK_OR_RETURN();
	op = kmx_p11_op_get(handle, kind, &rv);
	if (op == NULL)
		KMX_UNLOCK_RETURN(rv);
	session = kmx_p11_session_get(handle);
	if (op->result != NULL)
		KMX_UNLOCK_RETURN(kmx_p11_op_deliver(session, op, CKR_OK, out, out_len));
	rv = kmx_p11_op_payload(op, &payload);
	if (rv != CKR_OK)
		KMX_UNLOCK_RETURN(kmx_p11_op_deliver(session, op, rv, out, out_len));
	key = g_atomic_rc_box_acquire(op->key);
	algorithm = g_strdup(op->algorithm);
	serial = op->serial;
	raw_ecdsa = op->raw_ecdsa && kind == KMX_OP_SIGN;
	if (op->prehashed)
		g_variant_builder_add(&options, "{sv}", "prehashed", g_variant_new_boolean(TRUE));
	pthread_mutex_unlock(&lock);

	reply = kmx_p11_bus_call(
	    key->path,
	    KMX_KEY_IFACE,
	    kind == KMX_OP_SIGN ? "Sign" : "Decrypt",
	    g_variant_new("(s@ay@a{sv})",
			  algorithm,
			  g_variant_new_from_bytes(G_VARIANT_TYPE_BYTESTRING, payload, TRUE),
			  g_variant_builder_end(&options)),
	    G_VARIANT_TYPE("(ay)"),
	    KMX_P11_TIMEOUT_NONE,
	    &error);
	if (reply == NULL) {
		rv = kmx_p11_rv_from_error(error,
					   kind == KMX_OP_SIGN ? CKR_DATA_INVALID
							       : CKR_ENCRYPTED_DATA_INVALID);
	} else {
		gsize len = 0;
		const guint8 *data;

		result = g_variant_get_child_value(reply, 0);
		data = g_variant_get_fixed_array(result, &len, 1);
		if (raw_ecdsa) {
			value_len = key->sig_len;
			rv = kmx_p11_ecdsa_raw(data, len, value_len, &value);
		} else {
			value = g_memdup2(data, len);
			value_len = len;
		}
		/* a plaintext: the one copy kept is value, wiped when delivered */
		g_clear_pointer(&result, g_variant_unref);
		kmx_p11_bus_wipe_bytes(reply);
	}

	pthread_mutex_lock(&lock);
	op = kmx_p11_ready() ? kmx_p11_op_get(handle, kind, &rv) : NULL;
	if (!kmx_p11_ready())
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;
	if (op == NULL || op->serial != serial) {
		/* closed or restarted meanwhile */
		if (value != NULL)
			explicit_bzero(value, value_len);
		g_free(value);
		KMX_UNLOCK_RETURN(op == NULL ? rv : CKR_OPERATION_NOT_INITIALIZED);
	}
	session = kmx_p11_session_get(handle);
	op->result = value;
	op->result_len = value_len;
	KMX_UNLOCK_RETURN(kmx_p11_op_deliver(session, op, rv, out, out_len));
}

static CK_RV
kmx_p11_op_update_locked(CK_SESSION_HANDLE handle, KmxOpKind kind, CK_BYTE_PTR data, CK_ULONG len)
{
	KmxP11Op *op;
	CK_RV rv = CKR_OK;

	KMX_LOCK_OR_RETURN();
	op = kmx_p11_op_get(handle, kind, &rv);
	if (op == NULL)
		KMX_UNLOCK_RETURN(rv);
	rv = kmx_p11_op_update(op, data, len);
	if (rv != CKR_OK)
		kmx_p11_op_clear(op);
	KMX_UNLOCK_RETURN(rv);
}

/* single part: the data once, then as C_*Final; a second call after a size
 * query gets the kept result */
static CK_RV
kmx_p11_op_single(CK_SESSION_HANDLE handle,
		  KmxOpKind kind,
		  CK_BYTE_PTR data,
		  CK_ULONG len,
		  CK_BYTE_PTR out,
		  CK_ULONG_PTR out_len)
{
	KmxP11Op *op;
	CK_RV rv = CKR_OK;

	if (out_len == NULL || (data == NULL && len != 0))
		return CKR_ARGUMENTS_BAD;
	KMX_LOCK_OR_RETURN();
	op = kmx_p11_op_get(handle, kind, &rv);
	if (op == NULL)
		KMX_UNLOCK_RETURN(rv);
	if (op->result == NULL) {
		/* C_Sign after C_SignUpdate is not allowed */
		if (op->updated) {
			kmx_p11_op_clear(op);
			KMX_UNLOCK_RETURN(CKR_OPERATION_NOT_INITIALIZED);
		}
		rv = kmx_p11_op_update(op, data, len);
		if (rv != CKR_OK) {
			kmx_p11_op_clear(op);
			KMX_UNLOCK_RETURN(rv);
		}
	}
	pthread_mutex_unlock(&lock);
	return kmx_p11_op_final(handle, kind, out, out_len);
}

static CK_RV
kmx_C_SignInit(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
	return kmx_p11_op_init(handle, KMX_OP_SIGN, mech, key);
}

static CK_RV
kmx_C_Sign(CK_SESSION_HANDLE handle,
	   CK_BYTE_PTR data,
	   CK_ULONG len,
	   CK_BYTE_PTR sig,
	   CK_ULONG_PTR sig_len)
{
	return kmx_p11_op_single(handle, KMX_OP_SIGN, data, len, sig, sig_len);
}

static CK_RV
kmx_C_SignUpdate(CK_SESSION_HANDLE handle, CK_BYTE_PTR data, CK_ULONG len)
{
	return kmx_p11_op_update_locked(handle, KMX_OP_SIGN, data, len);
}

static CK_RV
kmx_C_SignFinal(CK_SESSION_HANDLE handle, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	return kmx_p11_op_final(handle, KMX_OP_SIGN, sig, sig_len);
}

static CK_RV
kmx_C_DecryptInit(CK_SESSION_HANDLE handle, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
	return kmx_p11_op_init(handle, KMX_OP_DECRYPT, mech, key);
}

static CK_RV
kmx_C_Decrypt(CK_SESSION_HANDLE handle,
	      CK_BYTE_PTR data,
	      CK_ULONG len,
	      CK_BYTE_PTR out,
	      CK_ULONG_PTR out_len)
{
	return kmx_p11_op_single(handle, KMX_OP_DECRYPT, data, len, out, out_len);
}

/* Multi-part decryption: RSA decrypts one block, so the parts are kept until
 * C_DecryptFinal and no plaintext comes out before it.  A size query (NULL
 * @out) takes nothing in: the caller calls again with the same part. */
static CK_RV
kmx_C_DecryptUpdate(CK_SESSION_HANDLE handle,
		    CK_BYTE_PTR part,
		    CK_ULONG part_len,
		    CK_BYTE_PTR out,
		    CK_ULONG_PTR out_len)
{
	KmxP11Op *op;
	CK_RV rv = CKR_OK;

	if (out_len == NULL || (part == NULL && part_len != 0))
		return CKR_ARGUMENTS_BAD;
	if (out != NULL) {
		rv = kmx_p11_op_update_locked(handle, KMX_OP_DECRYPT, part, part_len);
		if (rv == CKR_OK)
			*out_len = 0;
		return rv;
	}
	KMX_LOCK_OR_RETURN();
	op = kmx_p11_op_get(handle, KMX_OP_DECRYPT, &rv);
	if (op != NULL)
		*out_len = 0;
	KMX_UNLOCK_RETURN(rv);
}

static CK_RV
kmx_C_DecryptFinal(CK_SESSION_HANDLE handle, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	return kmx_p11_op_final(handle, KMX_OP_DECRYPT, out, out_len);
}

/* ---- deriving ---- */

/* the peer's point: raw, or wrapped in a DER OCTET STRING */
static GBytes *
kmx_p11_peer_point(const CK_BYTE *data, CK_ULONG len)
{
	const unsigned char *p = data;
	ASN1_OCTET_STRING *os;
	GBytes *bytes;

	if (len > 0 && data[0] == 0x04 && len % 2 == 1)
		return g_bytes_new(data, len);
	if (len > G_MAXINT32)
		return NULL;
	os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)len);
	if (os == NULL)
		return NULL;
	bytes = p == data + len ? g_bytes_new(ASN1_STRING_get0_data(os), ASN1_STRING_length(os))
				: NULL;
	ASN1_OCTET_STRING_free(os);
	return bytes;
}

static CK_RV
kmx_C_DeriveKey(CK_SESSION_HANDLE handle,
		CK_MECHANISM_PTR mech,
		CK_OBJECT_HANDLE base,
		CK_ATTRIBUTE_PTR templ,
		CK_ULONG count,
		CK_OBJECT_HANDLE_PTR out)
{
	CK_ECDH1_DERIVE_PARAMS *params;
	g_autoptr(KmxP11Key) key = NULL;
	g_autoptr(GBytes) peer = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GVariant) secret = NULL;
	KmxP11Session *session;
	KmxP11Object *obj;
	KmxP11Object *derived;
	CK_ULONG value_len = 0;
	gboolean sensitive = FALSE, extractable = TRUE;
	CK_KEY_TYPE secret_type = CKK_GENERIC_SECRET;
	GBytes *label = NULL, *id = NULL;
	const guint8 *data;
	gsize len = 0;

	if (mech == NULL || out == NULL || (templ == NULL && count != 0))
		return CKR_ARGUMENTS_BAD;
	KMX_LOCK_OR_RETURN();
	session = kmx_p11_session_get(handle);
	if (session == NULL)
		KMX_UNLOCK_RETURN(CKR_SESSION_HANDLE_INVALID);
	obj = kmx_p11_object_get(session, base);
	if (obj == NULL || obj->klass != CKO_PRIVATE_KEY)
		KMX_UNLOCK_RETURN(CKR_KEY_HANDLE_INVALID);
	if (mech->mechanism != CKM_ECDH1_DERIVE)
		KMX_UNLOCK_RETURN(CKR_MECHANISM_INVALID);
	if (obj->key->key_type != CKK_EC)
		KMX_UNLOCK_RETURN(CKR_KEY_TYPE_INCONSISTENT);
	if (!obj->key->can_derive)
		KMX_UNLOCK_RETURN(CKR_KEY_FUNCTION_NOT_PERMITTED);
	params = mech->pParameter;
	if (params == NULL || mech->ulParameterLen != sizeof *params || params->kdf != CKD_NULL ||
	    params->ulSharedDataLen != 0 || params->pPublicData == NULL)
		KMX_UNLOCK_RETURN(CKR_MECHANISM_PARAM_INVALID);
	peer = kmx_p11_peer_point(params->pPublicData, params->ulPublicDataLen);
	if (peer == NULL)
		KMX_UNLOCK_RETURN(CKR_MECHANISM_PARAM_INVALID);
	for (CK_ULONG i = 0; i < count; i++) {
		CK_ATTRIBUTE *a = &templ[i];
		gboolean is_bool = a->pValue != NULL && a->ulValueLen == sizeof(CK_BBOOL);
		gboolean is_ulong = a->pValue != NULL && a->ulValueLen == sizeof(CK_ULONG);
		switch (a->type) {
		case CKA_CLASS:
			if (!is_ulong || *(CK_ULONG *)a->pValue != CKO_SECRET_KEY)
				KMX_UNLOCK_RETURN(CKR_TEMPLATE_INCONSISTENT);
			break;
		case CKA_KEY_TYPE:
			if (!is_ulong)
				KMX_UNLOCK_RETURN(CKR_ATTRIBUTE_VALUE_INVALID);
			secret_type = *(CK_ULONG *)a->pValue;
			break;
		case CKA_VALUE_LEN:
			if (!is_ulong)
				KMX_UNLOCK_RETURN(CKR_ATTRIBUTE_VALUE_INVALID);
			value_len = *(CK_ULONG *)a->pValue;
			break;
		case CKA_TOKEN:
			/* keymux keeps asymmetric keys only */
			if (!is_bool || *(CK_BBOOL *)a->pValue)
				KMX_UNLOCK_RETURN(CKR_ATTRIBUTE_VALUE_INVALID);
			break;
		case CKA_SENSITIVE:
		case CKA_EXTRACTABLE:
			if (!is_bool)
				KMX_UNLOCK_RETURN(CKR_ATTRIBUTE_VALUE_INVALID);
			if (a->type == CKA_SENSITIVE)
				sensitive = *(CK_BBOOL *)a->pValue;
			else
				extractable = *(CK_BBOOL *)a->pValue;
			break;
		case CKA_LABEL:
		case CKA_ID:
			if (a->pValue == NULL && a->ulValueLen != 0)
				KMX_UNLOCK_RETURN(CKR_ATTRIBUTE_VALUE_INVALID);
			if (a->type == CKA_LABEL && label == NULL)
				label = g_bytes_new(a->pValue, a->ulValueLen);
			else if (a->type == CKA_ID && id == NULL)
				id = g_bytes_new(a->pValue, a->ulValueLen);
			break;
		default:
			/* usage flags and the like: the object answers for itself */
			break;
		}
	}
	key = g_atomic_rc_box_acquire(obj->key);
	pthread_mutex_unlock(&lock);

	reply = kmx_p11_bus_call(
	    key->path,
	    KMX_KEY_IFACE,
	    "Derive",
	    g_variant_new("(s@aya{sv})",
			  "ecdh",
			  g_variant_new_from_bytes(G_VARIANT_TYPE_BYTESTRING, peer, TRUE),
			  NULL),
	    G_VARIANT_TYPE("(ay)"),
	    KMX_P11_TIMEOUT_NONE,
	    &error);
	if (reply == NULL) {
		g_clear_pointer(&label, g_bytes_unref);
		g_clear_pointer(&id, g_bytes_unref);
		return kmx_p11_rv_from_error(error, CKR_MECHANISM_PARAM_INVALID);
	}
	secret = g_variant_get_child_value(reply, 0);
	data = g_variant_get_fixed_array(secret, &len, 1);
	if (value_len == 0)
		value_len = len;
	if (value_len > len) {
		g_clear_pointer(&label, g_bytes_unref);
		g_clear_pointer(&id, g_bytes_unref);
		kmx_p11_bus_wipe_bytes(reply);
		return CKR_TEMPLATE_INCONSISTENT;
	}
	derived = g_new0(KmxP11Object, 1);
	derived->klass = CKO_SECRET_KEY;
	derived->session = handle;
	derived->secret_type = secret_type;
	derived->value = g_memdup2(data, value_len);
	derived->value_len = value_len;
	/* the shared secret: the one copy kept is the object's */
	g_clear_pointer(&secret, g_variant_unref);
	kmx_p11_bus_wipe_bytes(reply);
	derived->sensitive = sensitive;
	derived->extractable = extractable;
	derived->label = label;
	derived->id = id;

	pthread_mutex_lock(&lock);
	if (!kmx_p11_ready() || (session = kmx_p11_session_get(handle)) == NULL) {
		gboolean ready = kmx_p11_ready();
		pthread_mutex_unlock(&lock);
		kmx_p11_object_free(derived);
		return ready ? CKR_SESSION_HANDLE_INVALID : CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	derived->slot = session->slot;
	derived->handle = next_object++;
	g_hash_table_insert(objects, GSIZE_TO_POINTER(derived->handle), derived);
	*out = derived->handle;
	KMX_UNLOCK_RETURN(CKR_OK);
}

/* ---- generating ---- */

/* what a C_GenerateKeyPair template asks for */
typedef struct {
	CK_KEY_TYPE key_type;
	CK_ULONG bits; /* CKA_MODULUS_BITS, 0 if not given */
	int curve;     /* the NID of CKA_EC_PARAMS, NID_undef if not given */
	GBytes *label; /* CKA_LABEL, NULL if not given */
	/* CKA_SIGN/CKA_VERIFY, CKA_DECRYPT/CKA_ENCRYPT, CKA_DERIVE: -1 if
	 * not given, else the value */
	int usage[3];
} KmxP11GenTemplate;

enum { KMX_USAGE_SIGN, KMX_USAGE_DECRYPT, KMX_USAGE_DERIVE };

static gboolean
kmx_p11_attr_bool(const CK_ATTRIBUTE *a, gboolean *value)
{
	if (a->pValue == NULL || a->ulValueLen != sizeof(CK_BBOOL))
		return FALSE;
	*value = *(const CK_BBOOL *)a->pValue != CK_FALSE;
	return TRUE;
}

static gboolean
kmx_p11_attr_ulong(const CK_ATTRIBUTE *a, CK_ULONG *value)
{
	if (a->pValue == NULL || a->ulValueLen != sizeof(CK_ULONG))
		return FALSE;
	memcpy(value, a->pValue, sizeof *value);
	return TRUE;
}

/* CKA_EC_PARAMS: a named curve's OID, or (PKCS#11 3.0, for Edwards curves)
 * its name as a PrintableString; NID_undef if neither */
static int
kmx_p11_curve_of(const CK_ATTRIBUTE *a)
{
	const unsigned char *p = a->pValue;
	ASN1_OBJECT *oid;
	ASN1_PRINTABLESTRING *name;
	int nid = NID_undef;

	if (a->pValue == NULL || a->ulValueLen == 0 || a->ulValueLen > 64)
		return NID_undef;
	oid = d2i_ASN1_OBJECT(NULL, &p, (long)a->ulValueLen);
	if (oid != NULL) {
		if (p == (const unsigned char *)a->pValue + a->ulValueLen)
			nid = OBJ_obj2nid(oid);
		ASN1_OBJECT_free(oid);
		return nid;
	}
	p = a->pValue;
	name = d2i_ASN1_PRINTABLESTRING(NULL, &p, (long)a->ulValueLen);
	if (name != NULL) {
		if (p == (const unsigned char *)a->pValue + a->ulValueLen &&
		    ASN1_STRING_length(name) == 12 &&
		    memcmp(ASN1_STRING_get0_data(name), "edwards25519", 12) == 0)
			nid = NID_ED25519;
		ASN1_PRINTABLESTRING_free(name);
	}
	return nid;
}

/* record a usage the template asks for; both templates must agree */
static CK_RV
kmx_p11_gen_usage(KmxP11GenTemplate *gen, guint which, const CK_ATTRIBUTE *a)
{
	gboolean value;

	if (!kmx_p11_attr_bool(a, &value))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if (gen->usage[which] != -1 && gen->usage[which] != value)
		return CKR_TEMPLATE_INCONSISTENT;
	gen->usage[which] = value;
	return CKR_OK;
}

/* one attribute of either template; @klass says which */
static CK_RV
kmx_p11_gen_attribute(KmxP11GenTemplate *gen, CK_OBJECT_CLASS klass, const CK_ATTRIBUTE *a)
{
	gboolean private_ = klass == CKO_PRIVATE_KEY;
	gboolean b;
	CK_ULONG ul;

	if (a->pValue == NULL && a->ulValueLen != 0)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	switch (a->type) {
	case CKA_CLASS:
	case CKA_KEY_TYPE:
		if (!kmx_p11_attr_ulong(a, &ul))
			return CKR_ATTRIBUTE_VALUE_INVALID;
		if (ul != (a->type == CKA_CLASS ? klass : gen->key_type))
			return CKR_TEMPLATE_INCONSISTENT;
		return CKR_OK;
	case CKA_TOKEN:
		/* keymux keys are token objects */
		return kmx_p11_attr_bool(a, &b) && b ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
	case CKA_ID:
		/* a keymux key's CKA_ID is its key id, a digest of the public key:
		 * the one asked for is not kept (docs/pkcs11.md) */
		return CKR_OK;
	case CKA_PRIVATE:
		if (!kmx_p11_attr_bool(a, &b))
			return CKR_ATTRIBUTE_VALUE_INVALID;
		/* a private key needs a login when its device has a secret */
		return private_ || !b ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
	case CKA_LABEL: {
		g_autoptr(GBytes) label = g_bytes_new(a->pValue, a->ulValueLen);
		if (a->ulValueLen > 1024 ||
		    (a->ulValueLen > 0 && (!g_utf8_validate(a->pValue, a->ulValueLen, NULL) ||
					   memchr(a->pValue, 0, a->ulValueLen) != NULL)))
			return CKR_ATTRIBUTE_VALUE_INVALID;
		/* one label for both objects */
		if (gen->label != NULL)
			return g_bytes_equal(gen->label, label) ? CKR_OK
								: CKR_TEMPLATE_INCONSISTENT;
		gen->label = g_steal_pointer(&label);
		return CKR_OK;
	}
	case CKA_MODULUS_BITS:
		if (gen->key_type != CKK_RSA)
			return CKR_TEMPLATE_INCONSISTENT;
		if (!kmx_p11_attr_ulong(a, &ul) || (ul != 2048 && ul != 3072 && ul != 4096))
			return CKR_ATTRIBUTE_VALUE_INVALID;
		if (gen->bits != 0 && gen->bits != ul)
			return CKR_TEMPLATE_INCONSISTENT;
		gen->bits = ul;
		return CKR_OK;
	case CKA_PUBLIC_EXPONENT: {
		const guint8 *e = a->pValue;
		CK_ULONG n = a->ulValueLen;

		if (gen->key_type != CKK_RSA)
			return CKR_TEMPLATE_INCONSISTENT;
		/* 65537 only, with any leading zero bytes */
		while (n > 0 && e[0] == 0) {
			e++;
			n--;
		}
		return n == 3 && e[0] == 1 && e[1] == 0 && e[2] == 1 ? CKR_OK
								     : CKR_ATTRIBUTE_VALUE_INVALID;
	}
	case CKA_EC_PARAMS: {
		int nid;

		if (gen->key_type == CKK_RSA)
			return CKR_TEMPLATE_INCONSISTENT;
		nid = kmx_p11_curve_of(a);
		if (gen->key_type == CKK_EC ? nid != NID_X9_62_prime256v1 && nid != NID_secp384r1
					    : nid != NID_ED25519)
			return CKR_ATTRIBUTE_VALUE_INVALID;
		if (gen->curve != NID_undef && gen->curve != nid)
			return CKR_TEMPLATE_INCONSISTENT;
		gen->curve = nid;
		return CKR_OK;
	}
	case CKA_SIGN:
	case CKA_VERIFY:
		if (private_ != (a->type == CKA_SIGN))
			return CKR_ATTRIBUTE_TYPE_INVALID;
		return kmx_p11_gen_usage(gen, KMX_USAGE_SIGN, a);
	case CKA_DECRYPT:
	case CKA_ENCRYPT:
		if (private_ != (a->type == CKA_DECRYPT))
			return CKR_ATTRIBUTE_TYPE_INVALID;
		return kmx_p11_gen_usage(gen, KMX_USAGE_DECRYPT, a);
	case CKA_DERIVE:
		return kmx_p11_gen_usage(gen, KMX_USAGE_DERIVE, a);
	case CKA_SENSITIVE:
		/* never extractable, always sensitive */
		if (!private_)
			return CKR_ATTRIBUTE_TYPE_INVALID;
		return kmx_p11_attr_bool(a, &b) && b ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
	case CKA_EXTRACTABLE:
	case CKA_SIGN_RECOVER:
	case CKA_UNWRAP:
	case CKA_WRAP_WITH_TRUSTED:
	case CKA_ALWAYS_AUTHENTICATE:
		if (!private_)
			return CKR_ATTRIBUTE_TYPE_INVALID;
		return kmx_p11_attr_bool(a, &b) && !b ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
	case CKA_WRAP:
	case CKA_VERIFY_RECOVER:
	case CKA_TRUSTED:
		if (private_)
			return CKR_ATTRIBUTE_TYPE_INVALID;
		G_GNUC_FALLTHROUGH;
	case CKA_MODIFIABLE:
	case CKA_COPYABLE:
	case CKA_DESTROYABLE:
		/* what the objects say: keys change through keymuxctl only */
		return kmx_p11_attr_bool(a, &b) && !b ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
	default:
		/* an attribute keymux cannot give its keys */
		return CKR_ATTRIBUTE_TYPE_INVALID;
	}
}

static CK_RV
kmx_p11_gen_template(KmxP11GenTemplate *gen,
		     CK_OBJECT_CLASS klass,
		     const CK_ATTRIBUTE *templ,
		     CK_ULONG count)
{
	for (CK_ULONG i = 0; i < count; i++) {
		CK_RV rv = kmx_p11_gen_attribute(gen, klass, &templ[i]);
		if (rv != CKR_OK)
			return rv;
	}
	return CKR_OK;
}

/* the keymux algorithm of a parsed template, and the usage a key of it can
 * have at most (what the device gives it may be less) */
static CK_RV
kmx_p11_gen_algorithm(const KmxP11GenTemplate *gen, const char **algorithm, gboolean usage[3])
{
	usage[KMX_USAGE_SIGN] = TRUE;
	usage[KMX_USAGE_DECRYPT] = gen->key_type == CKK_RSA;
	usage[KMX_USAGE_DERIVE] = gen->key_type == CKK_EC;
	switch (gen->key_type) {
	case CKK_RSA:
		if (gen->bits == 0)
			return CKR_TEMPLATE_INCOMPLETE;
		*algorithm = "rsa4096";
		if (gen->bits == 2048)
			*algorithm = "rsa2048";
		else if (gen->bits == 3072)
			*algorithm = "rsa3072";
		break;
	case CKK_EC:
		if (gen->curve == NID_undef)
			return CKR_TEMPLATE_INCOMPLETE;
		*algorithm = gen->curve == NID_X9_62_prime256v1 ? "ecdsa-p256" : "ecdsa-p384";
		break;
	default:
		/* one Edwards curve: CKA_EC_PARAMS may be left out */
		*algorithm = "ed25519";
		break;
	}
	/* a usage asked for that no such key has, or refused that every one has */
	for (guint i = 0; i < 3; i++)
		if (gen->usage[i] == TRUE && !usage[i])
			return CKR_TEMPLATE_INCONSISTENT;
	if (gen->usage[KMX_USAGE_SIGN] == FALSE)
		return CKR_TEMPLATE_INCONSISTENT;
	return CKR_OK;
}

/* whether the new key's usage is what the template asked for */
static gboolean
kmx_p11_gen_usage_matches(const KmxP11GenTemplate *gen, const KmxP11Key *key)
{
	gboolean has[3] = {key->can_sign, key->can_decrypt, key->can_derive};

	for (guint i = 0; i < 3; i++)
		if (gen->usage[i] != -1 && gen->usage[i] != has[i])
			return FALSE;
	return TRUE;
}

/* the handle of the object of @klass for the key at @path; with the lock */
static CK_OBJECT_HANDLE
kmx_p11_key_handle(CK_OBJECT_CLASS klass, const char *path)
{
	g_autofree char *name = g_strdup_printf("%lu:%s", klass, path);

	return GPOINTER_TO_SIZE(g_hash_table_lookup(key_handles, name));
}

/*
 * C_GenerateKeyPair: Device.GenerateKey on the session's device.  The
 * templates are checked before anything is made; a key whose usage turns
 * out other than asked (a device that gives less) is deleted again.
 */
static CK_RV
kmx_C_GenerateKeyPair(CK_SESSION_HANDLE handle,
		      CK_MECHANISM_PTR mech,
		      CK_ATTRIBUTE_PTR pub_templ,
		      CK_ULONG pub_count,
		      CK_ATTRIBUTE_PTR priv_templ,
		      CK_ULONG priv_count,
		      CK_OBJECT_HANDLE_PTR pub_out,
		      CK_OBJECT_HANDLE_PTR priv_out)
{
	KmxP11GenTemplate gen = {.curve = NID_undef, .usage = {-1, -1, -1}};
	g_autoptr(GBytes) label_bytes = NULL;
	g_autofree char *label = NULL;
	g_autofree char *device = NULL;
	g_autofree char *key_path = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = NULL;
	const KmxP11Mechanism *m;
	KmxP11Session *session;
	KmxP11Slot *slot;
	KmxP11Object *priv;
	const char *algorithm = NULL;
	gboolean most[3];
	CK_OBJECT_HANDLE pub_handle, priv_handle;
	CK_RV rv;

	if (mech == NULL || pub_out == NULL || priv_out == NULL ||
	    (pub_templ == NULL && pub_count != 0) || (priv_templ == NULL && priv_count != 0))
		return CKR_ARGUMENTS_BAD;
	if (!kmx_p11_ready())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	/* the device's state now: locked or not */
	if (!kmx_p11_refresh())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	KMX_LOCK_OR_RETURN();
	session = kmx_p11_session_get(handle);
	if (session == NULL)
		KMX_UNLOCK_RETURN(CKR_SESSION_HANDLE_INVALID);
	slot = kmx_p11_slot_get(session->slot);
	if (!kmx_p11_slot_present(slot))
		KMX_UNLOCK_RETURN(CKR_DEVICE_REMOVED);
	m = kmx_p11_mechanism(mech->mechanism);
	if (m == NULL || !(m->flags & CKF_GENERATE_KEY_PAIR) || !kmx_p11_slot_offers(slot, m))
		KMX_UNLOCK_RETURN(CKR_MECHANISM_INVALID);
	if (mech->pParameter != NULL || mech->ulParameterLen != 0)
		KMX_UNLOCK_RETURN(CKR_MECHANISM_PARAM_INVALID);
	if (!(session->flags & CKF_RW_SESSION))
		KMX_UNLOCK_RETURN(CKR_SESSION_READ_ONLY);
	gen.key_type = m->key_type;
	rv = kmx_p11_gen_template(&gen, CKO_PUBLIC_KEY, pub_templ, pub_count);
	if (rv == CKR_OK)
		rv = kmx_p11_gen_template(&gen, CKO_PRIVATE_KEY, priv_templ, priv_count);
	label_bytes = g_steal_pointer(&gen.label);
	if (rv == CKR_OK)
		rv = kmx_p11_gen_algorithm(&gen, &algorithm, most);
	if (rv != CKR_OK)
		KMX_UNLOCK_RETURN(rv);
	/* a key size or curve this device does not make (a TPM's RSA 4096) */
	if (!kmx_p11_slot_makes(slot, algorithm, 0))
		KMX_UNLOCK_RETURN(CKR_ATTRIBUTE_VALUE_INVALID);
	if (slot->locked)
		KMX_UNLOCK_RETURN(CKR_USER_NOT_LOGGED_IN);
	device = g_strdup(slot->path);
	pthread_mutex_unlock(&lock);

	label = label_bytes != NULL
		    ? g_strndup(g_bytes_get_data(label_bytes, NULL), g_bytes_get_size(label_bytes))
		    : g_strdup("");
	reply = kmx_p11_bus_call(device,
				 KMX_DEVICE_IFACE,
				 "GenerateKey",
				 g_variant_new("(ssa{sv})", algorithm, label, NULL),
				 G_VARIANT_TYPE("(o)"),
				 KMX_P11_TIMEOUT_NONE,
				 &error);
	if (reply == NULL) {
		rv = kmx_p11_rv_from_error(error, CKR_ATTRIBUTE_VALUE_INVALID);
		/* NotSupported: the device cannot make that key after all */
		if (rv == CKR_KEY_FUNCTION_NOT_PERMITTED)
			return CKR_MECHANISM_INVALID;
		return rv == CKR_KEY_HANDLE_INVALID ? CKR_DEVICE_REMOVED : rv;
	}
	g_variant_get(reply, "(o)", &key_path);

	/* the new objects, findable at once */
	if (!kmx_p11_refresh())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	KMX_LOCK_OR_RETURN();
	pub_handle = kmx_p11_key_handle(CKO_PUBLIC_KEY, key_path);
	priv_handle = kmx_p11_key_handle(CKO_PRIVATE_KEY, key_path);
	priv = priv_handle != 0 ? g_hash_table_lookup(objects, GSIZE_TO_POINTER(priv_handle))
				: NULL;
	if (pub_handle == 0 || priv == NULL) {
		/* keymuxd made it, but does not list it (yet): not ours to undo */
		g_debug("keymux: the new key %s is not listed", key_path);
		KMX_UNLOCK_RETURN(CKR_DEVICE_ERROR);
	}
	if (kmx_p11_gen_usage_matches(&gen, priv->key)) {
		*pub_out = pub_handle;
		*priv_out = priv_handle;
		KMX_UNLOCK_RETURN(CKR_OK);
	}
	pthread_mutex_unlock(&lock);
	g_clear_pointer(&reply, g_variant_unref);
	reply = kmx_p11_bus_call(key_path,
				 KMX_KEY_IFACE,
				 "Delete",
				 NULL,
				 NULL,
				 KMX_P11_TIMEOUT_SHORT,
				 &error);
	if (reply == NULL)
		g_debug("keymux: cannot delete %s again: %s", key_path, error->message);
	kmx_p11_refresh();
	return CKR_TEMPLATE_INCONSISTENT;
}

/* ---- the rest of PKCS#11: not what keymux does ---- */

#define KMX_NOT_SUPPORTED(name, args)                                                              \
	static CK_RV kmx_##name args                                                               \
	{                                                                                          \
		return kmx_p11_ready() ? CKR_FUNCTION_NOT_SUPPORTED                                \
				       : CKR_CRYPTOKI_NOT_INITIALIZED;                             \
	}

KMX_NOT_SUPPORTED(C_InitToken, (CK_SLOT_ID a, CK_UTF8CHAR_PTR b, CK_ULONG c, CK_UTF8CHAR_PTR d))
KMX_NOT_SUPPORTED(C_InitPIN, (CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c))
KMX_NOT_SUPPORTED(C_GetOperationState, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c))
KMX_NOT_SUPPORTED(
    C_SetOperationState,
    (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_OBJECT_HANDLE d, CK_OBJECT_HANDLE e))
KMX_NOT_SUPPORTED(C_CreateObject,
		  (CK_SESSION_HANDLE a, CK_ATTRIBUTE_PTR b, CK_ULONG c, CK_OBJECT_HANDLE_PTR d))
KMX_NOT_SUPPORTED(C_CopyObject,
		  (CK_SESSION_HANDLE a,
		   CK_OBJECT_HANDLE b,
		   CK_ATTRIBUTE_PTR c,
		   CK_ULONG d,
		   CK_OBJECT_HANDLE_PTR e))
KMX_NOT_SUPPORTED(C_SetAttributeValue,
		  (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c, CK_ULONG d))
KMX_NOT_SUPPORTED(C_EncryptInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c))
KMX_NOT_SUPPORTED(C_Encrypt,
		  (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
KMX_NOT_SUPPORTED(C_EncryptUpdate,
		  (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
KMX_NOT_SUPPORTED(C_EncryptFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c))
KMX_NOT_SUPPORTED(C_DigestInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b))
KMX_NOT_SUPPORTED(C_Digest,
		  (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
KMX_NOT_SUPPORTED(C_DigestUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c))
KMX_NOT_SUPPORTED(C_DigestKey, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b))
KMX_NOT_SUPPORTED(C_DigestFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c))
KMX_NOT_SUPPORTED(C_SignRecoverInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c))
KMX_NOT_SUPPORTED(C_SignRecover,
		  (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
KMX_NOT_SUPPORTED(C_VerifyInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c))
KMX_NOT_SUPPORTED(C_Verify,
		  (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG e))
KMX_NOT_SUPPORTED(C_VerifyUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c))
KMX_NOT_SUPPORTED(C_VerifyFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c))
KMX_NOT_SUPPORTED(C_VerifyRecoverInit,
		  (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c))
KMX_NOT_SUPPORTED(C_VerifyRecover,
		  (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
KMX_NOT_SUPPORTED(C_DigestEncryptUpdate,
		  (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
KMX_NOT_SUPPORTED(C_DecryptDigestUpdate,
		  (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
KMX_NOT_SUPPORTED(C_SignEncryptUpdate,
		  (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
KMX_NOT_SUPPORTED(C_DecryptVerifyUpdate,
		  (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
KMX_NOT_SUPPORTED(C_GenerateKey,
		  (CK_SESSION_HANDLE a,
		   CK_MECHANISM_PTR b,
		   CK_ATTRIBUTE_PTR c,
		   CK_ULONG d,
		   CK_OBJECT_HANDLE_PTR e))
KMX_NOT_SUPPORTED(C_WrapKey,
		  (CK_SESSION_HANDLE a,
		   CK_MECHANISM_PTR b,
		   CK_OBJECT_HANDLE c,
		   CK_OBJECT_HANDLE d,
		   CK_BYTE_PTR e,
		   CK_ULONG_PTR f))
KMX_NOT_SUPPORTED(C_UnwrapKey,
		  (CK_SESSION_HANDLE a,
		   CK_MECHANISM_PTR b,
		   CK_OBJECT_HANDLE c,
		   CK_BYTE_PTR d,
		   CK_ULONG e,
		   CK_ATTRIBUTE_PTR f,
		   CK_ULONG g,
		   CK_OBJECT_HANDLE_PTR h))
static CK_RV
kmx_C_SeedRandom(CK_SESSION_HANDLE handle, CK_BYTE_PTR seed, CK_ULONG len)
{
	KMX_LOCK_OR_RETURN();
	if (kmx_p11_session_get(handle) == NULL)
		KMX_UNLOCK_RETURN(CKR_SESSION_HANDLE_INVALID);
	KMX_UNLOCK_RETURN(CKR_RANDOM_SEED_NOT_SUPPORTED);
}

/* libcrypto's DRBG, seeded by the kernel: no key of keymux is involved */
static CK_RV
kmx_C_GenerateRandom(CK_SESSION_HANDLE handle, CK_BYTE_PTR out, CK_ULONG len)
{
	if (out == NULL && len != 0)
		return CKR_ARGUMENTS_BAD;
	if (len > INT_MAX)
		return CKR_DATA_LEN_RANGE;
	KMX_LOCK_OR_RETURN();
	if (kmx_p11_session_get(handle) == NULL)
		KMX_UNLOCK_RETURN(CKR_SESSION_HANDLE_INVALID);
	pthread_mutex_unlock(&lock);
	return len == 0 || RAND_bytes(out, (int)len) == 1 ? CKR_OK : CKR_FUNCTION_FAILED;
}

static CK_RV
kmx_C_GetFunctionStatus(CK_SESSION_HANDLE handle)
{
	return kmx_p11_ready() ? CKR_FUNCTION_NOT_PARALLEL : CKR_CRYPTOKI_NOT_INITIALIZED;
}

static CK_RV
kmx_C_CancelFunction(CK_SESSION_HANDLE handle)
{
	return kmx_p11_ready() ? CKR_FUNCTION_NOT_PARALLEL : CKR_CRYPTOKI_NOT_INITIALIZED;
}

static CK_FUNCTION_LIST kmx_p11_functions = {
    .version = {CRYPTOKI_VERSION_MAJOR, CRYPTOKI_VERSION_MINOR},
#define F(name) .name = kmx_##name
    F(C_Initialize),
    F(C_Finalize),
    F(C_GetInfo),
    .C_GetFunctionList = C_GetFunctionList,
    F(C_GetSlotList),
    F(C_GetSlotInfo),
    F(C_GetTokenInfo),
    F(C_GetMechanismList),
    F(C_GetMechanismInfo),
    F(C_InitToken),
    F(C_InitPIN),
    F(C_SetPIN),
    F(C_OpenSession),
    F(C_CloseSession),
    F(C_CloseAllSessions),
    F(C_GetSessionInfo),
    F(C_GetOperationState),
    F(C_SetOperationState),
    F(C_Login),
    F(C_Logout),
    F(C_CreateObject),
    F(C_CopyObject),
    F(C_DestroyObject),
    F(C_GetObjectSize),
    F(C_GetAttributeValue),
    F(C_SetAttributeValue),
    F(C_FindObjectsInit),
    F(C_FindObjects),
    F(C_FindObjectsFinal),
    F(C_EncryptInit),
    F(C_Encrypt),
    F(C_EncryptUpdate),
    F(C_EncryptFinal),
    F(C_DecryptInit),
    F(C_Decrypt),
    F(C_DecryptUpdate),
    F(C_DecryptFinal),
    F(C_DigestInit),
    F(C_Digest),
    F(C_DigestUpdate),
    F(C_DigestKey),
    F(C_DigestFinal),
    F(C_SignInit),
    F(C_Sign),
    F(C_SignUpdate),
    F(C_SignFinal),
    F(C_SignRecoverInit),
    F(C_SignRecover),
    F(C_VerifyInit),
    F(C_Verify),
    F(C_VerifyUpdate),
    F(C_VerifyFinal),
    F(C_VerifyRecoverInit),
    F(C_VerifyRecover),
    F(C_DigestEncryptUpdate),
    F(C_DecryptDigestUpdate),
    F(C_SignEncryptUpdate),
    F(C_DecryptVerifyUpdate),
    F(C_GenerateKey),
    F(C_GenerateKeyPair),
    F(C_WrapKey),
    F(C_UnwrapKey),
    F(C_DeriveKey),
    F(C_SeedRandom),
    F(C_GenerateRandom),
    F(C_GetFunctionStatus),
    F(C_CancelFunction),
    F(C_WaitForSlotEvent),
#undef F
};

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: OpenPGP cards over PC/SC (pcsclite)
 *
 * A watcher thread of the backend's own blocks in SCardGetStatusChange on
 * every reader and on the \\?PnP?\Notification pseudo-reader (readers that
 * come and go), probes each card that appears and reports it with
 * kmx_backend_device_present(), and a card that leaves with
 * kmx_backend_device_absent().  No pcscd (SCARD_E_NO_SERVICE), or a pcscd
 * that stopped: no cards now, and the watcher tries again every second, so
 * cards come back by themselves when pcscd does.  stop() wakes it with
 * SCardCancel.
 */
#include "config.h"

#include <string.h>
#include <winscard.h>

#include "kmx-card-backend.h"
#include "kmx-card-device.h"
#include "kmx-context.h"
#include "kmx-error.h"

#define KMX_CARD_PNP_READER "\\\\?PnP?\\Notification"
/* how long the watcher waits for pcscd before it asks again, and the
 * longest it blocks without looking at the stop flag */
#define KMX_CARD_RETRY_MS    1000
#define KMX_CARD_MAX_READERS 16
/* how long a card may take to answer one command ([card] timeout-ms) */
#define KMX_CARD_TIMEOUT_MS_DEFAULT 30000

typedef struct {
	char *name;
	DWORD state;	       /* the last event state */
	KmxCardDevice *device; /* the card in it, or NULL */
	gboolean ignored;      /* a card we cannot use: until it leaves */
} KmxCardReader;

struct _KmxCardBackend {
	KmxBackend parent_instance;
	GThread *watcher;
	gint stopping;
	GMutex mutex; /* ctx, has_ctx, and the sleep below */
	GCond cond;
	SCARDCONTEXT ctx;
	gboolean has_ctx;
	GPtrArray *readers; /* KmxCardReader, the watcher's */
	guint timeout_ms;
};

G_DEFINE_TYPE(KmxCardBackend, kmx_card_backend, KMX_TYPE_BACKEND)

static void
kmx_card_reader_free(KmxCardReader *r)
{
	g_clear_object(&r->device);
	g_free(r->name);
	g_free(r);
}

static void
kmx_card_backend_card_gone(KmxCardBackend *self, KmxCardReader *r)
{
	if (r->device == NULL)
		return;
	g_debug("card %s left %s", kmx_device_get_id(KMX_DEVICE(r->device)), r->name);
	kmx_card_device_set_gone(r->device);
	kmx_backend_device_absent(KMX_BACKEND(self), kmx_device_get_id(KMX_DEVICE(r->device)));
	g_clear_object(&r->device);
}

static void
kmx_card_backend_card_here(KmxCardBackend *self, KmxCardReader *r)
{
	g_autoptr(GError) error = NULL;
	KmxCardDevice *device;

	if (r->device != NULL || r->ignored)
		return;
	device = kmx_card_device_probe(kmx_backend_get_name(KMX_BACKEND(self)),
				       r->name,
				       self->timeout_ms,
				       &error);
	if (device == NULL) {
		/* not an OpenPGP card, or one that answers nonsense: leave it
		 * alone until it is taken out */
		g_info("the card in %s is not used: %s", r->name, error->message);
		r->ignored = TRUE;
		return;
	}
	g_debug("card %s in %s", kmx_device_get_id(KMX_DEVICE(device)), r->name);
	r->device = device;
	kmx_backend_device_present(KMX_BACKEND(self), KMX_DEVICE(device));
}

/* pcscd went away (or was never there): every card is gone */
static void
kmx_card_backend_lost_service(KmxCardBackend *self)
{
	for (guint i = 0; i < self->readers->len; i++)
		kmx_card_backend_card_gone(self, g_ptr_array_index(self->readers, i));
	g_ptr_array_set_size(self->readers, 0);
	g_mutex_lock(&self->mutex);
	if (self->has_ctx) {
		SCardReleaseContext(self->ctx);
		self->has_ctx = FALSE;
	}
	g_mutex_unlock(&self->mutex);
}

static KmxCardReader *
kmx_card_backend_find_reader(KmxCardBackend *self, const char *name)
{
	for (guint i = 0; i < self->readers->len; i++) {
		KmxCardReader *r = g_ptr_array_index(self->readers, i);
		if (g_strcmp0(r->name, name) == 0)
			return r;
	}
	return NULL;
}

/* the readers pcscd has now; a reader that went, went with its card */
static LONG
kmx_card_backend_list_readers(KmxCardBackend *self)
{
	g_autoptr(GPtrArray) now = g_ptr_array_new();
	g_autofree char *buf = NULL;
	DWORD len = 0;
	LONG rc;

	rc = SCardListReaders(self->ctx, NULL, NULL, &len);
	if (rc == SCARD_S_SUCCESS && len > 0 && len < 65536) {
		buf = g_malloc0(len + 1);
		rc = SCardListReaders(self->ctx, NULL, buf, &len);
	}
	if (rc == SCARD_E_NO_READERS_AVAILABLE)
		rc = SCARD_S_SUCCESS;
	else if (rc != SCARD_S_SUCCESS)
		return rc;
	/* a multi-string: names, each NUL-terminated, then a NUL */
	for (const char *p = buf; buf != NULL && p < buf + len && *p != '\0'; p += strlen(p) + 1) {
		if (now->len < KMX_CARD_MAX_READERS)
			g_ptr_array_add(now, (gpointer)p);
	}
	for (guint i = self->readers->len; i > 0; i--) {
		KmxCardReader *r = g_ptr_array_index(self->readers, i - 1);
		gboolean still = FALSE;
		for (guint j = 0; j < now->len; j++)
			still = still || g_strcmp0(g_ptr_array_index(now, j), r->name) == 0;
		if (!still) {
			kmx_card_backend_card_gone(self, r);
			g_ptr_array_remove_index(self->readers, i - 1);
		}
	}
	for (guint j = 0; j < now->len; j++) {
		const char *name = g_ptr_array_index(now, j);
		if (kmx_card_backend_find_reader(self, name) == NULL) {
			KmxCardReader *r = g_new0(KmxCardReader, 1);
			r->name = g_strdup(name);
			r->state = SCARD_STATE_UNAWARE;
			g_ptr_array_add(self->readers, r);
		}
	}
	return SCARD_S_SUCCESS;
}

/* sleep, unless stop() wakes us */
static void
kmx_card_backend_pause(KmxCardBackend *self, guint ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

	g_mutex_lock(&self->mutex);
	while (!g_atomic_int_get(&self->stopping)) {
		if (!g_cond_wait_until(&self->cond, &self->mutex, end))
			break;
	}
	g_mutex_unlock(&self->mutex);
}

/* one round: wait for a change of any reader (or of the reader list) and
 * apply it */
static LONG
kmx_card_backend_watch_once(KmxCardBackend *self, DWORD *pnp_state)
{
	SCARD_READERSTATE states[KMX_CARD_MAX_READERS + 1];
	guint n = 0;
	LONG rc;

	rc = kmx_card_backend_list_readers(self);
	if (rc != SCARD_S_SUCCESS)
		return rc;
	memset(states, 0, sizeof(states));
	for (guint i = 0; i < self->readers->len; i++) {
		KmxCardReader *r = g_ptr_array_index(self->readers, i);
		states[n].szReader = r->name;
		states[n].dwCurrentState = r->state;
		n++;
	}
	states[n].szReader = KMX_CARD_PNP_READER;
	states[n].dwCurrentState = *pnp_state;
	n++;
	rc = SCardGetStatusChange(self->ctx, KMX_CARD_RETRY_MS, states, n);
	if (rc == SCARD_E_TIMEOUT)
		return SCARD_S_SUCCESS;
	if (rc != SCARD_S_SUCCESS)
		return rc;
	*pnp_state = states[n - 1].dwEventState & ~SCARD_STATE_CHANGED;
	for (guint i = 0; i + 1 < n; i++) {
		KmxCardReader *r = g_ptr_array_index(self->readers, i);
		DWORD ev = states[i].dwEventState;

		r->state = ev & ~SCARD_STATE_CHANGED;
		if ((ev & SCARD_STATE_PRESENT) && !(ev & SCARD_STATE_MUTE)) {
			kmx_card_backend_card_here(self, r);
		} else if (ev &
			   (SCARD_STATE_EMPTY | SCARD_STATE_UNAVAILABLE | SCARD_STATE_UNKNOWN)) {
			kmx_card_backend_card_gone(self, r);
			r->ignored = FALSE;
		}
	}
	return SCARD_S_SUCCESS;
}

static gpointer
kmx_card_backend_watch(gpointer data)
{
	KmxCardBackend *self = data;
	DWORD pnp_state = SCARD_STATE_UNAWARE;
	gboolean said_no_service = FALSE;

	while (!g_atomic_int_get(&self->stopping)) {
		LONG rc;

		if (!self->has_ctx) {
			SCARDCONTEXT ctx = 0;
			rc = SCardEstablishContext(SCARD_SCOPE_USER, NULL, NULL, &ctx);
			if (rc != SCARD_S_SUCCESS) {
				if (!said_no_service)
					g_debug("no pcscd (%s): no cards for now",
						pcsc_stringify_error(rc));
				said_no_service = TRUE;
				kmx_card_backend_pause(self, KMX_CARD_RETRY_MS);
				continue;
			}
			g_mutex_lock(&self->mutex);
			self->ctx = ctx;
			self->has_ctx = TRUE;
			g_mutex_unlock(&self->mutex);
			said_no_service = FALSE;
			pnp_state = SCARD_STATE_UNAWARE;
			/* stop() may have come between the check and now */
			if (g_atomic_int_get(&self->stopping))
				break;
		}
		rc = kmx_card_backend_watch_once(self, &pnp_state);
		if (rc == SCARD_S_SUCCESS || rc == SCARD_E_CANCELLED)
			continue;
		/* pcscd stopped or restarted: start over with a new context */
		g_debug("the PC/SC watch ended: %s", pcsc_stringify_error(rc));
		kmx_card_backend_lost_service(self);
		kmx_card_backend_pause(self,
				       rc == SCARD_E_NO_SERVICE || rc == SCARD_E_SERVICE_STOPPED
					   ? KMX_CARD_RETRY_MS
					   : KMX_CARD_RETRY_MS / 4);
	}
	kmx_card_backend_lost_service(self);
	return NULL;
}

static gboolean
kmx_card_backend_start(KmxBackend *backend, GError **error)
{
	KmxCardBackend *self = KMX_CARD_BACKEND(backend);
	KmxContext *context = kmx_backend_get_context(backend);

	self->timeout_ms = (guint)CLAMP(
	    kmx_context_get_int(context, "card", "timeout-ms", KMX_CARD_TIMEOUT_MS_DEFAULT),
	    100,
	    600000);
	self->watcher = g_thread_try_new("kmx-card-watch", kmx_card_backend_watch, self, error);
	return self->watcher != NULL;
}

static void
kmx_card_backend_stop(KmxBackend *backend)
{
	KmxCardBackend *self = KMX_CARD_BACKEND(backend);

	if (self->watcher == NULL)
		return;
	g_mutex_lock(&self->mutex);
	g_atomic_int_set(&self->stopping, TRUE);
	if (self->has_ctx)
		SCardCancel(self->ctx);
	g_cond_broadcast(&self->cond);
	g_mutex_unlock(&self->mutex);
	g_clear_pointer(&self->watcher, g_thread_join);
}

static void
kmx_card_backend_finalize(GObject *object)
{
	KmxCardBackend *self = KMX_CARD_BACKEND(object);

	g_ptr_array_unref(self->readers);
	g_mutex_clear(&self->mutex);
	g_cond_clear(&self->cond);
	G_OBJECT_CLASS(kmx_card_backend_parent_class)->finalize(object);
}

static void
kmx_card_backend_class_init(KmxCardBackendClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = kmx_card_backend_finalize;
	KMX_BACKEND_CLASS(klass)->start = kmx_card_backend_start;
	KMX_BACKEND_CLASS(klass)->stop = kmx_card_backend_stop;
}

static void
kmx_card_backend_init(KmxCardBackend *self)
{
	g_mutex_init(&self->mutex);
	g_cond_init(&self->cond);
	self->readers = g_ptr_array_new_with_free_func((GDestroyNotify)kmx_card_reader_free);
}

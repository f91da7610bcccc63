/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: a card's PC/SC connection, with a deadline on every exchange
 *
 * SCardTransmit() waits for pcscd's answer with no limit, and pcscd waits
 * for the reader's: a card (or a reader driver) that stops answering would
 * hold the device's executor, and the caller, for ever.  So each APDU goes
 * to a thread of the connection's own, and the executor waits for it with
 * a deadline.  Past the deadline the exchange is abandoned: the caller gets
 * SCARD_E_TIMEOUT, and so does every later call until the card answers
 * after all (or is pulled out, which ends the wait in pcscd); the thread
 * then ends the transaction that was left open and says the connection
 * recovered, so the device starts again from a fresh state.  libpcsclite
 * holds its context's lock during a transmit, so nothing else may touch
 * the connection meanwhile: kmx_card_io_is_stuck() says when.
 *
 * The buffers may hold a PIN: they are wiped after each exchange.
 */
#include "config.h"

#include <string.h>

#include "kmx-card-io.h"
#include "kmx-secret.h"

/* the longest command or response APDU keymux exchanges: 4 KiB of data
 * with an extended header and Le, or the status word */
#define KMX_CARD_IO_MAX (4096 + 16)

struct _KmxCardIo {
	GMutex mutex;
	GCond cond;
	GThread *thread;
	SCARDCONTEXT ctx;
	SCARDHANDLE handle;

	/* under the mutex */
	gboolean busy;	    /* a job is in the thread */
	gboolean done;	    /* and its answer is there */
	gboolean abandoned; /* its caller gave up on it */
	gboolean recovered; /* an abandoned job came back */
	gboolean orphaned;  /* the device is gone: the thread cleans up */
	gboolean quit;
	const SCARD_IO_REQUEST *pci;
	gsize apdu_len;
	DWORD resp_len;
	LONG rc;
	guint8 apdu[KMX_CARD_IO_MAX];
	guint8 resp[KMX_CARD_IO_MAX];
};

static void
kmx_card_io_release(KmxCardIo *self)
{
	SCardDisconnect(self->handle, SCARD_LEAVE_CARD);
	SCardReleaseContext(self->ctx);
	kmx_secure_zero(self->apdu, sizeof(self->apdu));
	kmx_secure_zero(self->resp, sizeof(self->resp));
	g_mutex_clear(&self->mutex);
	g_cond_clear(&self->cond);
	g_free(self);
}

static gpointer
kmx_card_io_thread(gpointer data)
{
	KmxCardIo *self = data;

	g_mutex_lock(&self->mutex);
	while (!self->quit) {
		DWORD resp_len = sizeof(self->resp);
		LONG rc;

		if (!self->busy || self->done) {
			g_cond_wait(&self->cond, &self->mutex);
			continue;
		}
		g_mutex_unlock(&self->mutex);
		rc = SCardTransmit(self->handle,
				   self->pci,
				   self->apdu,
				   (DWORD)self->apdu_len,
				   NULL,
				   self->resp,
				   &resp_len);
		g_mutex_lock(&self->mutex);
		self->rc = rc;
		self->resp_len = resp_len;
		self->done = TRUE;
		if (self->abandoned) {
			/* nobody reads this answer: close what its caller left
			 * open, and say that the card answers again */
			kmx_secure_zero(self->apdu, sizeof(self->apdu));
			kmx_secure_zero(self->resp, sizeof(self->resp));
			g_mutex_unlock(&self->mutex);
			SCardEndTransaction(self->handle, SCARD_LEAVE_CARD);
			g_mutex_lock(&self->mutex);
			self->abandoned = FALSE;
			self->busy = FALSE;
			self->done = FALSE;
			self->recovered = TRUE;
			if (self->orphaned)
				self->quit = TRUE;
		}
		g_cond_broadcast(&self->cond);
	}
	if (self->orphaned) {
		g_mutex_unlock(&self->mutex);
		kmx_card_io_release(self);
		return NULL;
	}
	g_mutex_unlock(&self->mutex);
	return NULL;
}

/**
 * kmx_card_io_new:
 * @ctx: (transfer full): the context
 * @handle: (transfer full): the card's connection in @ctx
 *
 * Returns: (transfer full): the connection, which releases @handle and
 *   @ctx when it is freed (or, when the card still has not answered, once
 *   it does)
 */
KmxCardIo *
kmx_card_io_new(SCARDCONTEXT ctx, SCARDHANDLE handle)
{
	KmxCardIo *self = g_new0(KmxCardIo, 1);

	g_mutex_init(&self->mutex);
	g_cond_init(&self->cond);
	self->ctx = ctx;
	self->handle = handle;
	self->thread = g_thread_new("kmx-card-io", kmx_card_io_thread, self);
	return self;
}

/**
 * kmx_card_io_free:
 *
 * Disconnects and releases the context now, or hands that to the thread
 * when it still waits for the card: this never blocks on the card.
 *
 * Returns: %TRUE when the context is released now, %FALSE when the thread
 *   releases it once the card answers
 */
gboolean
kmx_card_io_free(KmxCardIo *self)
{
	GThread *thread;

	if (self == NULL)
		return TRUE;
	g_mutex_lock(&self->mutex);
	thread = g_steal_pointer(&self->thread);
	if (self->busy && self->abandoned) {
		self->orphaned = TRUE;
		g_mutex_unlock(&self->mutex);
		g_thread_unref(thread);
		return FALSE;
	}
	self->quit = TRUE;
	g_cond_broadcast(&self->cond);
	g_mutex_unlock(&self->mutex);
	g_thread_join(thread);
	kmx_card_io_release(self);
	return TRUE;
}

/**
 * kmx_card_io_is_stuck:
 * @recovered: (out): set when an exchange abandoned earlier has ended
 *   since the last call: the card's state is unknown
 *
 * Returns: whether an abandoned exchange still waits for the card; nothing
 *   may touch the connection then
 */
gboolean
kmx_card_io_is_stuck(KmxCardIo *self, gboolean *recovered)
{
	gboolean stuck;

	g_mutex_lock(&self->mutex);
	stuck = self->busy;
	if (self->recovered) {
		*recovered = TRUE;
		self->recovered = FALSE;
	}
	g_mutex_unlock(&self->mutex);
	return stuck;
}

/**
 * kmx_card_io_transmit:
 * @out: the response's buffer, *@out_len bytes
 * @out_len: (inout): the buffer's size, then the response's length
 * @timeout_ms: how long the card may take
 *
 * Returns: SCardTransmit()'s result, or %SCARD_E_TIMEOUT when the card did
 *   not answer in time (or an earlier exchange still waits)
 */
LONG
kmx_card_io_transmit(KmxCardIo *self,
		     const SCARD_IO_REQUEST *pci,
		     const guint8 *apdu,
		     gsize apdu_len,
		     guint8 *out,
		     gsize *out_len,
		     guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * G_TIME_SPAN_MILLISECOND;
	LONG rc;

	g_return_val_if_fail(apdu_len <= sizeof(self->apdu), SCARD_E_INVALID_PARAMETER);
	g_mutex_lock(&self->mutex);
	if (self->busy) {
		g_mutex_unlock(&self->mutex);
		return SCARD_E_TIMEOUT;
	}
	memcpy(self->apdu, apdu, apdu_len);
	self->apdu_len = apdu_len;
	self->pci = pci;
	self->busy = TRUE;
	self->done = FALSE;
	g_cond_broadcast(&self->cond);
	while (!self->done) {
		if (!g_cond_wait_until(&self->cond, &self->mutex, deadline) && !self->done) {
			self->abandoned = TRUE;
			g_mutex_unlock(&self->mutex);
			return SCARD_E_TIMEOUT;
		}
	}
	rc = self->rc;
	if (rc == SCARD_S_SUCCESS) {
		if (self->resp_len > *out_len) {
			rc = SCARD_E_INSUFFICIENT_BUFFER;
		} else {
			memcpy(out, self->resp, self->resp_len);
			*out_len = self->resp_len;
		}
	}
	kmx_secure_zero(self->apdu, sizeof(self->apdu));
	kmx_secure_zero(self->resp, MIN((gsize)self->resp_len, sizeof(self->resp)));
	self->busy = FALSE;
	self->done = FALSE;
	g_mutex_unlock(&self->mutex);
	return rc;
}

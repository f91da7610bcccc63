/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: one OpenPGP card in a PC/SC reader
 *
 * The watcher thread probes a card that appeared (kmx_card_device_probe():
 * connect in shared mode, SELECT, read the application data and the public
 * keys) and hands the device to the core; from then on the connection is
 * used on the device's serial executor only.  The card stays connected in
 * shared mode while it is in the reader (pcscd powers off a card nobody
 * holds, and it forgets its PINs), and every VERIFY with the operation it
 * allows is one transaction, ended right after it, so other PC/SC clients
 * (gpg's scdaemon with pcsc-shared, a browser) keep working beside keymux.
 *
 * Every byte from the card is hostile: responses are parsed with the
 * bounded TLV reader (kmx-card-tlv.c), lengths are checked before each
 * copy, and the whole exchange is capped.
 */
#include "config.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <winscard.h>

#include "kmx-card-device.h"
#include "kmx-card-import.h"
#include "kmx-card-io.h"
#include "kmx-card-key.h"
#include "kmx-card-tlv.h"
#include "kmx-crypto.h"
#include "kmx-error.h"

/* the most a response may add up to with GET RESPONSE (an RSA-4096 key's
 * 7F49 is about 530 bytes, the application data a few hundred) */
#define KMX_CARD_RESPONSE_MAX 4096
#define KMX_CARD_ATTR_MAX     16
#define KMX_CARD_FPR_SIZE     20

static const guint8 kmx_card_aid_prefix[] = {0xD2, 0x76, 0x00, 0x01, 0x24, 0x01};
static const guint8 kmx_card_oid_p256[] = {0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07};
static const guint8 kmx_card_oid_p384[] = {0x2B, 0x81, 0x04, 0x00, 0x22};
static const guint8 kmx_card_oid_ed25519[] = {0x2B, 0x06, 0x01, 0x04, 0x01, 0xDA, 0x47, 0x0F, 0x01};
static const guint8 kmx_card_oid_cv25519[] =
    {0x2B, 0x06, 0x01, 0x04, 0x01, 0x97, 0x55, 0x01, 0x05, 0x01};

/* the PIN references of VERIFY, and their index in verified[] */
enum { KMX_CARD_PW1_SIGN, KMX_CARD_PW1, KMX_CARD_PW3, KMX_CARD_PW_COUNT };
static const guint8 kmx_card_pw_ref[] = {0x81, 0x82, 0x83};

struct _KmxCardDevice {
	KmxDevice parent_instance;
	char *reader;
	gint gone; /* atomic: set by the watcher when the card left */

	/* the connection; the executor's once the device is published */
	SCARDCONTEXT ctx;
	SCARDHANDLE handle;
	DWORD protocol;
	gboolean has_ctx;
	gboolean has_handle;
	KmxCardIo *io;	   /* owns ctx and handle once it is there */
	guint timeout_ms;  /* how long the card may take to answer */
	gboolean extended; /* extended Lc/Le (historical bytes) */
	gsize max_command; /* the longest command data (7F66) */
	gsize max_response;
	gboolean need_select;
	gboolean reset_seen;
	gboolean verified[KMX_CARD_PW_COUNT];

	/* what the application data said */
	guint8 aid[16];
	guint8 attrs[KMX_CARD_SLOT_COUNT][KMX_CARD_ATTR_MAX];
	gsize attrs_len[KMX_CARD_SLOT_COUNT];
	guint8 fprs[KMX_CARD_SLOT_COUNT][KMX_CARD_FPR_SIZE];
	guint8 pw_status[7];
	guint32 sig_counter;
	char *holder;
	/* the id of the key each slot holds: the executor's */
	char *slot_keys[KMX_CARD_SLOT_COUNT];
};

G_DEFINE_TYPE(KmxCardDevice, kmx_card_device, KMX_TYPE_DEVICE)

/* ---- slots ------------------------------------------------------------------- */

static const char *const kmx_card_slot_names[] = {"sig", "dec", "aut"};
/* the control reference templates of GENERATE ASYMMETRIC KEY PAIR */
static const guint8 kmx_card_slot_crt[] = {0xB6, 0xB8, 0xA4};

const char *
kmx_card_slot_to_string(KmxCardSlot slot)
{
	g_return_val_if_fail(slot < KMX_CARD_SLOT_COUNT, NULL);
	return kmx_card_slot_names[slot];
}

gboolean
kmx_card_slot_from_string(const char *name, KmxCardSlot *slot)
{
	for (guint i = 0; i < KMX_CARD_SLOT_COUNT; i++) {
		if (g_strcmp0(name, kmx_card_slot_names[i]) == 0) {
			*slot = (KmxCardSlot)i;
			return TRUE;
		}
	}
	return FALSE;
}

/* ---- errors ------------------------------------------------------------------ */

static gboolean
kmx_card_pcsc_error(GError **error, LONG rc, const char *what)
{
	int code;

	switch (rc) {
	case SCARD_W_REMOVED_CARD:
	case SCARD_E_NO_SMARTCARD:
	case SCARD_E_READER_UNAVAILABLE:
	case SCARD_E_NO_SERVICE:
	case SCARD_E_SERVICE_STOPPED:
	case SCARD_E_INVALID_HANDLE:
	case SCARD_E_UNKNOWN_READER:
	case SCARD_W_UNPOWERED_CARD:
	case SCARD_W_UNRESPONSIVE_CARD:
	case SCARD_E_NO_READERS_AVAILABLE:
		code = KMX_ERROR_UNAVAILABLE;
		break;
	case SCARD_E_CANCELLED:
		code = KMX_ERROR_CANCELLED;
		break;
	default:
		code = KMX_ERROR_FAILED;
	}
	g_set_error(error, KMX_ERROR, code, "%s: %s", what, pcsc_stringify_error(rc));
	return FALSE;
}

static gboolean
kmx_card_sw_error(GError **error, guint sw, const char *what)
{
	int code = KMX_ERROR_FAILED;

	if (sw == 0x6D00 || sw == 0x6E00 || sw == 0x6A81)
		code = KMX_ERROR_NOT_SUPPORTED;
	else if (sw == 0x6982)
		code = KMX_ERROR_LOCKED;
	else if (sw == 0x6983)
		code = KMX_ERROR_BLOCKED;
	g_set_error(error, KMX_ERROR, code, "%s: the card answered %04X", what, sw);
	return FALSE;
}

/* ---- transport --------------------------------------------------------------- */

/* an exchange that timed out still waits in pcscd: nothing may touch the
 * connection; one that came back leaves the card in an unknown state */
static gboolean
kmx_card_device_stuck(KmxCardDevice *self)
{
	gboolean recovered = FALSE;
	gboolean stuck = self->io != NULL && kmx_card_io_is_stuck(self->io, &recovered);

	if (recovered) {
		self->need_select = TRUE;
		memset(self->verified, 0, sizeof(self->verified));
	}
	return stuck;
}

static gboolean
kmx_card_device_check_present(KmxCardDevice *self, GError **error)
{
	if (g_atomic_int_get(&self->gone) || !self->has_handle) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_UNAVAILABLE,
			    "card %s was removed",
			    kmx_device_get_id(KMX_DEVICE(self)));
		return FALSE;
	}
	if (kmx_card_device_stuck(self)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_UNAVAILABLE,
			    "card %s still does not answer: take it out and put it back",
			    kmx_device_get_id(KMX_DEVICE(self)));
		return FALSE;
	}
	return TRUE;
}

/* the card was reset by another client (or by pcscd): it forgot its PINs
 * and its selected application */
static void
kmx_card_device_forget_state(KmxCardDevice *self)
{
	self->need_select = TRUE;
	memset(self->verified, 0, sizeof(self->verified));
}

static gboolean
kmx_card_device_reconnect(KmxCardDevice *self, GError **error)
{
	LONG rc = SCardReconnect(self->handle,
				 SCARD_SHARE_SHARED,
				 SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
				 SCARD_LEAVE_CARD,
				 &self->protocol);

	kmx_card_device_forget_state(self);
	if (rc != SCARD_S_SUCCESS)
		return kmx_card_pcsc_error(error, rc, "cannot reconnect to the card");
	return TRUE;
}

/* after a response that makes no sense: is the card still in the reader?
 * pcscd takes a few hundred milliseconds to see it gone */
static gboolean
kmx_card_device_still_there(KmxCardDevice *self)
{
	for (guint i = 0; i < 20; i++) {
		DWORD state = 0;
		DWORD protocol = 0;
		LONG rc;

		if (g_atomic_int_get(&self->gone) || kmx_card_device_stuck(self))
			return FALSE;
		rc = SCardStatus(self->handle, NULL, NULL, &state, &protocol, NULL, NULL);
		if (rc == SCARD_W_RESET_CARD)
			return TRUE;
		if (rc != SCARD_S_SUCCESS || !(state & SCARD_PRESENT))
			return FALSE;
		g_usleep(50 * 1000);
	}
	return TRUE;
}

/* one APDU as it is: @out gets the data, @sw the status */
static gboolean
kmx_card_device_transmit(KmxCardDevice *self,
			 const guint8 *apdu,
			 gsize apdu_len,
			 GByteArray *out,
			 guint *sw,
			 GError **error)
{
	guint8 buf[KMX_CARD_RESPONSE_MAX + 2];
	gsize len = sizeof(buf);
	const SCARD_IO_REQUEST *pci = self->protocol == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0
									  : SCARD_PCI_T1;
	/* a key pair takes a card far longer than a signature */
	guint timeout_ms = apdu[1] == 0x47 && apdu[2] == 0x80 ? self->timeout_ms * 4
							      : self->timeout_ms;
	LONG rc;

	if (self->io == NULL) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_UNAVAILABLE, "the card is not connected");
		return FALSE;
	}
	rc = kmx_card_io_transmit(self->io, pci, apdu, apdu_len, buf, &len, timeout_ms);
	if (rc == SCARD_E_TIMEOUT) {
		g_warning("card %s did not answer in %u ms (instruction %02X): given up",
			  kmx_device_get_id(KMX_DEVICE(self)),
			  timeout_ms,
			  apdu[1]);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_UNAVAILABLE,
			    "card %s does not answer (%u ms)",
			    kmx_device_get_id(KMX_DEVICE(self)),
			    timeout_ms);
		return FALSE;
	}
	if (rc == SCARD_W_RESET_CARD) {
		self->reset_seen = TRUE;
		kmx_card_device_reconnect(self, NULL);
	}
	if (rc != SCARD_S_SUCCESS)
		return kmx_card_pcsc_error(error, rc, "cannot talk to the card");
	if (len < 2) {
		/* a card pulled out in the middle of a command answers
		 * nothing before pcscd notices: tell that from garbage */
		if (!kmx_card_device_still_there(self)) {
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_UNAVAILABLE,
				    "card %s was removed during the operation",
				    kmx_device_get_id(KMX_DEVICE(self)));
			return FALSE;
		}
		g_message("card %s sent a malformed response (%lu bytes)",
			  kmx_device_get_id(KMX_DEVICE(self)),
			  (unsigned long)len);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "the card sent a malformed response (%lu bytes)",
			    (unsigned long)len);
		return FALSE;
	}
	if (out->len + (len - 2) > KMX_CARD_RESPONSE_MAX) {
		kmx_secure_zero(buf, sizeof(buf));
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "the card's response is longer than %u bytes",
			    KMX_CARD_RESPONSE_MAX);
		return FALSE;
	}
	g_byte_array_append(out, buf, (guint)(len - 2));
	*sw = ((guint)buf[len - 2] << 8) | buf[len - 1];
	kmx_secure_zero(buf, sizeof(buf));
	return TRUE;
}

/* the header and length fields of one command: extended when @extended
 * (Lc and Le on two bytes, Le = @le_max), else short (Le = 00: 256) */
static gsize
kmx_card_apdu_build(guint8 *apdu,
		    guint8 cla,
		    guint8 ins,
		    guint8 p1,
		    guint8 p2,
		    const guint8 *data,
		    gsize len,
		    gboolean le,
		    gboolean extended,
		    gsize le_max)
{
	gsize n = 0;

	apdu[n++] = cla;
	apdu[n++] = ins;
	apdu[n++] = p1;
	apdu[n++] = p2;
	if (extended) {
		if (len > 0 || le)
			apdu[n++] = 0x00;
		if (len > 0) {
			apdu[n++] = (guint8)(len >> 8);
			apdu[n++] = (guint8)len;
			memcpy(apdu + n, data, len);
			n += len;
		}
		if (le) {
			apdu[n++] = (guint8)(le_max >> 8);
			apdu[n++] = (guint8)le_max;
		}
		return n;
	}
	if (len > 0) {
		apdu[n++] = (guint8)len;
		memcpy(apdu + n, data, len);
		n += len;
	}
	if (le)
		apdu[n++] = 0x00;
	return n;
}

/**
 * kmx_card_device_apdu:
 * @data: (nullable): the command data, any length
 * @le: whether a response is expected
 * @out: (nullable): the response data, gathered over GET RESPONSE
 * @sw: (out): the final status word
 *
 * Both transport styles of OpenPGP cards: extended Lc/Le, one command for
 * up to the card's longest (7F66), when its historical bytes offer it;
 * otherwise short APDUs, with command chaining for long data.  Either way
 * `61 xx` is answered with GET RESPONSE and `6C xx` with the length asked
 * for.  The command buffer is wiped: it may hold a PIN.
 */
static gboolean
kmx_card_device_apdu(KmxCardDevice *self,
		     guint8 ins,
		     guint8 p1,
		     guint8 p2,
		     const guint8 *data,
		     gsize len,
		     gboolean le,
		     GByteArray *out,
		     guint *sw,
		     GError **error)
{
	g_autoptr(GByteArray) sink = out == NULL ? g_byte_array_new() : NULL;
	gboolean extended = self->extended && len <= self->max_command;
	gsize le_max = MIN(self->max_response, KMX_CARD_RESPONSE_MAX);
	gsize max_chunk = extended ? len : 255;
	guint8 apdu[4 + 3 + KMX_CARD_RESPONSE_MAX + 2];
	gsize off = 0;
	gsize n;

	if (len > KMX_CARD_RESPONSE_MAX) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_INVALID_ARGUMENT,
			    "%lu bytes are too many for the card",
			    (unsigned long)len);
		return FALSE;
	}
	if (out == NULL)
		out = sink;
	do {
		gsize chunk = MIN(len - off, max_chunk);
		gboolean last = off + chunk == len;

		n = kmx_card_apdu_build(apdu,
					last ? 0x00 : 0x10,
					ins,
					p1,
					p2,
					data + off,
					chunk,
					last && le,
					extended,
					le_max);
		if (!kmx_card_device_transmit(self, apdu, n, out, sw, error)) {
			kmx_secure_zero(apdu, sizeof(apdu));
			return FALSE;
		}
		off += chunk;
		if (!last && *sw != 0x9000) {
			kmx_secure_zero(apdu, sizeof(apdu));
			return TRUE;
		}
	} while (off < len);
	/* the card wants another Le: once (a short APDU's last byte) */
	if ((*sw & 0xFF00) == 0x6C00 && le && !extended) {
		apdu[n - 1] = (guint8)(*sw & 0xFF);
		g_byte_array_set_size(out, 0);
		if (!kmx_card_device_transmit(self, apdu, n, out, sw, error)) {
			kmx_secure_zero(apdu, sizeof(apdu));
			return FALSE;
		}
	}
	kmx_secure_zero(apdu, sizeof(apdu));
	/* more to come; the size cap in transmit bounds this loop */
	while ((*sw & 0xFF00) == 0x6100) {
		guint8 get_response[] = {0x00, 0xC0, 0x00, 0x00, (guint8)(*sw & 0xFF)};
		if (!kmx_card_device_transmit(self,
					      get_response,
					      sizeof(get_response),
					      out,
					      sw,
					      error))
			return FALSE;
	}
	return TRUE;
}

/* an APDU that must answer 90 00 */
static gboolean
kmx_card_device_apdu_ok(KmxCardDevice *self,
			guint8 ins,
			guint8 p1,
			guint8 p2,
			const guint8 *data,
			gsize len,
			gboolean le,
			GByteArray *out,
			const char *what,
			GError **error)
{
	guint sw = 0;

	if (!kmx_card_device_apdu(self, ins, p1, p2, data, len, le, out, &sw, error)) {
		g_prefix_error(error, "%s: ", what);
		return FALSE;
	}
	if (sw != 0x9000)
		return kmx_card_sw_error(error, sw, what);
	return TRUE;
}

static gboolean
kmx_card_device_select(KmxCardDevice *self, GError **error)
{
	if (!kmx_card_device_apdu_ok(self,
				     0xA4,
				     0x04,
				     0x00,
				     kmx_card_aid_prefix,
				     sizeof(kmx_card_aid_prefix),
				     FALSE,
				     NULL,
				     "cannot select the OpenPGP application",
				     error))
		return FALSE;
	self->need_select = FALSE;
	return TRUE;
}

/* a transaction: another client's reset is answered by reconnecting,
 * selecting the application again and starting over */
static gboolean
kmx_card_device_begin(KmxCardDevice *self, GCancellable *cancellable, GError **error)
{
	LONG rc;

	if (g_cancellable_set_error_if_cancelled(cancellable, error))
		return FALSE;
	if (!kmx_card_device_check_present(self, error))
		return FALSE;
	rc = SCardBeginTransaction(self->handle);
	if (rc == SCARD_W_RESET_CARD) {
		if (!kmx_card_device_reconnect(self, error))
			return FALSE;
		rc = SCardBeginTransaction(self->handle);
	}
	if (rc != SCARD_S_SUCCESS)
		return kmx_card_pcsc_error(error, rc, "cannot begin a transaction with the card");
	self->reset_seen = FALSE;
	if (self->need_select && !kmx_card_device_select(self, error)) {
		SCardEndTransaction(self->handle, SCARD_LEAVE_CARD);
		return FALSE;
	}
	return TRUE;
}

static void
kmx_card_device_end(KmxCardDevice *self)
{
	LONG rc;

	/* an exchange that timed out holds the connection: its thread ends
	 * the transaction when the card answers at last */
	if (kmx_card_device_stuck(self))
		return;
	rc = SCardEndTransaction(self->handle, SCARD_LEAVE_CARD);
	if (rc != SCARD_S_SUCCESS && rc != SCARD_W_REMOVED_CARD && rc != SCARD_W_RESET_CARD)
		g_debug("card %s: end of transaction: %s",
			kmx_device_get_id(KMX_DEVICE(self)),
			pcsc_stringify_error(rc));
}

typedef GBytes *(*KmxCardOp)(KmxCardDevice *self,
			     gpointer data,
			     GCancellable *cancellable,
			     GError **error);

/* @op in a transaction; once more if the card was reset under it */
static GBytes *
kmx_card_device_run(KmxCardDevice *self,
		    KmxCardOp op,
		    gpointer data,
		    GCancellable *cancellable,
		    GError **error)
{
	for (guint attempt = 0;; attempt++) {
		g_autoptr(GError) error_local = NULL;
		GBytes *result;

		if (!kmx_card_device_begin(self, cancellable, error))
			return NULL;
		result = op(self, data, cancellable, &error_local);
		kmx_card_device_end(self);
		if (result != NULL)
			return result;
		if (!self->reset_seen || attempt > 0) {
			g_propagate_error(error, g_steal_pointer(&error_local));
			return NULL;
		}
		g_debug("card %s was reset by another client: starting over",
			kmx_device_get_id(KMX_DEVICE(self)));
	}
}

/* ---- PINs -------------------------------------------------------------------- */

static void
kmx_card_device_report_retries(KmxCardDevice *self, guint pw, int retries)
{
	if (pw == KMX_CARD_PW3) {
		self->pw_status[6] = (guint8)retries;
		kmx_device_set_admin_retries(KMX_DEVICE(self), retries);
	} else {
		self->pw_status[4] = (guint8)retries;
		kmx_device_set_pin_retries(KMX_DEVICE(self), retries);
	}
}

/* VERIFY: one try of @secret, never repeated; the counter reported */
static gboolean
kmx_card_device_verify(KmxCardDevice *self, guint pw, KmxSecret *secret, GError **error)
{
	const char *what = pw == KMX_CARD_PW3 ? "admin PIN" : "PIN";
	guint sw = 0;

	if (secret == NULL || kmx_secret_is_empty(secret)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_LOCKED,
			    "card %s wants its %s: unlock it first",
			    kmx_device_get_id(KMX_DEVICE(self)),
			    what);
		return FALSE;
	}
	if (kmx_secret_get_length(secret) > 127) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_BAD_SECRET, "the %s is too long", what);
		return FALSE;
	}
	self->verified[pw] = FALSE;
	if (!kmx_card_device_apdu(self,
				  0x20,
				  0x00,
				  kmx_card_pw_ref[pw],
				  kmx_secret_get_data(secret),
				  kmx_secret_get_length(secret),
				  FALSE,
				  NULL,
				  &sw,
				  error))
		return FALSE;
	if (sw == 0x9000) {
		self->verified[pw] = TRUE;
		return TRUE;
	}
	if ((sw & 0xFFF0) == 0x63C0 || sw == 0x6983) {
		int left = sw == 0x6983 ? 0 : (int)(sw & 0x0F);
		kmx_card_device_report_retries(self, pw, left);
		g_set_error(error,
			    KMX_ERROR,
			    left == 0 ? KMX_ERROR_BLOCKED : KMX_ERROR_BAD_SECRET,
			    left == 0 ? "wrong %s: it is blocked now" : "wrong %s: %d tries left",
			    what,
			    left);
		return FALSE;
	}
	return kmx_card_sw_error(error, sw, "cannot verify the PIN");
}

/* GET DATA C4: the PW status bytes, the counters reported */
static gboolean
kmx_card_device_read_pw_status(KmxCardDevice *self, GError **error)
{
	g_autoptr(GByteArray) out = g_byte_array_new();
	const guint8 *v = NULL;
	gsize n = 0;

	if (!kmx_card_device_apdu_ok(self,
				     0xCA,
				     0x00,
				     0xC4,
				     NULL,
				     0,
				     TRUE,
				     out,
				     "cannot read the PIN status",
				     error))
		return FALSE;
	if (kmx_card_tlv_find(out->data, out->len, 0xC4, TRUE, &v, &n) && n >= 7) {
		memcpy(self->pw_status, v, 7);
	} else if (out->len == 7) {
		memcpy(self->pw_status, out->data, 7);
	} else {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "the card's PIN status has %u bytes, not 7",
			    out->len);
		return FALSE;
	}
	kmx_device_set_pin_retries(KMX_DEVICE(self), self->pw_status[4]);
	kmx_device_set_admin_retries(KMX_DEVICE(self), self->pw_status[6]);
	return TRUE;
}

static guint
kmx_card_device_retries(KmxCardDevice *self, guint pw)
{
	return pw == KMX_CARD_PW3 ? self->pw_status[6] : self->pw_status[4];
}

/* before a PIN a caller or the prompter gave for this attempt: the counter
 * read now; nothing sent at zero, and the last try only when the counter
 * shown (PinRetries, admin-retries: what the prompt showed) said it was
 * the last, so nobody spends it unwarned */
static gboolean
kmx_card_device_check_explicit(KmxCardDevice *self, guint pw, GError **error)
{
	const char *what = pw == KMX_CARD_PW3 ? "admin PIN" : "PIN";
	guint shown = kmx_card_device_retries(self, pw);
	guint left;

	if (!kmx_card_device_read_pw_status(self, error))
		return FALSE;
	left = kmx_card_device_retries(self, pw);
	if (left == 0) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_BLOCKED, "the %s is blocked", what);
		return FALSE;
	}
	if (left == 1 && shown != 1) {
		g_message("card %s: one %s try left, not %u: that PIN is not sent",
			  kmx_device_get_id(KMX_DEVICE(self)),
			  what,
			  shown);
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_LOCKED,
			    "card %s has one %s try left (another program spent the others): "
			    "nothing was sent; a wrong %s now blocks it",
			    kmx_device_get_id(KMX_DEVICE(self)),
			    what,
			    what);
		return FALSE;
	}
	return TRUE;
}

/* the PIN keymux keeps, sent again with nobody asked (the card forgot it,
 * or wants it for every signature): never on the last try, which only a
 * person who was told may spend; the device locks itself instead, so the
 * next use prompts, showing one try left */
static gboolean
kmx_card_device_verify_kept(KmxCardDevice *self, guint pw, KmxSecret *secret, GError **error)
{
	guint left;

	if (secret == NULL || kmx_secret_is_empty(secret))
		return kmx_card_device_verify(self, pw, secret, error);
	if (!kmx_card_device_read_pw_status(self, error))
		return FALSE;
	left = kmx_card_device_retries(self, pw);
	if (left <= 1) {
		kmx_device_change_flags(KMX_DEVICE(self), KMX_DEVICE_FLAG_LOCKED, 0);
		g_message("card %s: %s: the PIN keymux keeps is not sent",
			  kmx_device_get_id(KMX_DEVICE(self)),
			  left == 0 ? "its PIN is blocked" : "one PIN try left");
		g_set_error(error,
			    KMX_ERROR,
			    left == 0 ? KMX_ERROR_BLOCKED : KMX_ERROR_LOCKED,
			    left == 0 ? "card %s: the PIN is blocked"
				      : "card %s has one PIN try left (another program spent the "
					"others): keymux does not spend it on its own; unlock it "
					"with its PIN",
			    kmx_device_get_id(KMX_DEVICE(self)));
		return FALSE;
	}
	return kmx_card_device_verify(self, pw, secret, error);
}

/* ---- application data -------------------------------------------------------- */

static gboolean
kmx_card_find(const guint8 *data,
	      gsize len,
	      guint tag,
	      gsize min_len,
	      const guint8 **value,
	      gsize *value_len,
	      GError **error)
{
	if (kmx_card_tlv_find(data, len, tag, TRUE, value, value_len) && *value_len >= min_len)
		return TRUE;
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_FAILED,
		    "the card's data has no valid object %04X",
		    tag);
	return FALSE;
}

/* the transport the card offers: extended Lc/Le when the card
 * capabilities in its historical bytes (5F52) say so, up to the lengths
 * of its extended length information (7F66) */
static void
kmx_card_device_parse_transport(KmxCardDevice *self, const guint8 *data, gsize len)
{
	const guint8 *v = NULL;
	gsize n = 0;

	self->extended = FALSE;
	self->max_command = 255;
	self->max_response = 256;
	/* a category indicator 00, then COMPACT-TLV objects (tag and length
	 * in one byte), then three status bytes */
	if (!kmx_card_tlv_find(data, len, 0x5F52, TRUE, &v, &n) || n < 4 || v[0] != 0x00)
		return;
	for (gsize i = 1; i + 3 < n;) {
		guint tag = v[i] >> 4;
		gsize obj_len = v[i] & 0x0F;

		if (i + 1 + obj_len > n - 3)
			return;
		/* card capabilities, third byte: 40 extended Lc and Le */
		if (tag == 0x7 && obj_len == 3)
			self->extended = (v[i + 3] & 0x40) != 0;
		i += 1 + obj_len;
	}
	if (!self->extended)
		return;
	/* 02 02 <longest command> 02 02 <longest response> */
	if (kmx_card_tlv_find(data, len, 0x7F66, TRUE, &v, &n) && n == 8 && v[0] == 0x02 &&
	    v[1] == 0x02 && v[4] == 0x02 && v[5] == 0x02) {
		self->max_command = ((gsize)v[2] << 8) | v[3];
		self->max_response = ((gsize)v[6] << 8) | v[7];
	} else {
		self->max_command = self->max_response = 2048;
	}
	/* no less than short APDUs take */
	self->max_command = MAX(self->max_command, 255);
	self->max_response = MAX(self->max_response, 256);
}

/**
 * kmx_card_device_parse_app_data:
 * @data: hostile bytes: the answer to GET DATA 6E
 *
 * Takes the AID, the algorithm attributes, the PW status bytes and the
 * fingerprints from the application related data.
 */
gboolean
kmx_card_device_parse_app_data(KmxCardDevice *self, const guint8 *data, gsize len, GError **error)
{
	const guint8 *v = NULL;
	gsize n = 0;

	if (!kmx_card_find(data, len, 0x4F, 14, &v, &n, error))
		return FALSE;
	if (memcmp(v, kmx_card_aid_prefix, sizeof(kmx_card_aid_prefix)) != 0) {
		g_set_error(error, KMX_ERROR, KMX_ERROR_NOT_SUPPORTED, "not an OpenPGP card");
		return FALSE;
	}
	memset(self->aid, 0, sizeof(self->aid));
	memcpy(self->aid, v, MIN(n, sizeof(self->aid)));
	if (!kmx_card_find(data, len, 0xC4, 7, &v, &n, error))
		return FALSE;
	memcpy(self->pw_status, v, sizeof(self->pw_status));
	if (!kmx_card_find(data, len, 0xC5, 3 * KMX_CARD_FPR_SIZE, &v, &n, error))
		return FALSE;
	memcpy(self->fprs, v, sizeof(self->fprs));
	kmx_card_device_parse_transport(self, data, len);
	for (guint i = 0; i < KMX_CARD_SLOT_COUNT; i++) {
		self->attrs_len[i] = 0;
		if (kmx_card_tlv_find(data, len, 0xC1 + i, TRUE, &v, &n) &&
		    n <= KMX_CARD_ATTR_MAX) {
			memcpy(self->attrs[i], v, n);
			self->attrs_len[i] = n;
		}
	}
	return TRUE;
}

/* GET DATA 6E: AID, algorithm attributes, PW status, fingerprints */
static gboolean
kmx_card_device_read_app_data(KmxCardDevice *self, GError **error)
{
	g_autoptr(GByteArray) out = g_byte_array_new();

	if (!kmx_card_device_apdu_ok(self,
				     0xCA,
				     0x00,
				     0x6E,
				     NULL,
				     0,
				     TRUE,
				     out,
				     "cannot read the card's application data",
				     error))
		return FALSE;
	return kmx_card_device_parse_app_data(self, out->data, out->len, error);
}

static gboolean
kmx_card_oid_is(const guint8 *oid, gsize len, const guint8 *want, gsize want_len)
{
	/* an import-format byte (00 or FF) may follow the OID */
	if (len == want_len + 1 && (oid[len - 1] == 0x00 || oid[len - 1] == 0xFF))
		len--;
	return len == want_len && memcmp(oid, want, len) == 0;
}

static KmxKeyType
kmx_card_device_slot_type(KmxCardDevice *self, KmxCardSlot slot)
{
	const guint8 *a = self->attrs[slot];
	gsize n = self->attrs_len[slot];

	if (n >= 5 && a[0] == 0x01) {
		guint bits = ((guint)a[1] << 8) | a[2];
		return bits == 2048   ? KMX_KEY_TYPE_RSA2048
		       : bits == 3072 ? KMX_KEY_TYPE_RSA3072
		       : bits == 4096 ? KMX_KEY_TYPE_RSA4096
				      : KMX_KEY_TYPE_UNKNOWN;
	}
	if (n < 2)
		return KMX_KEY_TYPE_UNKNOWN;
	if ((a[0] == 0x12 || a[0] == 0x13) &&
	    kmx_card_oid_is(a + 1, n - 1, kmx_card_oid_p256, sizeof(kmx_card_oid_p256)))
		return KMX_KEY_TYPE_ECDSA_P256;
	if ((a[0] == 0x12 || a[0] == 0x13) &&
	    kmx_card_oid_is(a + 1, n - 1, kmx_card_oid_p384, sizeof(kmx_card_oid_p384)))
		return KMX_KEY_TYPE_ECDSA_P384;
	if (a[0] == 0x16 &&
	    kmx_card_oid_is(a + 1, n - 1, kmx_card_oid_ed25519, sizeof(kmx_card_oid_ed25519)))
		return KMX_KEY_TYPE_ED25519;
	if (a[0] == 0x12 &&
	    kmx_card_oid_is(a + 1, n - 1, kmx_card_oid_cv25519, sizeof(kmx_card_oid_cv25519)))
		return KMX_KEY_TYPE_X25519;
	return KMX_KEY_TYPE_UNKNOWN;
}

static gboolean
kmx_card_device_slot_used(KmxCardDevice *self, KmxCardSlot slot)
{
	for (guint i = 0; i < KMX_CARD_FPR_SIZE; i++) {
		if (self->fprs[slot][i] != 0)
			return TRUE;
	}
	return FALSE;
}

/* the 7F49 of GENERATE or READ PUBLIC KEY, as a SubjectPublicKeyInfo */
static GBytes *
kmx_card_spki_from_7f49(KmxKeyType type, const guint8 *data, gsize len, GError **error)
{
	g_autoptr(GBytes) a = NULL;
	g_autoptr(GBytes) b = NULL;
	const guint8 *pub = NULL;
	const guint8 *v = NULL;
	gsize pub_len = 0;
	gsize n = 0;

	if (!kmx_card_find(data, len, 0x7F49, 1, &pub, &pub_len, error))
		return NULL;
	if (kmx_key_type_is_rsa(type)) {
		if (!kmx_card_find(pub, pub_len, 0x81, 1, &v, &n, error))
			return NULL;
		a = g_bytes_new(v, n);
		if (!kmx_card_find(pub, pub_len, 0x82, 1, &v, &n, error))
			return NULL;
		b = g_bytes_new(v, n);
		return kmx_spki_new_from_rsa(a, b, error);
	}
	if (!kmx_card_find(pub, pub_len, 0x86, 1, &v, &n, error))
		return NULL;
	if (kmx_key_type_is_ec(type)) {
		a = g_bytes_new(v, n);
		return kmx_spki_new_from_ec_point(type, a, error);
	}
	/* Ed25519 and X25519: 32 bytes, sometimes after a 40 prefix */
	if (n == 33 && v[0] == 0x40) {
		v++;
		n--;
	}
	a = g_bytes_new(v, n);
	return kmx_spki_new_from_raw(type, a, error);
}

/**
 * kmx_card_device_parse_public:
 * @data: hostile bytes: the answer to READ PUBLIC KEY or GENERATE
 *
 * Returns: (transfer full): the SubjectPublicKeyInfo of the key in @slot,
 *   of the algorithm the slot's attributes say
 */
GBytes *
kmx_card_device_parse_public(KmxCardDevice *self,
			     KmxCardSlot slot,
			     const guint8 *data,
			     gsize len,
			     GError **error)
{
	KmxKeyType type = kmx_card_device_slot_type(self, slot);
	GBytes *spki;

	if (type == KMX_KEY_TYPE_UNKNOWN) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "the %s slot holds a key of an algorithm keymux does not know",
			    kmx_card_slot_to_string(slot));
		return NULL;
	}
	spki = kmx_card_spki_from_7f49(type, data, len, error);
	if (spki == NULL)
		g_prefix_error(error, "the %s slot: ", kmx_card_slot_to_string(slot));
	return spki;
}

static GBytes *
kmx_card_device_read_public(KmxCardDevice *self, KmxCardSlot slot, GError **error)
{
	g_autoptr(GByteArray) out = g_byte_array_new();
	const guint8 crt[] = {kmx_card_slot_crt[slot], 0x00};

	if (!kmx_card_device_apdu_ok(self,
				     0x47,
				     0x81,
				     0x00,
				     crt,
				     sizeof(crt),
				     TRUE,
				     out,
				     "cannot read a public key",
				     error))
		return NULL;
	return kmx_card_device_parse_public(self, slot, out->data, out->len, error);
}

/* the cardholder's name and the signature counter; neither is required */
static void
kmx_card_device_read_extras(KmxCardDevice *self)
{
	g_autoptr(GByteArray) out = g_byte_array_new();
	const guint8 *v = NULL;
	gsize n = 0;

	if (kmx_card_device_apdu_ok(self, 0xCA, 0x00, 0x65, NULL, 0, TRUE, out, "65", NULL) &&
	    kmx_card_tlv_find(out->data, out->len, 0x5B, TRUE, &v, &n) && n > 0) {
		g_autofree char *raw = g_strndup((const char *)v, n);
		g_autofree char *name = g_utf8_make_valid(raw, -1);
		char *sep = strstr(name, "<<");

		g_free(self->holder);
		/* "Surname<<Given<Names" reads "Given Names Surname" */
		if (sep != NULL) {
			*sep = '\0';
			self->holder = g_strdup_printf("%s %s", sep + 2, name);
		} else {
			self->holder = g_strdup(name);
		}
		g_strdelimit(self->holder, "<", ' ');
		g_strstrip(self->holder);
		if (self->holder[0] == '\0')
			g_clear_pointer(&self->holder, g_free);
	}
	g_byte_array_set_size(out, 0);
	if (kmx_card_device_apdu_ok(self, 0xCA, 0x00, 0x7A, NULL, 0, TRUE, out, "7A", NULL) &&
	    kmx_card_tlv_find(out->data, out->len, 0x93, TRUE, &v, &n) && n == 3)
		self->sig_counter = ((guint32)v[0] << 16) | ((guint32)v[1] << 8) | v[2];
}

static const char *
kmx_card_manufacturer_name(guint id)
{
	switch (id) {
	case 0x0001:
		return "PPC Card Systems";
	case 0x0005:
		return "ZeitControl";
	case 0x0006:
		return "Yubico";
	case 0x000F:
		return "Nitrokey";
	case 0xF517:
		return "FSIJ";
	case 0xFFFF:
		return "test card";
	default:
		return id >= 0xFF00 ? "unmanaged serial number range" : "unknown";
	}
}

static void
kmx_card_device_report_details(KmxCardDevice *self)
{
	GVariantDict dict;
	guint manufacturer = ((guint)self->aid[8] << 8) | self->aid[9];
	g_autofree char *version = g_strdup_printf("%u.%u", self->aid[6], self->aid[7]);
	g_autofree char *mhex = g_strdup_printf("%04X", manufacturer);

	g_variant_dict_init(&dict, NULL);
	g_variant_dict_insert(&dict, "reader", "s", self->reader);
	g_variant_dict_insert(&dict, "manufacturer", "s", mhex);
	g_variant_dict_insert(&dict,
			      "manufacturer-name",
			      "s",
			      kmx_card_manufacturer_name(manufacturer));
	g_variant_dict_insert(&dict, "version", "s", version);
	g_variant_dict_insert(&dict, "signature-counter", "u", self->sig_counter);
	g_variant_dict_insert(&dict, "sig-pin-forced", "b", self->pw_status[0] == 0);
	for (guint i = 0; i < KMX_CARD_SLOT_COUNT; i++) {
		g_autofree char *key = g_strdup_printf("%s-algorithm", kmx_card_slot_names[i]);
		KmxKeyType type = kmx_card_device_slot_type(self, (KmxCardSlot)i);
		g_variant_dict_insert(&dict,
				      key,
				      "s",
				      type == KMX_KEY_TYPE_UNKNOWN ? "unknown"
								   : kmx_key_type_to_string(type));
	}
	kmx_device_set_details(KMX_DEVICE(self), g_variant_dict_end(&dict));
	kmx_device_set_pin_retries(KMX_DEVICE(self), self->pw_status[4]);
	kmx_device_set_admin_retries(KMX_DEVICE(self), self->pw_status[6]);
}

/* the keys of the used slots; not on the main thread, and before the
 * device is in the model */
static GPtrArray *
kmx_card_device_read_keys(KmxCardDevice *self)
{
	GPtrArray *keys = g_ptr_array_new_with_free_func(g_object_unref);

	for (guint i = 0; i < KMX_CARD_SLOT_COUNT; i++) {
		KmxCardSlot slot = (KmxCardSlot)i;
		KmxKeyType type = kmx_card_device_slot_type(self, slot);
		g_autoptr(GError) error = NULL;
		g_autoptr(GBytes) spki = NULL;

		if (!kmx_card_device_slot_used(self, slot))
			continue;
		if (type == KMX_KEY_TYPE_UNKNOWN) {
			g_info(
			    "card %s: the %s slot holds a key of an algorithm keymux does not know",
			    kmx_device_get_id(KMX_DEVICE(self)),
			    kmx_card_slot_names[i]);
			continue;
		}
		spki = kmx_card_device_read_public(self, slot, &error);
		if (spki == NULL) {
			g_warning("card %s: %s",
				  kmx_device_get_id(KMX_DEVICE(self)),
				  error->message);
			continue;
		}
		g_ptr_array_add(keys, kmx_card_key_new(self, slot, type, spki));
		g_free(self->slot_keys[slot]);
		self->slot_keys[slot] =
		    g_strdup(kmx_key_get_id(g_ptr_array_index(keys, keys->len - 1)));
	}
	return keys;
}

/* ---- the probe --------------------------------------------------------------- */

/**
 * kmx_card_device_probe:
 * @reader: the PC/SC reader's name
 * @timeout_ms: how long the card may take to answer a command (four times
 *   that to generate a key)
 *
 * On the watcher thread: connects to the card in @reader in shared mode,
 * reads it and returns its device, with its keys and state set, still
 * connected.
 *
 * Returns: (transfer full): the device, or %NULL with %KMX_ERROR_NOT_SUPPORTED
 *   for a card that is not an OpenPGP card
 */
KmxCardDevice *
kmx_card_device_probe(const char *backend_name,
		      const char *reader,
		      guint timeout_ms,
		      GError **error)
{
	g_autoptr(KmxCardDevice) scout = NULL;
	g_autoptr(KmxCardDevice) self = NULL;
	g_autoptr(GPtrArray) keys = NULL;
	g_autofree char *id = NULL;
	g_autofree char *label = NULL;
	LONG rc;

	/* the id comes from the card: a scout reads it, the device takes
	 * over its connection */
	scout = g_object_new(KMX_TYPE_CARD_DEVICE, "backend", backend_name, NULL);
	scout->reader = g_strdup(reader);
	rc = SCardEstablishContext(SCARD_SCOPE_USER, NULL, NULL, &scout->ctx);
	if (rc != SCARD_S_SUCCESS) {
		kmx_card_pcsc_error(error, rc, "cannot reach pcscd");
		return NULL;
	}
	scout->has_ctx = TRUE;
	rc = SCardConnect(scout->ctx,
			  reader,
			  SCARD_SHARE_SHARED,
			  SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
			  &scout->handle,
			  &scout->protocol);
	if (rc != SCARD_S_SUCCESS) {
		kmx_card_pcsc_error(error, rc, "cannot connect to the card");
		return NULL;
	}
	scout->has_handle = TRUE;
	scout->io = kmx_card_io_new(scout->ctx, scout->handle);
	scout->timeout_ms = timeout_ms;
	scout->need_select = TRUE;
	if (!kmx_card_device_begin(scout, NULL, error))
		return NULL;
	if (!kmx_card_device_read_app_data(scout, error)) {
		kmx_card_device_end(scout);
		return NULL;
	}
	kmx_card_device_read_extras(scout);
	id = g_strdup_printf("%s:%02X%02X%02X%02X%02X%02X",
			     backend_name,
			     scout->aid[8],
			     scout->aid[9],
			     scout->aid[10],
			     scout->aid[11],
			     scout->aid[12],
			     scout->aid[13]);
	if (scout->holder != NULL)
		label = g_strdup(scout->holder);
	else
		label = g_strdup_printf("OpenPGP card %02X%02X%02X%02X",
					scout->aid[10],
					scout->aid[11],
					scout->aid[12],
					scout->aid[13]);
	self = g_object_new(KMX_TYPE_CARD_DEVICE,
			    "id",
			    id,
			    "backend",
			    backend_name,
			    "label",
			    label,
			    NULL);
	/* everything but the GObject: the connection, in its transaction */
	{
		KmxDevice parent = self->parent_instance;
		*self = *scout;
		self->parent_instance = parent;
		scout->has_handle = FALSE;
		scout->has_ctx = FALSE;
		scout->io = NULL;
		scout->reader = NULL;
		scout->holder = NULL;
	}
	keys = kmx_card_device_read_keys(self);
	kmx_card_device_end(self);

	kmx_device_set_flags(KMX_DEVICE(self), KMX_DEVICE_FLAG_AVAILABLE | KMX_DEVICE_FLAG_LOCKED);
	kmx_card_device_report_details(self);
	for (guint i = 0; i < keys->len; i++)
		kmx_device_add_key(KMX_DEVICE(self), g_ptr_array_index(keys, i));
	return g_steal_pointer(&self);
}

/**
 * kmx_card_device_set_gone:
 *
 * The watcher saw the card leave; any thread.  Calls in flight fail with
 * %KMX_ERROR_UNAVAILABLE (pcscd says the card is gone, or this flag does).
 */
void
kmx_card_device_set_gone(KmxCardDevice *self)
{
	g_return_if_fail(KMX_IS_CARD_DEVICE(self));
	g_atomic_int_set(&self->gone, TRUE);
}

/* ---- operations -------------------------------------------------------------- */

typedef struct {
	KmxCardSlot slot;
	GBytes *data;
	KmxSecret *secret;
} KmxCardOpData;

/* PW1 for this operation, verified once unless the card forgot it */
static GBytes *
kmx_card_device_op_pin(KmxCardDevice *self,
		       guint pw,
		       guint8 ins,
		       guint8 p1,
		       guint8 p2,
		       KmxCardOpData *op,
		       GError **error)
{
	const char *what = ins == 0x2A && p1 == 0x9E ? "cannot sign"
			   : ins == 0x88	     ? "cannot authenticate"
						     : "cannot decipher";

	for (guint attempt = 0;; attempt++) {
		g_autoptr(GByteArray) out = g_byte_array_new();
		gsize len = 0;
		const guint8 *p = g_bytes_get_data(op->data, &len);
		guint sw = 0;

		if (!self->verified[pw] &&
		    !kmx_card_device_verify_kept(self, pw, op->secret, error))
			return NULL;
		if (!kmx_card_device_apdu(self, ins, p1, p2, p, len, TRUE, out, &sw, error))
			return NULL;
		/* the card forgot the PIN it had accepted (reset, power cycle):
		 * send it again, once */
		if (sw == 0x6982 && attempt == 0) {
			self->verified[pw] = FALSE;
			continue;
		}
		if (sw != 0x9000) {
			kmx_card_sw_error(error, sw, what);
			return NULL;
		}
		if (pw == KMX_CARD_PW1_SIGN) {
			self->sig_counter++;
			if (self->pw_status[0] == 0)
				self->verified[pw] = FALSE;
		}
		if (ins == 0x2A && p1 == 0x80) {
			/* a shared secret or a plaintext: secret memory */
			g_autoptr(KmxSecret) s = kmx_secret_new_from_data(out->data, out->len);
			kmx_secure_zero(out->data, out->len);
			return kmx_secret_to_bytes(s);
		}
		return g_bytes_new(out->data, out->len);
	}
}

static GBytes *
kmx_card_device_op_sign(KmxCardDevice *self,
			gpointer data,
			GCancellable *cancellable,
			GError **error)
{
	KmxCardOpData *op = data;

	if (op->slot == KMX_CARD_SLOT_SIG)
		return kmx_card_device_op_pin(self, KMX_CARD_PW1_SIGN, 0x2A, 0x9E, 0x9A, op, error);
	return kmx_card_device_op_pin(self, KMX_CARD_PW1, 0x88, 0x00, 0x00, op, error);
}

static GBytes *
kmx_card_device_op_decipher(KmxCardDevice *self,
			    gpointer data,
			    GCancellable *cancellable,
			    GError **error)
{
	return kmx_card_device_op_pin(self, KMX_CARD_PW1, 0x2A, 0x80, 0x86, data, error);
}

/**
 * kmx_card_device_check_key:
 *
 * A key object outlives the key in its slot when a new key replaced it:
 * it must never sign with the new one.
 *
 * Returns: whether @key_id is still the key in @slot
 */
gboolean
kmx_card_device_check_key(KmxCardDevice *self, KmxCardSlot slot, const char *key_id, GError **error)
{
	g_return_val_if_fail(slot < KMX_CARD_SLOT_COUNT, FALSE);
	if (g_strcmp0(self->slot_keys[slot], key_id) == 0)
		return TRUE;
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_NOT_FOUND,
		    "key %s is no longer on card %s: its %s slot holds another key now",
		    key_id,
		    kmx_device_get_id(KMX_DEVICE(self)),
		    kmx_card_slot_to_string(slot));
	return FALSE;
}

/**
 * kmx_card_device_sign:
 * @data: what the card signs: a DigestInfo (RSA), a digest (ECDSA) or the
 *   message (EdDSA)
 *
 * Returns: (transfer full): the card's signature as it is (r||s for ECDSA)
 */
GBytes *
kmx_card_device_sign(KmxCardDevice *self,
		     KmxCardSlot slot,
		     GBytes *data,
		     KmxSecret *secret,
		     GCancellable *cancellable,
		     GError **error)
{
	KmxCardOpData op = {slot, data, secret};

	g_return_val_if_fail(slot == KMX_CARD_SLOT_SIG || slot == KMX_CARD_SLOT_AUT, NULL);
	return kmx_card_device_run(self, kmx_card_device_op_sign, &op, cancellable, error);
}

/**
 * kmx_card_device_decipher:
 * @data: the PSO:DECIPHER data (00 || RSA ciphertext, or A6 {...} for ECDH)
 *
 * Returns: (transfer full): the plaintext or shared secret, in secret memory
 */
GBytes *
kmx_card_device_decipher(KmxCardDevice *self,
			 GBytes *data,
			 KmxSecret *secret,
			 GCancellable *cancellable,
			 GError **error)
{
	KmxCardOpData op = {KMX_CARD_SLOT_DEC, data, secret};

	return kmx_card_device_run(self, kmx_card_device_op_decipher, &op, cancellable, error);
}

/* ---- unlock, lock ------------------------------------------------------------ */

static GBytes *
kmx_card_device_op_unlock(KmxCardDevice *self,
			  gpointer data,
			  GCancellable *cancellable,
			  GError **error)
{
	/* the counter first: at zero nothing is sent, and the last try only
	 * for a PIN given knowing it is the last */
	if (!kmx_card_device_check_explicit(self, KMX_CARD_PW1, error))
		return NULL;
	if (!kmx_card_device_verify(self, KMX_CARD_PW1, data, error))
		return NULL;
	/* the card restored its counter: to how many tries, it says */
	if (!kmx_card_device_read_pw_status(self, error))
		return NULL;
	return g_bytes_new(NULL, 0);
}

static gboolean
kmx_card_device_unlock(KmxDevice *device,
		       KmxSecret *secret,
		       GCancellable *cancellable,
		       GError **error)
{
	KmxCardDevice *self = KMX_CARD_DEVICE(device);
	g_autoptr(GBytes) ok = NULL;

	ok = kmx_card_device_run(self, kmx_card_device_op_unlock, secret, cancellable, error);
	if (ok == NULL)
		return FALSE;
	kmx_device_change_flags(device, 0, KMX_DEVICE_FLAG_LOCKED);
	return TRUE;
}

static GBytes *
kmx_card_device_op_lock(KmxCardDevice *self,
			gpointer data,
			GCancellable *cancellable,
			GError **error)
{
	/* VERIFY with P1 FF resets a PIN's status (3.0 and later); an
	 * older card forgets it when keymux lets go at the latest */
	for (guint pw = 0; pw < KMX_CARD_PW_COUNT; pw++) {
		guint sw = 0;
		if (!kmx_card_device_apdu(self,
					  0x20,
					  0xFF,
					  kmx_card_pw_ref[pw],
					  NULL,
					  0,
					  FALSE,
					  NULL,
					  &sw,
					  error))
			return NULL;
	}
	return g_bytes_new(NULL, 0);
}

static gboolean
kmx_card_device_lock(KmxDevice *device, GCancellable *cancellable, GError **error)
{
	KmxCardDevice *self = KMX_CARD_DEVICE(device);
	g_autoptr(GBytes) ok = NULL;
	g_autoptr(GError) error_local = NULL;

	memset(self->verified, 0, sizeof(self->verified));
	kmx_device_change_flags(device, KMX_DEVICE_FLAG_LOCKED, 0);
	if (g_atomic_int_get(&self->gone) || !self->has_handle)
		return TRUE;
	ok = kmx_card_device_run(self, kmx_card_device_op_lock, NULL, NULL, &error_local);
	if (ok == NULL)
		g_debug("card %s: %s", kmx_device_get_id(device), error_local->message);
	return TRUE;
}

/* ---- generate ---------------------------------------------------------------- */

/* the algorithm attributes (C1/C2/C3) for @type in @slot */
static gboolean
kmx_card_attrs_for(KmxKeyType type, KmxCardSlot slot, GByteArray *out)
{
	guint8 head;

	if (kmx_key_type_is_rsa(type)) {
		guint bits = kmx_key_type_get_bits(type);
		/* n bits, e bits (32), standard format */
		const guint8 rsa[] = {0x01, (guint8)(bits >> 8), (guint8)bits, 0x00, 0x20, 0x00};
		g_byte_array_append(out, rsa, sizeof(rsa));
		return TRUE;
	}
	switch (type) {
	case KMX_KEY_TYPE_ECDSA_P256:
	case KMX_KEY_TYPE_ECDSA_P384:
		head = slot == KMX_CARD_SLOT_DEC ? 0x12 : 0x13;
		g_byte_array_append(out, &head, 1);
		if (type == KMX_KEY_TYPE_ECDSA_P256)
			g_byte_array_append(out, kmx_card_oid_p256, sizeof(kmx_card_oid_p256));
		else
			g_byte_array_append(out, kmx_card_oid_p384, sizeof(kmx_card_oid_p384));
		return TRUE;
	case KMX_KEY_TYPE_ED25519:
		if (slot == KMX_CARD_SLOT_DEC)
			return FALSE;
		head = 0x16;
		g_byte_array_append(out, &head, 1);
		g_byte_array_append(out, kmx_card_oid_ed25519, sizeof(kmx_card_oid_ed25519));
		return TRUE;
	case KMX_KEY_TYPE_X25519:
		if (slot != KMX_CARD_SLOT_DEC)
			return FALSE;
		head = 0x12;
		g_byte_array_append(out, &head, 1);
		g_byte_array_append(out, kmx_card_oid_cv25519, sizeof(kmx_card_oid_cv25519));
		return TRUE;
	default:
		return FALSE;
	}
}

/* an OpenPGP multiprecision integer: bit count, then the bytes without
 * leading zeros */
static void
kmx_card_append_mpi(GByteArray *out, const guint8 *v, gsize n)
{
	guint8 head[2];
	guint bits;

	while (n > 0 && v[0] == 0) {
		v++;
		n--;
	}
	bits = n == 0 ? 0 : (guint)(n - 1) * 8 + (guint)g_bit_storage(v[0]);
	head[0] = (guint8)(bits >> 8);
	head[1] = (guint8)bits;
	g_byte_array_append(out, head, 2);
	g_byte_array_append(out, v, (guint)n);
}

/* the OpenPGP v4 fingerprint (RFC 4880 12.2) of the public key in @pub
 * (the value of a 7F49) created at @created, as gpg computes it for the
 * key it finds on the card */
static gboolean
kmx_card_fingerprint(KmxKeyType type,
		     KmxCardSlot slot,
		     const guint8 *pub,
		     gsize pub_len,
		     guint32 created,
		     guint8 fpr[KMX_CARD_FPR_SIZE],
		     GError **error)
{
	g_autoptr(GByteArray) body = g_byte_array_new();
	g_autoptr(GByteArray) packet = g_byte_array_new();
	const guint8 head[] = {0x04,
			       (guint8)(created >> 24),
			       (guint8)(created >> 16),
			       (guint8)(created >> 8),
			       (guint8)created};
	const guint8 *v = NULL;
	gsize n = 0;
	guint8 algo;
	int rc;

	g_byte_array_append(body, head, sizeof(head));
	if (kmx_key_type_is_rsa(type)) {
		const guint8 *e = NULL;
		gsize e_len = 0;
		if (!kmx_card_find(pub, pub_len, 0x81, 1, &v, &n, error) ||
		    !kmx_card_find(pub, pub_len, 0x82, 1, &e, &e_len, error))
			return FALSE;
		algo = 1;
		g_byte_array_append(body, &algo, 1);
		kmx_card_append_mpi(body, v, n);
		kmx_card_append_mpi(body, e, e_len);
	} else {
		g_autoptr(GByteArray) attrs = g_byte_array_new();
		guint8 oid_len;
		guint8 prefixed[1 + 32];

		if (!kmx_card_find(pub, pub_len, 0x86, 1, &v, &n, error))
			return FALSE;
		kmx_card_attrs_for(type, slot, attrs);
		/* ECDSA 19, ECDH 18, EdDSA 22: the attribute byte's value too */
		algo = attrs->data[0] == 0x16 ? 22 : attrs->data[0] == 0x12 ? 18 : 19;
		g_byte_array_append(body, &algo, 1);
		oid_len = (guint8)(attrs->len - 1);
		g_byte_array_append(body, &oid_len, 1);
		g_byte_array_append(body, attrs->data + 1, oid_len);
		if ((type == KMX_KEY_TYPE_ED25519 || type == KMX_KEY_TYPE_X25519) && n == 32) {
			/* the native point format: 40 || the key */
			prefixed[0] = 0x40;
			memcpy(prefixed + 1, v, 32);
			kmx_card_append_mpi(body, prefixed, sizeof(prefixed));
		} else {
			kmx_card_append_mpi(body, v, n);
		}
		if (algo == 18) {
			/* KDF parameters: SHA-256 and AES-128, SHA-384 and AES-256 on P-384 */
			const guint8 kdf256[] = {0x03, 0x01, 0x08, 0x07};
			const guint8 kdf384[] = {0x03, 0x01, 0x09, 0x09};
			g_byte_array_append(body,
					    type == KMX_KEY_TYPE_ECDSA_P384 ? kdf384 : kdf256,
					    4);
		}
	}
	{
		const guint8 tag[] = {0x99, (guint8)(body->len >> 8), (guint8)body->len};
		g_byte_array_append(packet, tag, sizeof(tag));
		g_byte_array_append(packet, body->data, body->len);
	}
	rc = gnutls_hash_fast(GNUTLS_DIG_SHA1, packet->data, packet->len, fpr);
	if (rc < 0) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "cannot compute the key's fingerprint: %s",
			    gnutls_strerror(rc));
		return FALSE;
	}
	return TRUE;
}

/* after GENERATE or an import, with PW3 verified: the fingerprint and the
 * date that make the slot used for gpg and for keymux, then the admin
 * PIN's status dropped; returns the key's SubjectPublicKeyInfo */
static GBytes *
kmx_card_device_finish_key(KmxCardDevice *self,
			   KmxCardSlot slot,
			   KmxKeyType type,
			   GByteArray *out,
			   GError **error)
{
	g_autoptr(GBytes) spki = NULL;
	guint8 fpr[KMX_CARD_FPR_SIZE];
	guint32 now = (guint32)(g_get_real_time() / G_USEC_PER_SEC);
	const guint8 date[] = {(guint8)(now >> 24),
			       (guint8)(now >> 16),
			       (guint8)(now >> 8),
			       (guint8)now};
	const guint8 *pub = NULL;
	gsize pub_len = 0;
	guint sw = 0;

	spki = kmx_card_spki_from_7f49(type, out->data, out->len, error);
	if (spki == NULL)
		return NULL;
	if (!kmx_card_find(out->data, out->len, 0x7F49, 1, &pub, &pub_len, error) ||
	    !kmx_card_fingerprint(type, slot, pub, pub_len, now, fpr, error))
		return NULL;
	/* what gpg and other tools read to see the slot in use */
	if (!kmx_card_device_apdu_ok(self,
				     0xDA,
				     0x00,
				     (guint8)(0xC7 + slot),
				     fpr,
				     sizeof(fpr),
				     FALSE,
				     NULL,
				     "cannot write the key's fingerprint",
				     error) ||
	    !kmx_card_device_apdu_ok(self,
				     0xDA,
				     0x00,
				     (guint8)(0xCE + slot),
				     date,
				     sizeof(date),
				     FALSE,
				     NULL,
				     "cannot write the key's date",
				     error))
		return NULL;
	/* the admin PIN's status is dropped right away */
	kmx_card_device_apdu(self, 0x20, 0xFF, 0x83, NULL, 0, FALSE, NULL, &sw, NULL);
	self->verified[KMX_CARD_PW3] = FALSE;
	if (!kmx_card_device_read_app_data(self, error))
		return NULL;
	return g_steal_pointer(&spki);
}

typedef struct {
	KmxCardSlot slot;
	KmxKeyType type;
	GByteArray *attrs;
	KmxSecret *admin_secret;
	gnutls_privkey_t import; /* the key to import, or NULL to generate */
} KmxCardGenerate;

static GBytes *
kmx_card_device_op_generate(KmxCardDevice *self,
			    gpointer data,
			    GCancellable *cancellable,
			    GError **error)
{
	KmxCardGenerate *gen = data;
	g_autoptr(GByteArray) out = g_byte_array_new();
	const guint8 crt[] = {kmx_card_slot_crt[gen->slot], 0x00};

	if (!kmx_card_device_check_explicit(self, KMX_CARD_PW3, error) ||
	    !kmx_card_device_verify(self, KMX_CARD_PW3, gen->admin_secret, error))
		return NULL;
	if (self->attrs_len[gen->slot] != gen->attrs->len ||
	    memcmp(self->attrs[gen->slot], gen->attrs->data, gen->attrs->len) != 0) {
		if (!kmx_card_device_apdu_ok(self,
					     0xDA,
					     0x00,
					     (guint8)(0xC1 + gen->slot),
					     gen->attrs->data,
					     gen->attrs->len,
					     FALSE,
					     NULL,
					     "cannot set the slot's algorithm",
					     error))
			return NULL;
		memcpy(self->attrs[gen->slot], gen->attrs->data, gen->attrs->len);
		self->attrs_len[gen->slot] = gen->attrs->len;
	}
	if (gen->import != NULL) {
		g_autoptr(KmxSecret) template =
		    kmx_card_import_template(gen->import,
					     gen->type,
					     kmx_card_slot_crt[gen->slot],
					     error);
		if (template == NULL)
			return NULL;
		if (!kmx_card_device_apdu_ok(self,
					     0xDB,
					     0x3F,
					     0xFF,
					     kmx_secret_get_data(template),
					     kmx_secret_get_length(template),
					     FALSE,
					     NULL,
					     "cannot import the key",
					     error))
			return NULL;
		if (!kmx_card_device_apdu_ok(self,
					     0x47,
					     0x81,
					     0x00,
					     crt,
					     sizeof(crt),
					     TRUE,
					     out,
					     "cannot read the imported key",
					     error))
			return NULL;
	} else if (!kmx_card_device_apdu_ok(self,
					    0x47,
					    0x80,
					    0x00,
					    crt,
					    sizeof(crt),
					    TRUE,
					    out,
					    "cannot generate the key",
					    error)) {
		return NULL;
	}
	return kmx_card_device_finish_key(self, gen->slot, gen->type, out, error);
}

/* a new key in a slot: generated on the card, or @import put there */
static KmxKey *
kmx_card_device_new_key(KmxDevice *device,
			KmxKeyType type,
			gnutls_privkey_t import,
			const char *label,
			const KmxOptions *options,
			KmxSecret *admin_secret,
			GCancellable *cancellable,
			GError **error)
{
	KmxCardDevice *self = KMX_CARD_DEVICE(device);
	g_autoptr(GByteArray) attrs = g_byte_array_new();
	g_autoptr(GBytes) spki = NULL;
	KmxCardGenerate gen = {KMX_CARD_SLOT_SIG, type, attrs, admin_secret, import};
	KmxKey *key;

	if (options->slot != NULL) {
		if (!kmx_card_slot_from_string(options->slot, &gen.slot)) {
			g_autofree char *shown = g_strescape(options->slot, NULL);
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "an OpenPGP card has no slot '%.32s': use sig, dec or aut",
				    shown);
			return NULL;
		}
	} else if (type == KMX_KEY_TYPE_X25519) {
		gen.slot = KMX_CARD_SLOT_DEC;
	}
	if (!kmx_card_attrs_for(type, gen.slot, attrs)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_NOT_SUPPORTED,
			    "the %s slot of an OpenPGP card cannot hold a %s key",
			    kmx_card_slot_to_string(gen.slot),
			    kmx_key_type_to_string(type));
		return NULL;
	}
	/* refused before anything is written to the card */
	if (kmx_card_device_slot_used(self, gen.slot) && !options->replace) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_EXISTS,
			    "the %s slot of %s holds a key: give the option 'replace' to "
			    "overwrite it",
			    kmx_card_slot_to_string(gen.slot),
			    kmx_device_get_id(device));
		return NULL;
	}
	spki = kmx_card_device_run(self, kmx_card_device_op_generate, &gen, cancellable, error);
	if (spki == NULL)
		return NULL;
	kmx_card_device_report_details(self);
	key = kmx_card_key_new(self, gen.slot, type, spki);
	/* the key the slot held is gone from the card */
	if (self->slot_keys[gen.slot] != NULL &&
	    g_strcmp0(self->slot_keys[gen.slot], kmx_key_get_id(key)) != 0)
		kmx_device_report_key_removed(device, self->slot_keys[gen.slot]);
	g_free(self->slot_keys[gen.slot]);
	self->slot_keys[gen.slot] = g_strdup(kmx_key_get_id(key));
	if (label != NULL && label[0] != '\0')
		kmx_key_set_label(key, label);
	return key;
}

static KmxKey *
kmx_card_device_generate_key(KmxDevice *device,
			     KmxKeyType type,
			     const char *label,
			     const KmxOptions *options,
			     KmxSecret *admin_secret,
			     GCancellable *cancellable,
			     GError **error)
{
	return kmx_card_device_new_key(device,
				       type,
				       NULL,
				       label,
				       options,
				       admin_secret,
				       cancellable,
				       error);
}

G_DEFINE_AUTO_CLEANUP_FREE_FUNC(gnutls_privkey_t, gnutls_privkey_deinit, NULL)

/* a soft key written into a slot, the way GenerateKey makes one there */
static GPtrArray *
kmx_card_device_import_key(KmxDevice *device,
			   GBytes *data,
			   KmxSecret *passphrase,
			   const char *label,
			   const KmxOptions *options,
			   KmxSecret *admin_secret,
			   GCancellable *cancellable,
			   GError **error)
{
	g_auto(gnutls_privkey_t) key = NULL;
	g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func(g_object_unref);
	KmxKeyType type = KMX_KEY_TYPE_UNKNOWN;
	KmxKey *new_key;

	key = kmx_card_import_parse(data, passphrase, &type, error);
	if (key == NULL)
		return NULL;
	new_key = kmx_card_device_new_key(device,
					  type,
					  key,
					  label,
					  options,
					  admin_secret,
					  cancellable,
					  error);
	if (new_key == NULL)
		return NULL;
	g_ptr_array_add(keys, new_key);
	return g_steal_pointer(&keys);
}

/* ---- the object -------------------------------------------------------------- */

static void
kmx_card_device_finalize(GObject *object)
{
	KmxCardDevice *self = KMX_CARD_DEVICE(object);

	/* the connection releases the handle and the context, at once or
	 * when a card that stopped answering does answer */
	if (self->io != NULL) {
		if (kmx_card_io_free(self->io))
			g_debug("the PC/SC connection to the card in %s is closed", self->reader);
		else
			g_debug("the PC/SC connection to the card in %s closes once it answers",
				self->reader);
	} else {
		if (self->has_handle)
			SCardDisconnect(self->handle, SCARD_LEAVE_CARD);
		if (self->has_ctx)
			SCardReleaseContext(self->ctx);
	}
	g_free(self->reader);
	g_free(self->holder);
	for (guint i = 0; i < KMX_CARD_SLOT_COUNT; i++)
		g_free(self->slot_keys[i]);
	G_OBJECT_CLASS(kmx_card_device_parent_class)->finalize(object);
}

static void
kmx_card_device_class_init(KmxCardDeviceClass *klass)
{
	KmxDeviceClass *device_class = KMX_DEVICE_CLASS(klass);

	G_OBJECT_CLASS(klass)->finalize = kmx_card_device_finalize;
	device_class->executor_kind = KMX_EXECUTOR_SERIAL;
	/* the core hands the PIN to every operation: the card may want it
	 * before each signature (C4 byte 0), and a card reset by another
	 * client forgets it while it stays in the reader */
	device_class->secret_per_operation = TRUE;
	device_class->admin_secret = TRUE;
	device_class->unlock = kmx_card_device_unlock;
	device_class->lock = kmx_card_device_lock;
	device_class->generate_key = kmx_card_device_generate_key;
	device_class->import_key = kmx_card_device_import_key;
}

static void
kmx_card_device_init(KmxCardDevice *self)
{
}

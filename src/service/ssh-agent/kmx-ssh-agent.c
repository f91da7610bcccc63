/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the ssh-agent frontend
 *
 * The OpenSSH agent protocol (draft-miller-ssh-agent) on a Unix socket,
 * $XDG_RUNTIME_DIR/keymux/ssh, bound here when [ssh-agent] enabled=true or
 * handed over by a systemd socket unit (LISTEN_FDS).  It runs on the main
 * loop: each connection is a non-blocking socket watched for input while it
 * has no request in flight, and for its hang-up only while it has one (so
 * a client that stops reading or pipelines requests costs nothing but its
 * buffer).  A client that connects and never writes has no buffer at all.
 *
 * A client is a caller like a bus connection (kmx-caller.c), identified by
 * the kernel (SO_PEERCRED): every message passes the manager's
 * authorisation hook first, signatures, imports and unlocks are requests of
 * the same pipeline as the D-Bus methods' (kmx-request.c), with its
 * prompts, limits and audit.  A client that hangs up cancels its request.
 *
 * Every length is checked: a message over 256 KiB, an empty one, or one
 * whose fields do not add up to its length closes that connection, and
 * only that one.  The bytes of a message are wiped once it is handled.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gunixsocketaddress.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "kmx-error.h"
#include "kmx-ssh-agent-message.h"
#include "kmx-ssh-agent.h"
#include "kmx-ssh.h"

#define KMX_SSH_AGENT_MAX_MESSAGE (256 * 1024)
#define KMX_SSH_AGENT_READ_CHUNK  4096
/* clients connected at once, by default; each holds a file descriptor */
#define KMX_SSH_AGENT_MAX_CONNECTIONS 256

/* the first fd systemd passes (sd_listen_fds(3)) */
#define KMX_LISTEN_FDS_START 3

struct _KmxSshAgent {
	GObject parent_instance;
	KmxManager *manager;
	GMainContext *main_context;
	GThread *main_thread;
	GSocket *listener;
	GSource *accept_source;
	char *path;		 /* bound here, unlinked at stop */
	GHashTable *conns;	 /* KmxSshConn, owned */
	GHashTable *blob_of_key; /* key id -> OpenSSH public key blob */
	GHashTable *key_of_blob; /* blob -> key id */
	gboolean allow_sha1;
	char *import_device;
	gboolean accept_failing;
	guint max_connections;
	gboolean told_full;
};

G_DEFINE_FINAL_TYPE(KmxSshAgent, kmx_ssh_agent, G_TYPE_OBJECT)

typedef struct {
	gatomicrefcount ref;
	KmxSshAgent *agent;
	GSocket *socket;
	KmxCaller *caller;
	/* main thread */
	GSource *source;
	GIOCondition watching;
	guint8 *in;
	gsize in_len;
	gsize in_cap;
	gboolean busy; /* a message is being handled */
	gboolean processing;
	gboolean told_denied;
	gboolean eof; /* the client sent all it will: reply, then close */
	/* any thread: replies come from executors */
	GMutex mutex;
	GByteArray *out;
	gboolean closed;
	gboolean broken; /* a write failed: the main thread closes it */
} KmxSshConn;

static void kmx_ssh_conn_process(KmxSshConn *conn);
static void kmx_ssh_conn_update_watch(KmxSshConn *conn);

/* ---- connections ----------------------------------------------------------- */

static KmxSshConn *
kmx_ssh_conn_ref(KmxSshConn *conn)
{
	g_atomic_ref_count_inc(&conn->ref);
	return conn;
}

static void
kmx_ssh_conn_unref(KmxSshConn *conn)
{
	if (conn == NULL || !g_atomic_ref_count_dec(&conn->ref))
		return;
	if (conn->in != NULL) {
		kmx_secure_zero(conn->in, conn->in_cap);
		g_free(conn->in);
	}
	g_byte_array_unref(conn->out);
	g_mutex_clear(&conn->mutex);
	kmx_caller_unref(conn->caller);
	g_object_unref(conn->socket);
	g_object_unref(conn->agent);
	g_free(conn);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(KmxSshConn, kmx_ssh_conn_unref)

static gboolean
kmx_ssh_agent_on_main(KmxSshAgent *self)
{
	return g_thread_self() == self->main_thread;
}

/* main thread: the connection ends; a request in flight is cancelled and
 * its reply dropped */
static void
kmx_ssh_conn_close(KmxSshConn *conn, const char *why)
{
	G_GNUC_UNUSED g_autoptr(KmxSshConn) hold = kmx_ssh_conn_ref(conn);

	g_mutex_lock(&conn->mutex);
	if (conn->closed) {
		g_mutex_unlock(&conn->mutex);
		return;
	}
	conn->closed = TRUE;
	(void)g_socket_close(conn->socket, NULL);
	g_mutex_unlock(&conn->mutex);
	if (why != NULL)
		g_message("ssh-agent: closing the connection of pid %u (%s): %s",
			  kmx_caller_get_pid(conn->caller),
			  kmx_caller_get_exe(conn->caller),
			  why);
	kmx_caller_gone(conn->caller);
	if (conn->source != NULL) {
		g_source_destroy(conn->source);
		g_clear_pointer(&conn->source, g_source_unref);
	}
	conn->watching = 0;
	g_hash_table_remove(conn->agent->conns, conn);
}

/* under the mutex: writes what it can without blocking */
static void
kmx_ssh_conn_flush_locked(KmxSshConn *conn)
{
	while (!conn->closed && !conn->broken && conn->out->len > 0) {
		g_autoptr(GError) error = NULL;
		gssize n = g_socket_send(conn->socket,
					 (const char *)conn->out->data,
					 conn->out->len,
					 NULL,
					 &error);
		if (n < 0) {
			if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
				conn->broken = TRUE;
			return;
		}
		g_byte_array_remove_range(conn->out, 0, (guint)n);
	}
}

/* any thread: one framed reply */
static void
kmx_ssh_conn_send(KmxSshConn *conn, GByteArray *msg)
{
	g_mutex_lock(&conn->mutex);
	if (!conn->closed) {
		kmx_ssh_put_string(conn->out, msg->data, msg->len);
		kmx_ssh_conn_flush_locked(conn);
	}
	g_mutex_unlock(&conn->mutex);
}

static void
kmx_ssh_conn_send_code(KmxSshConn *conn, guint8 code)
{
	guint8 byte = code;
	GByteArray msg = {&byte, 1};

	kmx_ssh_conn_send(conn, &msg);
}

static gboolean
kmx_ssh_conn_resume_cb(gpointer user_data)
{
	KmxSshConn *conn = user_data;

	conn->busy = FALSE;
	kmx_ssh_conn_process(conn);
	return G_SOURCE_REMOVE;
}

/* any thread, once per message, after its reply was sent: the next one */
static void
kmx_ssh_conn_done(KmxSshConn *conn)
{
	GSource *source;

	if (kmx_ssh_agent_on_main(conn->agent)) {
		if (conn->processing) {
			conn->busy = FALSE;
			return;
		}
		kmx_ssh_conn_resume_cb(conn);
		return;
	}
	source = g_idle_source_new();
	g_source_set_priority(source, G_PRIORITY_DEFAULT);
	g_source_set_callback(source,
			      kmx_ssh_conn_resume_cb,
			      kmx_ssh_conn_ref(conn),
			      (GDestroyNotify)kmx_ssh_conn_unref);
	g_source_attach(source, conn->agent->main_context);
	g_source_unref(source);
}

static void
kmx_ssh_conn_reply_code(KmxSshConn *conn, guint8 code)
{
	kmx_ssh_conn_send_code(conn, code);
	kmx_ssh_conn_done(conn);
}

static void
kmx_ssh_conn_reply(KmxSshConn *conn, GByteArray *msg)
{
	kmx_ssh_conn_send(conn, msg);
	kmx_ssh_conn_done(conn);
}

/* main thread: the client sent something that is no agent message */
static void
kmx_ssh_conn_malformed(KmxSshConn *conn, const char *why)
{
	kmx_ssh_conn_close(conn, why);
	conn->busy = FALSE;
}

/* ---- the key cache --------------------------------------------------------- */

/* main thread: the OpenSSH blob of a key OpenSSH can use, or NULL */
static GBytes *
kmx_ssh_agent_key_blob(KmxSshAgent *self, KmxKey *key)
{
	const char *id = kmx_key_get_id(key);
	GBytes *blob = g_hash_table_lookup(self->blob_of_key, id);
	g_autoptr(GBytes) spki = NULL;
	g_autoptr(GError) error = NULL;

	if (blob != NULL) {
		/* its blob was another id's, which is gone */
		if (!g_hash_table_contains(self->key_of_blob, blob))
			g_hash_table_insert(self->key_of_blob, g_bytes_ref(blob), g_strdup(id));
		return blob;
	}
	if (!(kmx_key_get_usage(key) & KMX_KEY_USAGE_SIGN) ||
	    kmx_ssh_key_type_name(kmx_key_get_key_type(key)) == NULL ||
	    (spki = kmx_key_dup_public_key(key)) == NULL)
		return NULL;
	blob = kmx_ssh_public_key_from_spki(spki, NULL, &error);
	if (blob == NULL) {
		g_debug("ssh-agent: key %s has no OpenSSH form: %s", id, error->message);
		return NULL;
	}
	/* the public key of a key id never changes */
	g_hash_table_insert(self->blob_of_key, g_strdup(id), blob);
	g_hash_table_insert(self->key_of_blob, g_bytes_ref(blob), g_strdup(id));
	return blob;
}

/* main thread: forget the keys no available device has any more (deleted,
 * or on a device that went away), so the cache holds what is there */
static void
kmx_ssh_agent_sweep(KmxSshAgent *self, GHashTable *live)
{
	GHashTableIter iter;
	gpointer id, blob;
	guint before = g_hash_table_size(self->blob_of_key);

	g_hash_table_iter_init(&iter, self->blob_of_key);
	while (g_hash_table_iter_next(&iter, &id, &blob)) {
		if (g_hash_table_contains(live, id))
			continue;
		/* the same key may be on another device, under another id */
		if (g_strcmp0(g_hash_table_lookup(self->key_of_blob, blob), id) == 0)
			g_hash_table_remove(self->key_of_blob, blob);
		g_hash_table_iter_remove(&iter);
	}
	if (g_hash_table_size(self->blob_of_key) != before)
		g_debug("ssh-agent: %u keys in the cache, %u gone",
			g_hash_table_size(self->blob_of_key),
			before - g_hash_table_size(self->blob_of_key));
}

/* main thread: every key of every available device, each OpenSSH blob once */
static void
kmx_ssh_agent_foreach_key(KmxSshAgent *self,
			  void (*func)(KmxKey *key, GBytes *blob, gpointer user_data),
			  gpointer user_data)
{
	g_autoptr(GPtrArray) devices = kmx_manager_get_devices(self->manager);
	g_autoptr(GHashTable) seen = g_hash_table_new(g_bytes_hash, g_bytes_equal);
	g_autoptr(GHashTable) live = g_hash_table_new(g_str_hash, g_str_equal);

	for (guint i = 0; i < devices->len; i++) {
		KmxDevice *device = g_ptr_array_index(devices, i);
		GPtrArray *keys;

		if (!kmx_device_is_available(device))
			continue;
		keys = kmx_device_get_keys(device);
		for (guint j = 0; j < keys->len; j++) {
			KmxKey *key = g_ptr_array_index(keys, j);
			GBytes *blob = kmx_ssh_agent_key_blob(self, key);

			if (blob == NULL)
				continue;
			g_hash_table_add(live, (gpointer)kmx_key_get_id(key));
			if (!g_hash_table_add(seen, blob))
				continue;
			func(key, blob, user_data);
		}
	}
	kmx_ssh_agent_sweep(self, live);
}

static void
kmx_ssh_agent_noop(KmxKey *key, GBytes *blob, gpointer user_data)
{
}

/* main thread: the key with this OpenSSH blob, or NULL */
static KmxKey *
kmx_ssh_agent_find_key(KmxSshAgent *self, const guint8 *p, gsize len)
{
	g_autoptr(GBytes) blob = g_bytes_new_static(p, len);
	const char *id = g_hash_table_lookup(self->key_of_blob, blob);

	if (id == NULL) {
		/* a key added since the cache last saw every key */
		kmx_ssh_agent_foreach_key(self, kmx_ssh_agent_noop, NULL);
		id = g_hash_table_lookup(self->key_of_blob, blob);
	}
	if (id == NULL)
		return NULL;
	return kmx_manager_pick_key(self->manager, id, NULL);
}

/* ---- REQUEST_IDENTITIES -------------------------------------------------------- */

typedef struct {
	GByteArray *msg;
	guint32 count;
} KmxSshIdentities;

static void
kmx_ssh_agent_add_identity(KmxKey *key, GBytes *blob, gpointer user_data)
{
	KmxSshIdentities *ids = user_data;
	g_autofree char *label = kmx_key_dup_label(key);
	gsize len = 0;
	const guint8 *p = g_bytes_get_data(blob, &len);

	kmx_ssh_put_string(ids->msg, p, len);
	kmx_ssh_put_cstring(ids->msg, label != NULL ? label : "");
	ids->count++;
}

static void
kmx_ssh_conn_identities(KmxSshConn *conn)
{
	g_autoptr(GByteArray) msg = g_byte_array_new();
	KmxSshIdentities ids = {msg, 0};

	kmx_ssh_put_byte(msg, SSH2_AGENT_IDENTITIES_ANSWER);
	kmx_ssh_put_u32(msg, 0);
	kmx_ssh_agent_foreach_key(conn->agent, kmx_ssh_agent_add_identity, &ids);
	msg->data[1] = (guint8)(ids.count >> 24);
	msg->data[2] = (guint8)(ids.count >> 16);
	msg->data[3] = (guint8)(ids.count >> 8);
	msg->data[4] = (guint8)ids.count;
	kmx_ssh_conn_reply(conn, msg);
}

/* ---- SIGN_REQUEST ---------------------------------------------------------------- */

typedef struct {
	KmxSshConn *conn;
	KmxKeyType type;
	KmxMechanism mechanism;
} KmxSshSigning;

static void
kmx_ssh_signing_free(gpointer data)
{
	KmxSshSigning *s = data;
	kmx_ssh_conn_unref(s->conn);
	g_free(s);
}

/* on the executor, or the main thread */
static void
kmx_ssh_conn_signed(KmxRequest *req,
		    const KmxRequestResult *result,
		    const GError *error,
		    gpointer user_data)
{
	KmxSshSigning *s = user_data;
	g_autoptr(GError) error_local = NULL;
	g_autoptr(GBytes) sig = NULL;
	g_autoptr(GByteArray) msg = NULL;

	if (error != NULL) {
		g_debug("ssh-agent: sign failed: %s", error->message);
		kmx_ssh_conn_reply_code(s->conn, SSH_AGENT_FAILURE);
		return;
	}
	sig = kmx_ssh_signature_new(s->type, s->mechanism, result->bytes, &error_local);
	if (sig == NULL) {
		g_warning("ssh-agent: %s", error_local->message);
		kmx_ssh_conn_reply_code(s->conn, SSH_AGENT_FAILURE);
		return;
	}
	msg = g_byte_array_sized_new(16 + (guint)g_bytes_get_size(sig));
	kmx_ssh_put_byte(msg, SSH2_AGENT_SIGN_RESPONSE);
	kmx_ssh_put_string(msg, g_bytes_get_data(sig, NULL), g_bytes_get_size(sig));
	kmx_ssh_conn_reply(s->conn, msg);
}

/* the DigestInfo of the SHA-1 digest of @data, for a legacy ssh-rsa signature */
static GBytes *
kmx_ssh_sha1_digest_info(const guint8 *data, gsize len)
{
	guint8 digest[20];
	gnutls_datum_t d = {digest, sizeof(digest)};
	gnutls_datum_t out = {NULL, 0};
	GBytes *info;

	if (gnutls_hash_fast(GNUTLS_DIG_SHA1, data, len, digest) < 0 ||
	    gnutls_encode_ber_digest_info(GNUTLS_DIG_SHA1, &d, &out) < 0)
		return NULL;
	info = g_bytes_new(out.data, out.size);
	gnutls_free(out.data);
	return info;
}

static void
kmx_ssh_conn_sign(KmxSshConn *conn, const KmxSshAgentMessage *m)
{
	KmxSshAgent *self = conn->agent;
	const guint8 *data = m->data;
	gsize data_len = m->data_len;
	guint32 flags = m->flags;
	KmxKey *key;
	KmxKeyType type;
	KmxMechanism mech = KMX_MECHANISM_UNKNOWN;
	g_autoptr(GBytes) payload = NULL;
	KmxRequest *req;
	KmxSshSigning *s;

	key = kmx_ssh_agent_find_key(self, m->key_blob, m->key_blob_len);
	if (key == NULL) {
		g_debug("ssh-agent: a signature with a key keymux does not have");
		kmx_ssh_conn_reply_code(conn, SSH_AGENT_FAILURE);
		return;
	}
	type = kmx_key_get_key_type(key);
	if (type == KMX_KEY_TYPE_ED25519)
		mech = KMX_MECHANISM_ED25519;
	else if (type == KMX_KEY_TYPE_ECDSA_P256)
		mech = KMX_MECHANISM_ECDSA_SHA256;
	else if (type == KMX_KEY_TYPE_ECDSA_P384)
		mech = KMX_MECHANISM_ECDSA_SHA384;
	else if (flags & SSH_AGENT_RSA_SHA2_512)
		mech = KMX_MECHANISM_RSA_PKCS1_SHA512;
	else if (flags & SSH_AGENT_RSA_SHA2_256)
		mech = KMX_MECHANISM_RSA_PKCS1_SHA256;
	else if (!self->allow_sha1) {
		g_message("ssh-agent: refused a SHA-1 ssh-rsa signature with key %s for pid %u "
			  "(%s): SHA-1 signatures are forgeable; set [ssh-agent] "
			  "allow-sha1-rsa=true to allow them",
			  kmx_key_get_id(key),
			  kmx_caller_get_pid(conn->caller),
			  kmx_caller_get_exe(conn->caller));
		kmx_ssh_conn_reply_code(conn, SSH_AGENT_FAILURE);
		return;
	} else {
		/* the raw PKCS#1 v1.5 signature of a DigestInfo keymux makes */
		mech = KMX_MECHANISM_RSA_PKCS1_RAW;
		payload = kmx_ssh_sha1_digest_info(data, data_len);
		if (payload == NULL) {
			g_warning("ssh-agent: cannot make the SHA-1 DigestInfo of an ssh-rsa "
				  "signature");
			kmx_ssh_conn_reply_code(conn, SSH_AGENT_FAILURE);
			return;
		}
	}
	if (payload == NULL)
		payload = g_bytes_new(data, data_len);
	req = kmx_request_new(self->manager,
			      conn->caller,
			      KMX_REQUEST_SIGN,
			      kmx_key_get_device(key),
			      key);
	kmx_request_get_args(req)->op.mechanism = mech;
	kmx_request_get_args(req)->op.data = g_steal_pointer(&payload);
	s = g_new0(KmxSshSigning, 1);
	s->conn = kmx_ssh_conn_ref(conn);
	s->type = type;
	s->mechanism = mech;
	kmx_request_start(req, kmx_ssh_conn_signed, s, kmx_ssh_signing_free);
}

/* ---- ADD_IDENTITY ---------------------------------------------------------------- */

static void
kmx_ssh_conn_added(KmxRequest *req,
		   const KmxRequestResult *result,
		   const GError *error,
		   gpointer user_data)
{
	KmxSshConn *conn = user_data;

	/* a key keymux has already: ssh-agent answers that with success too */
	if (error != NULL && !g_error_matches(error, KMX_ERROR, KMX_ERROR_EXISTS)) {
		g_message("ssh-agent: ssh-add by pid %u (%s) failed: %s",
			  kmx_caller_get_pid(conn->caller),
			  kmx_caller_get_exe(conn->caller),
			  error->message);
		kmx_ssh_conn_reply_code(conn, SSH_AGENT_FAILURE);
		return;
	}
	kmx_ssh_conn_reply_code(conn, SSH_AGENT_SUCCESS);
}

static void
kmx_ssh_conn_add(KmxSshConn *conn, KmxSshAgentMessage *m)
{
	KmxSshAgent *self = conn->agent;
	KmxDevice *device;
	KmxRequest *req;
	KmxRequestArgs *args;

	/* a key type keymux has not, or constraints it cannot honour */
	if (m->refusal != NULL) {
		g_message("ssh-agent: refused ssh-add by pid %u (%s) of %s",
			  kmx_caller_get_pid(conn->caller),
			  kmx_caller_get_exe(conn->caller),
			  m->refusal);
		kmx_ssh_conn_reply_code(conn, SSH_AGENT_FAILURE);
		return;
	}
	device = kmx_manager_find_device(self->manager, self->import_device);
	if (device == NULL) {
		g_message("ssh-agent: refused ssh-add: there is no device %s to import into "
			  "([ssh-agent] import-device)",
			  self->import_device);
		kmx_ssh_conn_reply_code(conn, SSH_AGENT_FAILURE);
		return;
	}
	req = kmx_request_new(self->manager, conn->caller, KMX_REQUEST_IMPORT_KEY, device, NULL);
	args = kmx_request_get_args(req);
	args->import.data = kmx_secret_to_bytes(m->pem);
	args->import.passphrase = kmx_secret_new(0);
	args->import.label = m->comment != NULL && m->comment[0] != '\0'
				 ? g_steal_pointer(&m->comment)
				 : g_strdup("ssh-add");
	kmx_request_start(req,
			  kmx_ssh_conn_added,
			  kmx_ssh_conn_ref(conn),
			  (GDestroyNotify)kmx_ssh_conn_unref);
}

/* ---- LOCK, UNLOCK ---------------------------------------------------------------- */

static void
kmx_ssh_conn_locked(gpointer user_data, gpointer unused)
{
	KmxSshConn *conn = user_data;

	kmx_ssh_conn_reply_code(conn, SSH_AGENT_SUCCESS);
	kmx_ssh_conn_unref(conn);
}

static void
kmx_ssh_conn_lock(KmxSshConn *conn)
{
	/* the agent's passphrase is no keymux secret: LOCK locks every device,
	 * which its own secrets open again; the reply once every one is */
	kmx_audit_record_event(conn->caller, "lock-all", "every device", NULL);
	kmx_manager_lock_all_then(conn->agent->manager,
				  kmx_ssh_conn_locked,
				  kmx_ssh_conn_ref(conn));
}

typedef struct {
	KmxSshConn *conn;
	guint pending;
	gboolean unlocked;
} KmxSshUnlocking;

static void
kmx_ssh_conn_unlocked(KmxRequest *req,
		      const KmxRequestResult *result,
		      const GError *error,
		      gpointer user_data)
{
	KmxSshUnlocking *u = user_data;

	if (error == NULL)
		u->unlocked = TRUE;
	else
		g_debug("ssh-agent: unlock of %s: %s",
			kmx_device_get_id(kmx_request_get_device(req)),
			error->message);
	if (--u->pending > 0)
		return;
	kmx_ssh_conn_reply_code(u->conn, u->unlocked ? SSH_AGENT_SUCCESS : SSH_AGENT_FAILURE);
	kmx_ssh_conn_unref(u->conn);
	g_free(u);
}

static void
kmx_ssh_conn_unlock(KmxSshConn *conn, const KmxSshAgentMessage *m)
{
	g_autoptr(GPtrArray) devices = NULL;
	g_autoptr(GPtrArray) locked = g_ptr_array_new();
	g_autoptr(KmxSecret) secret = NULL;
	const guint8 *pass = m->passphrase;
	gsize len = m->passphrase_len;
	KmxSshUnlocking *u;

	devices = kmx_manager_get_devices(conn->agent->manager);
	for (guint i = 0; i < devices->len; i++) {
		KmxDevice *device = g_ptr_array_index(devices, i);
		/* a card or a TPM counts wrong tries: the agent's passphrase is
		 * not spent on them on a guess; they prompt when used */
		if (kmx_device_is_available(device) && kmx_device_is_locked(device) &&
		    kmx_device_has_secret(device) && kmx_device_get_pin_retries(device) < 0)
			g_ptr_array_add(locked, device);
	}
	if (locked->len == 0 || len == 0) {
		kmx_ssh_conn_reply_code(conn, SSH_AGENT_FAILURE);
		return;
	}
	/* every such device gets the passphrase, and opens if it is its own */
	secret = kmx_secret_new_from_data(pass, len);
	u = g_new0(KmxSshUnlocking, 1);
	u->conn = kmx_ssh_conn_ref(conn);
	u->pending = locked->len;
	for (guint i = 0; i < locked->len; i++) {
		KmxRequest *req = kmx_request_new(conn->agent->manager,
						  conn->caller,
						  KMX_REQUEST_UNLOCK,
						  g_ptr_array_index(locked, i),
						  NULL);
		kmx_request_get_args(req)->unlock.secret = kmx_secret_ref(secret);
		kmx_request_get_options(req)->interactive = FALSE;
		kmx_request_start(req, kmx_ssh_conn_unlocked, u, NULL);
	}
}

/* ---- EXTENSION --------------------------------------------------------------------- */

static void
kmx_ssh_conn_extension(KmxSshConn *conn, const KmxSshAgentMessage *m)
{
	g_autoptr(GBytes) host = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *fp = NULL;
	g_autofree char *subject = NULL;

	if (!m->session_bind) {
		g_debug("ssh-agent: unknown extension %s", m->extension);
		kmx_ssh_conn_reply_code(conn, SSH_AGENT_FAILURE);
		return;
	}
	/* the host key signed the session identifier in the key exchange: a
	 * bind it did not sign is a client's claim about a host, refused */
	host = g_bytes_new(m->host_key, m->host_key_len);
	fp = kmx_ssh_fingerprint(host);
	if (!kmx_ssh_verify_signature(host,
				      m->session_id,
				      m->session_id_len,
				      m->signature,
				      m->signature_len,
				      &error)) {
		g_message("ssh-agent: refused session-bind to host key %s from pid %u (%s): %s",
			  fp,
			  kmx_caller_get_pid(conn->caller),
			  kmx_caller_get_exe(conn->caller),
			  error->message);
		kmx_ssh_conn_reply_code(conn, SSH_AGENT_FAILURE);
		return;
	}
	/* recorded, not enforced: keymux has no per-destination key constraints */
	subject = g_strdup_printf("to host key %s", fp);
	kmx_audit_record_event(conn->caller,
			       "session-bind",
			       subject,
			       m->forwarding ? "host signature verified, forwarded"
					     : "host signature verified, direct");
	kmx_ssh_conn_reply_code(conn, SSH_AGENT_SUCCESS);
}

/* ---- dispatch ------------------------------------------------------------------------ */

static void
kmx_ssh_conn_refused(KmxSshConn *conn, const char *what)
{
	g_message("ssh-agent: refused %s from pid %u (%s): keymux keys are deleted with "
		  "'keymuxctl delete KEY', never by ssh-add",
		  what,
		  kmx_caller_get_pid(conn->caller),
		  kmx_caller_get_exe(conn->caller));
	kmx_ssh_conn_reply_code(conn, SSH_AGENT_FAILURE);
}

/* main thread, after the authorisation hook let the client through */
static void
kmx_ssh_conn_dispatch(KmxSshConn *conn, const guint8 *data, gsize len)
{
	g_auto(KmxSshAgentMessage) m;
	g_autoptr(GError) error = NULL;

	if (!kmx_ssh_agent_message_parse(&m, data, len, &error)) {
		kmx_ssh_conn_malformed(conn, error->message);
		return;
	}
	switch (m.type) {
	case SSH2_AGENTC_REQUEST_IDENTITIES:
		kmx_ssh_conn_identities(conn);
		return;
	case SSH2_AGENTC_SIGN_REQUEST:
		kmx_ssh_conn_sign(conn, &m);
		return;
	case SSH2_AGENTC_ADD_IDENTITY:
	case SSH2_AGENTC_ADD_ID_CONSTRAINED:
		kmx_ssh_conn_add(conn, &m);
		return;
	case SSH2_AGENTC_REMOVE_IDENTITY:
		kmx_ssh_conn_refused(conn, "REMOVE_IDENTITY (ssh-add -d)");
		return;
	case SSH2_AGENTC_REMOVE_ALL_IDENTITIES:
		kmx_ssh_conn_refused(conn, "REMOVE_ALL_IDENTITIES (ssh-add -D)");
		return;
	case SSH_AGENTC_LOCK:
		kmx_ssh_conn_lock(conn);
		return;
	case SSH_AGENTC_UNLOCK:
		kmx_ssh_conn_unlock(conn, &m);
		return;
	case SSH_AGENTC_EXTENSION:
		kmx_ssh_conn_extension(conn, &m);
		return;
	default:
		g_debug("ssh-agent: message type %u is not supported", m.type);
		kmx_ssh_conn_reply_code(conn, SSH_AGENT_FAILURE);
		return;
	}
}

typedef struct {
	KmxSshConn *conn;
	const guint8 *data;
	gsize len;
	gboolean done;
} KmxSshMessage;

static void
kmx_ssh_conn_authorized(KmxCaller *caller, const GError *error, gpointer user_data)
{
	KmxSshMessage *m = user_data;

	m->done = TRUE;
	if (error != NULL) {
		if (!m->conn->told_denied)
			g_message("ssh-agent: refused pid %u (%s): %s",
				  kmx_caller_get_pid(caller),
				  kmx_caller_get_exe(caller),
				  error->message);
		m->conn->told_denied = TRUE;
		kmx_ssh_conn_reply_code(m->conn, SSH_AGENT_FAILURE);
		return;
	}
	kmx_ssh_conn_dispatch(m->conn, m->data, m->len);
}

/* main thread: one message, whose bytes are valid until this returns */
static void
kmx_ssh_conn_handle(KmxSshConn *conn, const guint8 *data, gsize len)
{
	KmxSshMessage m = {conn, data, len, FALSE};

	/* a peer's credentials are known from the start (SO_PEERCRED), so the
	 * hook answers at once */
	kmx_manager_authorize(conn->agent->manager, conn->caller, kmx_ssh_conn_authorized, &m);
	if (!m.done) {
		g_warning("ssh-agent: the authorisation hook did not answer at once");
		kmx_ssh_conn_close(conn, "cannot authorise it");
		conn->busy = FALSE;
	}
}

static guint32
kmx_ssh_be32(const guint8 *p)
{
	return ((guint32)p[0] << 24) | ((guint32)p[1] << 16) | ((guint32)p[2] << 8) | (guint32)p[3];
}

/* main thread: whether a whole message waits */
static gboolean
kmx_ssh_conn_has_message(KmxSshConn *conn)
{
	return conn->in_len >= 4 && conn->in_len >= 4 + (gsize)kmx_ssh_be32(conn->in);
}

/* main thread: the message at the front is handled; wipe it */
static void
kmx_ssh_conn_consume(KmxSshConn *conn, gsize n)
{
	gsize rest = conn->in_len - n;

	memmove(conn->in, conn->in + n, rest);
	kmx_secure_zero(conn->in + rest, conn->in_len - rest);
	conn->in_len = rest;
	if (rest == 0) {
		g_clear_pointer(&conn->in, g_free);
		conn->in_cap = 0;
	}
}

/* main thread: handle every complete message, one at a time */
static void
kmx_ssh_conn_process(KmxSshConn *conn)
{
	G_GNUC_UNUSED g_autoptr(KmxSshConn) hold = kmx_ssh_conn_ref(conn);

	conn->processing = TRUE;
	while (!conn->closed && !conn->busy && conn->in_len >= 4) {
		guint32 len = kmx_ssh_be32(conn->in);

		if (len == 0 || len > KMX_SSH_AGENT_MAX_MESSAGE) {
			kmx_ssh_conn_close(conn,
					   len == 0 ? "an empty message"
						    : "a message over 256 KiB");
			break;
		}
		if (conn->in_len < 4 + (gsize)len)
			break;
		conn->busy = TRUE;
		kmx_ssh_conn_handle(conn, conn->in + 4, len);
		kmx_ssh_conn_consume(conn, 4 + (gsize)len);
	}
	conn->processing = FALSE;
	g_mutex_lock(&conn->mutex);
	if (!conn->closed && (conn->broken || (conn->eof && !conn->busy && conn->out->len == 0))) {
		g_mutex_unlock(&conn->mutex);
		kmx_ssh_conn_close(conn, NULL);
		return;
	}
	g_mutex_unlock(&conn->mutex);
	kmx_ssh_conn_update_watch(conn);
}

/* main thread: read what is there, at most one whole message ahead;
 * FALSE when the connection ended */
static gboolean
kmx_ssh_conn_read(KmxSshConn *conn)
{
	for (;;) {
		gsize want = KMX_SSH_AGENT_READ_CHUNK;
		g_autoptr(GError) error = NULL;
		gssize n;

		if (conn->in_len >= 4) {
			guint32 len = kmx_ssh_be32(conn->in);
			if (len == 0 || len > KMX_SSH_AGENT_MAX_MESSAGE) {
				kmx_ssh_conn_close(conn,
						   len == 0 ? "an empty message"
							    : "a message over 256 KiB");
				return FALSE;
			}
			/* a whole message is there: handle it before reading on */
			if (conn->in_len >= 4 + (gsize)len)
				return TRUE;
			want = MAX(want, 4 + (gsize)len);
		}
		if (conn->in_cap < want) {
			/* grown by hand: realloc would leave a copy unwiped */
			guint8 *in = g_malloc(want);
			if (conn->in != NULL) {
				memcpy(in, conn->in, conn->in_len);
				kmx_secure_zero(conn->in, conn->in_cap);
				g_free(conn->in);
			}
			conn->in = in;
			conn->in_cap = want;
		}
		n = g_socket_receive(conn->socket,
				     (char *)conn->in + conn->in_len,
				     conn->in_cap - conn->in_len,
				     NULL,
				     &error);
		if (n < 0 && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
			return TRUE;
		/* a client that shut down its side while its request runs
		 * still gets the reply */
		if (n == 0 && conn->busy) {
			conn->eof = TRUE;
			return TRUE;
		}
		if (n <= 0) {
			kmx_ssh_conn_close(conn, NULL);
			return FALSE;
		}
		conn->in_len += (gsize)n;
	}
}

static gboolean
kmx_ssh_conn_io_cb(GSocket *socket, GIOCondition condition, gpointer user_data)
{
	KmxSshConn *conn = user_data;
	G_GNUC_UNUSED g_autoptr(KmxSshConn) hold = kmx_ssh_conn_ref(conn);

	if (condition & G_IO_OUT) {
		g_mutex_lock(&conn->mutex);
		kmx_ssh_conn_flush_locked(conn);
		g_mutex_unlock(&conn->mutex);
	}
	if (condition & G_IO_IN) {
		if (!kmx_ssh_conn_read(conn))
			return G_SOURCE_REMOVE;
	} else if (condition & (G_IO_HUP | G_IO_ERR | G_IO_NVAL)) {
		/* hung up while a request was in flight: cancel it */
		kmx_ssh_conn_close(conn, NULL);
		return G_SOURCE_REMOVE;
	}
	kmx_ssh_conn_process(conn);
	return G_SOURCE_CONTINUE;
}

/* main thread: watch for what the connection waits for */
static void
kmx_ssh_conn_update_watch(KmxSshConn *conn)
{
	GIOCondition want = G_IO_HUP | G_IO_ERR;
	gboolean pending;

	if (conn->closed)
		return;
	g_mutex_lock(&conn->mutex);
	pending = conn->out->len > 0;
	g_mutex_unlock(&conn->mutex);
	/* no input read while a reply waits to be written, nor while a
	 * request runs and the next message is there already: one message at
	 * a time, and a client that does not read its replies stops being
	 * read.  A client that waits for its reply keeps the same watch
	 * throughout, and its hang-up is seen (cancelling its request) */
	if (pending)
		want |= G_IO_OUT;
	else if (!conn->eof && (!conn->busy || !kmx_ssh_conn_has_message(conn)))
		want |= G_IO_IN;
	if (want == conn->watching)
		return;
	if (conn->source != NULL) {
		g_source_destroy(conn->source);
		g_clear_pointer(&conn->source, g_source_unref);
	}
	conn->source = g_socket_create_source(conn->socket, want, NULL);
	g_source_set_callback(conn->source,
			      (GSourceFunc)(void (*)(void))kmx_ssh_conn_io_cb,
			      kmx_ssh_conn_ref(conn),
			      (GDestroyNotify)kmx_ssh_conn_unref);
	g_source_attach(conn->source, conn->agent->main_context);
	conn->watching = want;
}

/* ---- the listening socket -------------------------------------------------------------- */

static void
kmx_ssh_agent_new_conn(KmxSshAgent *self, GSocket *socket)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GCredentials) creds = NULL;
	g_autofree char *name = NULL;
	KmxSshConn *conn;
	uid_t uid;
	pid_t pid;

	g_socket_set_blocking(socket, FALSE);
	creds = g_socket_get_credentials(socket, &error);
	if (creds == NULL) {
		g_warning("ssh-agent: cannot identify a client: %s", error->message);
		return;
	}
	uid = g_credentials_get_unix_user(creds, NULL);
	pid = g_credentials_get_unix_pid(creds, NULL);
	if (uid == (uid_t)-1 || pid <= 0) {
		g_warning("ssh-agent: the kernel did not say who a client is");
		return;
	}
	conn = g_new0(KmxSshConn, 1);
	g_atomic_ref_count_init(&conn->ref);
	conn->agent = g_object_ref(self);
	conn->socket = g_object_ref(socket);
	name = g_strdup_printf("ssh-agent client %d", (int)pid);
	conn->caller = kmx_caller_new_for_peer(name, (guint32)uid, (guint32)pid);
	conn->out = g_byte_array_new();
	g_mutex_init(&conn->mutex);
	g_hash_table_add(self->conns, conn);
	g_debug("ssh-agent: a client, pid %d (%s), uid %u",
		(int)pid,
		kmx_caller_get_exe(conn->caller),
		(guint)uid);
	kmx_ssh_conn_update_watch(conn);
}

static gboolean kmx_ssh_agent_accept_cb(GSocket *listener, GIOCondition cond, gpointer data);

static void
kmx_ssh_agent_watch_listener(KmxSshAgent *self)
{
	self->accept_source = g_socket_create_source(self->listener, G_IO_IN, NULL);
	g_source_set_callback(self->accept_source,
			      (GSourceFunc)(void (*)(void))kmx_ssh_agent_accept_cb,
			      self,
			      NULL);
	g_source_attach(self->accept_source, self->main_context);
}

static gboolean
kmx_ssh_agent_accept_again_cb(gpointer user_data)
{
	KmxSshAgent *self = user_data;

	self->accept_failing = FALSE;
	if (self->listener != NULL && self->accept_source == NULL)
		kmx_ssh_agent_watch_listener(self);
	return G_SOURCE_REMOVE;
}

static gboolean
kmx_ssh_agent_accept_cb(GSocket *listener, GIOCondition cond, gpointer user_data)
{
	KmxSshAgent *self = user_data;

	for (guint i = 0; i < 64; i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GSocket) socket = g_socket_accept(listener, NULL, &error);

		if (socket != NULL && self->max_connections > 0 &&
		    g_hash_table_size(self->conns) >= self->max_connections) {
			/* each holds a file descriptor, which the key stores need too */
			if (!self->told_full)
				g_warning("ssh-agent: %u clients are connected: refusing more "
					  "([ssh-agent] max-connections)",
					  self->max_connections);
			self->told_full = TRUE;
			(void)g_socket_close(socket, NULL);
			continue;
		}
		if (socket != NULL) {
			self->told_full = FALSE;
			kmx_ssh_agent_new_conn(self, socket);
			continue;
		}
		if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
			break;
		/* out of file descriptors: stop accepting for a second rather
		 * than spin on a listener that stays readable */
		g_warning("ssh-agent: cannot accept a client: %s", error->message);
		g_clear_pointer(&self->accept_source, g_source_unref);
		self->accept_failing = TRUE;
		g_timeout_add_seconds_full(G_PRIORITY_DEFAULT,
					   1,
					   kmx_ssh_agent_accept_again_cb,
					   g_object_ref(self),
					   g_object_unref);
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

static gboolean
kmx_ssh_agent_is_listening_unix(int fd)
{
	int domain = 0, type = 0, listening = 0;
	socklen_t len = sizeof(int);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX)
		return FALSE;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
		return FALSE;
	len = sizeof(int);
	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening;
}

/**
 * kmx_ssh_agent_take_listen_fd:
 *
 * Takes the listening socket systemd passed (sd_listen_fds(3): LISTEN_PID,
 * LISTEN_FDS, LISTEN_FDNAMES), once: the one named "ssh-agent" or after
 * the keymuxd-ssh-agent.socket unit, or an only one without a name.  The
 * variables are removed, so that no child sees them.
 *
 * Returns: the fd, or -1 when there is none
 */
int
kmx_ssh_agent_take_listen_fd(void)
{
	const char *pid_str = g_getenv("LISTEN_PID");
	const char *fds_str = g_getenv("LISTEN_FDS");
	const char *names_str = g_getenv("LISTEN_FDNAMES");
	g_auto(GStrv) names = NULL;
	guint64 pid = 0, n = 0;
	int found = -1;

	if (pid_str == NULL || fds_str == NULL ||
	    !g_ascii_string_to_unsigned(pid_str, 10, 1, G_MAXINT, &pid, NULL) ||
	    !g_ascii_string_to_unsigned(fds_str, 10, 1, 64, &n, NULL) || pid != (guint64)getpid())
		return -1;
	if (names_str != NULL)
		names = g_strsplit(names_str, ":", -1);
	for (guint i = 0; i < n; i++) {
		int fd = KMX_LISTEN_FDS_START + (int)i;
		const char *name = names != NULL && i < g_strv_length(names) ? names[i] : NULL;
		gboolean ours = name == NULL ? n == 1
					     : g_str_equal(name, "ssh-agent") ||
						   g_str_equal(name, "keymuxd-ssh-agent.socket");

		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (found < 0 && ours && kmx_ssh_agent_is_listening_unix(fd))
			found = fd;
	}
	g_unsetenv("LISTEN_PID");
	g_unsetenv("LISTEN_FDS");
	g_unsetenv("LISTEN_FDNAMES");
	return found;
}

/* the private directory of the socket: ours, nobody else's */
static gboolean
kmx_ssh_agent_make_dir(const char *dir, GError **error)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		int e = errno;
		g_set_error(error,
			    G_IO_ERROR,
			    g_io_error_from_errno(e),
			    "cannot create %s: %s",
			    dir,
			    g_strerror(e));
		return FALSE;
	}
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid()) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_PERMISSION_DENIED,
			    "%s is not a directory of this user",
			    dir);
		return FALSE;
	}
	if ((st.st_mode & 0077) != 0 && chmod(dir, 0700) != 0) {
		int e = errno;
		g_set_error(error,
			    G_IO_ERROR,
			    g_io_error_from_errno(e),
			    "cannot make %s private: %s",
			    dir,
			    g_strerror(e));
		return FALSE;
	}
	return TRUE;
}

/* a socket file left by a keymuxd that died is replaced; a live one is not */
static gboolean
kmx_ssh_agent_clear_path(const char *path, GError **error)
{
	g_autoptr(GSocket) probe = NULL;
	g_autoptr(GSocketAddress) address = NULL;
	struct stat st;

	if (lstat(path, &st) != 0)
		return TRUE;
	if (!S_ISSOCK(st.st_mode)) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_EXISTS,
			    "%s exists and is no socket",
			    path);
		return FALSE;
	}
	probe = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, error);
	if (probe == NULL)
		return FALSE;
	address = g_unix_socket_address_new(path);
	if (g_socket_connect(probe, address, NULL, NULL)) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_ADDRESS_IN_USE,
			    "another agent serves %s",
			    path);
		return FALSE;
	}
	(void)unlink(path);
	return TRUE;
}

static GSocket *
kmx_ssh_agent_bind(KmxSshAgent *self, GError **error)
{
	g_autofree char *dir = g_build_filename(g_get_user_runtime_dir(), "keymux", NULL);
	g_autofree char *path = g_build_filename(dir, "ssh", NULL);
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GSocketAddress) address = NULL;

	if (strlen(path) >= 108) {
		g_set_error(error,
			    G_IO_ERROR,
			    G_IO_ERROR_FILENAME_TOO_LONG,
			    "the socket path %s is too long for a Unix socket",
			    path);
		return NULL;
	}
	if (!kmx_ssh_agent_make_dir(dir, error) || !kmx_ssh_agent_clear_path(path, error))
		return NULL;
	socket = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, error);
	if (socket == NULL)
		return NULL;
	address = g_unix_socket_address_new(path);
	if (!g_socket_bind(socket, address, FALSE, error)) {
		g_prefix_error(error, "cannot bind %s: ", path);
		return NULL;
	}
	self->path = g_steal_pointer(&path);
	if (chmod(self->path, 0600) != 0) {
		int e = errno;
		g_set_error(error,
			    G_IO_ERROR,
			    g_io_error_from_errno(e),
			    "cannot make %s private: %s",
			    self->path,
			    g_strerror(e));
		return NULL;
	}
	g_socket_set_listen_backlog(socket, 128);
	if (!g_socket_listen(socket, error))
		return NULL;
	return g_steal_pointer(&socket);
}

/**
 * kmx_ssh_agent_start:
 *
 * Serves the agent on the socket systemd passed, or on the one it binds
 * when the configuration enables it; nothing otherwise.
 */
gboolean
kmx_ssh_agent_start(KmxSshAgent *self, GError **error)
{
	KmxContext *context = kmx_manager_get_context(self->manager);
	gboolean enabled = kmx_context_get_boolean(context, "ssh-agent", "enabled", FALSE);
	int fd = kmx_ssh_agent_take_listen_fd();

	g_return_val_if_fail(KMX_IS_SSH_AGENT(self), FALSE);
	g_return_val_if_fail(self->listener == NULL, FALSE);
	self->allow_sha1 = kmx_context_get_boolean(context, "ssh-agent", "allow-sha1-rsa", FALSE);
	self->max_connections = (guint)CLAMP(kmx_context_get_int(context,
								 "ssh-agent",
								 "max-connections",
								 KMX_SSH_AGENT_MAX_CONNECTIONS),
					     0,
					     G_MAXINT);
	g_free(self->import_device);
	self->import_device =
	    kmx_context_get_string(context, "ssh-agent", "import-device", "softkey:login");
	if (fd >= 0) {
		/* the user enabled the socket unit: that is the switch */
		self->listener = g_socket_new_from_fd(fd, error);
		if (self->listener == NULL) {
			close(fd);
			return FALSE;
		}
	} else if (!enabled) {
		g_debug("ssh-agent: not enabled in %s", kmx_context_get_config_path(context));
		return TRUE;
	} else {
		self->listener = kmx_ssh_agent_bind(self, error);
		if (self->listener == NULL)
			return FALSE;
	}
	g_socket_set_blocking(self->listener, FALSE);
	kmx_ssh_agent_watch_listener(self);
	g_info("ssh-agent: serving %s",
	       self->path != NULL ? self->path : "the socket systemd passed");
	return TRUE;
}

/**
 * kmx_ssh_agent_get_path:
 *
 * Returns: (nullable): the socket it bound
 */
const char *
kmx_ssh_agent_get_path(KmxSshAgent *self)
{
	g_return_val_if_fail(KMX_IS_SSH_AGENT(self), NULL);
	return self->path;
}

/**
 * kmx_ssh_agent_stop:
 *
 * Stops listening and ends every connection; main thread.
 */
void
kmx_ssh_agent_stop(KmxSshAgent *self)
{
	GHashTableIter iter;
	gpointer conn;
	g_autoptr(GPtrArray) conns = g_ptr_array_new();

	g_return_if_fail(KMX_IS_SSH_AGENT(self));
	if (self->accept_source != NULL) {
		g_source_destroy(self->accept_source);
		g_clear_pointer(&self->accept_source, g_source_unref);
	}
	if (self->listener != NULL) {
		(void)g_socket_close(self->listener, NULL);
		g_clear_object(&self->listener);
	}
	if (self->path != NULL) {
		(void)unlink(self->path);
		g_clear_pointer(&self->path, g_free);
	}
	g_hash_table_iter_init(&iter, self->conns);
	while (g_hash_table_iter_next(&iter, &conn, NULL))
		g_ptr_array_add(conns, conn);
	for (guint i = 0; i < conns->len; i++)
		kmx_ssh_conn_close(g_ptr_array_index(conns, i), NULL);
}

static void
kmx_ssh_agent_dispose(GObject *object)
{
	KmxSshAgent *self = KMX_SSH_AGENT(object);

	kmx_ssh_agent_stop(self);
	G_OBJECT_CLASS(kmx_ssh_agent_parent_class)->dispose(object);
}

static void
kmx_ssh_agent_finalize(GObject *object)
{
	KmxSshAgent *self = KMX_SSH_AGENT(object);

	g_hash_table_unref(self->conns);
	g_hash_table_unref(self->blob_of_key);
	g_hash_table_unref(self->key_of_blob);
	g_free(self->import_device);
	g_main_context_unref(self->main_context);
	g_object_unref(self->manager);
	G_OBJECT_CLASS(kmx_ssh_agent_parent_class)->finalize(object);
}

static void
kmx_ssh_agent_class_init(KmxSshAgentClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->dispose = kmx_ssh_agent_dispose;
	object_class->finalize = kmx_ssh_agent_finalize;
}

static void
kmx_ssh_agent_init(KmxSshAgent *self)
{
	self->conns = g_hash_table_new_full(g_direct_hash,
					    g_direct_equal,
					    (GDestroyNotify)kmx_ssh_conn_unref,
					    NULL);
	self->blob_of_key =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_bytes_unref);
	self->key_of_blob = g_hash_table_new_full(g_bytes_hash,
						  g_bytes_equal,
						  (GDestroyNotify)g_bytes_unref,
						  g_free);
	self->main_context = g_main_context_ref_thread_default();
	self->main_thread = g_thread_self();
}

/**
 * kmx_ssh_agent_new:
 *
 * Returns: (transfer full): an agent, on the calling (main) thread; start it
 */
KmxSshAgent *
kmx_ssh_agent_new(KmxManager *manager)
{
	KmxSshAgent *self;

	g_return_val_if_fail(KMX_IS_MANAGER(manager), NULL);
	self = g_object_new(KMX_TYPE_SSH_AGENT, NULL);
	self->manager = g_object_ref(manager);
	return self;
}

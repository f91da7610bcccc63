/*
 * kmx-bench-dbus: a client of keymuxd's d-bus api (and of the ideal daemon,
 * which speaks the same subset)
 *
 *   bench      Key.Sign / Key.Decrypt in a loop, N clients, N connections
 *              (--p2p: each client's own Manager.OpenConnection peer connection)
 *   import     Device.ImportKey of PEM files into softkey:login
 *   seed       ImportKey of freshly generated ed25519 keys, in parallel
 *   scale      Manager.ListKeys and ObjectManager.GetManagedObjects latency
 *              (--p2p: over a Manager.OpenConnection peer connection)
 *   wait-name  print CLOCK_MONOTONIC when a name gets an owner
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "kb-common.h"

#include <gio/gio.h>
#include <gio/gunixfdlist.h>
#include <gnutls/x509.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define KMX_PREFIX	"org.keymux.Keystore1"
#define MANAGER_PATH	"/org/keymux/Keystore1"
#define CALL_TIMEOUT_MS (120 * 1000)

static gchar *opt_address;
static gchar *opt_name;
static gboolean opt_p2p;

static GDBusConnection *
connect_bus(GError **error)
{
	GDBusConnection *conn;
	if (opt_address == NULL) {
		g_set_error_literal(error, KB_ERROR, KB_ERROR_FAILED, "--address is required");
		return NULL;
	}
	conn = g_dbus_connection_new_for_address_sync(
	    opt_address,
	    G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
		G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
	    NULL,
	    NULL,
	    error);
	if (conn == NULL) {
		g_prefix_error(error, "connecting to %s: ", opt_address);
		return NULL;
	}
	g_dbus_connection_set_exit_on_close(conn, FALSE);
	return conn;
}

/* a remote error is the peer's refusal: keep its name, it is what a person acts on */
static void
peer_error(GError **error, GError *local, const gchar *what)
{
	g_autofree gchar *remote = g_dbus_error_get_remote_error(local);
	if (remote != NULL) {
		/* a documented refusal of an algorithm is "not supported here", not a failure */
		KbError code = g_strcmp0(remote, KMX_PREFIX ".Error.NotSupported") == 0
				   ? KB_ERROR_UNSUPPORTED
				   : KB_ERROR_PEER;
		g_dbus_error_strip_remote_error(local);
		g_set_error(error, KB_ERROR, code, "%s: %s: %s", what, remote, local->message);
	} else {
		g_set_error(error, KB_ERROR, KB_ERROR_PEER, "%s: %s", what, local->message);
	}
}

static GVariant *
call(GDBusConnection *conn,
     const gchar *path,
     const gchar *iface,
     const gchar *method,
     GVariant *params,
     const gchar *reply_type,
     GError **error)
{
	g_autoptr(GError) local = NULL;
	GVariant *ret = g_dbus_connection_call_sync(
	    conn,
	    g_dbus_connection_get_unique_name(conn) != NULL ? opt_name : NULL,
	    path,
	    iface,
	    method,
	    params,
	    G_VARIANT_TYPE(reply_type),
	    G_DBUS_CALL_FLAGS_NO_AUTO_START,
	    CALL_TIMEOUT_MS,
	    NULL,
	    &local);
	if (ret == NULL) {
		g_autofree gchar *what = g_strdup_printf("%s.%s on %s", iface, method, path);
		peer_error(error, local, what);
	}
	return ret;
}

static GVariant *
bytes_variant(const guint8 *data, gsize len)
{
	return g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, data, len, 1);
}

static gchar *
find_key(GDBusConnection *conn, const gchar *id, GError **error)
{
	g_autoptr(GVariant) ret = call(conn,
				       MANAGER_PATH,
				       KMX_PREFIX ".Manager",
				       "FindKey",
				       g_variant_new("(s)", id),
				       "(ao)",
				       error);
	g_autoptr(GVariantIter) iter = NULL;
	gchar *path = NULL;
	if (ret == NULL)
		return NULL;
	g_variant_get(ret, "(ao)", &iter);
	if (!g_variant_iter_next(iter, "o", &path)) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_PROTOCOL,
			    "FindKey(%s) returned no object and no error",
			    id);
		return NULL;
	}
	return path;
}

static gchar *
find_device(GDBusConnection *conn, const gchar *device_id, GError **error)
{
	g_autoptr(GVariant) ret =
	    call(conn, MANAGER_PATH, KMX_PREFIX ".Manager", "ListDevices", NULL, "(ao)", error);
	g_autoptr(GVariantIter) iter = NULL;
	const gchar *path;
	if (ret == NULL)
		return NULL;
	g_variant_get(ret, "(ao)", &iter);
	while (g_variant_iter_next(iter, "&o", &path)) {
		g_autoptr(GVariant) prop = call(conn,
						path,
						"org.freedesktop.DBus.Properties",
						"Get",
						g_variant_new("(ss)", KMX_PREFIX ".Device", "Id"),
						"(v)",
						error);
		g_autoptr(GVariant) value = NULL;
		if (prop == NULL)
			return NULL;
		g_variant_get(prop, "(v)", &value);
		if (g_variant_is_of_type(value, G_VARIANT_TYPE_STRING) &&
		    g_strcmp0(g_variant_get_string(value, NULL), device_id) == 0)
			return g_strdup(path);
	}
	g_set_error(error,
		    KB_ERROR,
		    KB_ERROR_PEER,
		    "no device with Id '%s' in ListDevices()",
		    device_id);
	return NULL;
}

static gboolean
import_data(GDBusConnection *conn,
	    const gchar *device,
	    const guint8 *data,
	    gsize len,
	    const gchar *label,
	    gchar **path_out,
	    GError **error)
{
	g_autoptr(GVariant) ret = NULL;
	g_autoptr(GVariantIter) iter = NULL;
	GVariantBuilder opts;

	g_variant_builder_init(&opts, G_VARIANT_TYPE("a{sv}"));
	ret = call(conn,
		   device,
		   KMX_PREFIX ".Device",
		   "ImportKey",
		   g_variant_new("(@ayss@a{sv})",
				 bytes_variant(data, len),
				 "",
				 label,
				 g_variant_builder_end(&opts)),
		   "(ao)",
		   error);
	if (ret == NULL)
		return FALSE;
	g_variant_get(ret, "(ao)", &iter);
	if (!g_variant_iter_next(iter, "o", path_out)) {
		g_set_error_literal(error,
				    KB_ERROR,
				    KB_ERROR_PROTOCOL,
				    "ImportKey returned no key object");
		return FALSE;
	}
	return TRUE;
}

/* ---- bench ---- */

/* Manager.OpenConnection on @bus: a peer connection to the service */
static GDBusConnection *
open_peer(GDBusConnection *bus, GError **error)
{
	g_autoptr(GError) local = NULL;
	g_autoptr(GUnixFDList) fds = NULL;
	g_autoptr(GVariant)
	    ret = g_dbus_connection_call_with_unix_fd_list_sync(bus,
								opt_name,
								MANAGER_PATH,
								KMX_PREFIX ".Manager",
								"OpenConnection",
								NULL,
								G_VARIANT_TYPE("(h)"),
								G_DBUS_CALL_FLAGS_NO_AUTO_START,
								CALL_TIMEOUT_MS,
								NULL,
								&fds,
								NULL,
								&local);
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GSocketConnection) stream = NULL;
	gint32 handle = 0;
	int fd;

	if (ret == NULL) {
		peer_error(error, local, "Manager.OpenConnection");
		return NULL;
	}
	g_variant_get(ret, "(h)", &handle);
	fd = g_unix_fd_list_get(fds, handle, error);
	if (fd < 0)
		return NULL;
	socket = g_socket_new_from_fd(fd, error);
	if (socket == NULL) {
		close(fd);
		return NULL;
	}
	stream = g_socket_connection_factory_create_connection(socket);
	return g_dbus_connection_new_sync(G_IO_STREAM(stream),
					  NULL,
					  G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT,
					  NULL,
					  NULL,
					  error);
}

typedef struct {
	const gchar *id;
	KbAlg alg;
	GBytes *input;
} OpCfg;

typedef struct {
	OpCfg *cfg;
	GDBusConnection *conn;
	gchar *path;
	const gchar *method;
} OpState;

static gpointer
op_open(gpointer cfg_ptr, guint index, GError **error)
{
	OpCfg *cfg = cfg_ptr;
	g_autoptr(GDBusConnection) conn = connect_bus(error);
	OpState *state;
	gchar *path;
	if (conn == NULL)
		return NULL;
	if (opt_p2p) {
		GDBusConnection *bus = g_steal_pointer(&conn);
		conn = open_peer(bus, error);
		if (conn == NULL) {
			g_object_unref(bus);
			return NULL;
		}
		/* the caller stays on the bus, as a libkeymux client does */
		g_object_set_data_full(G_OBJECT(conn), "kb-bus", bus, g_object_unref);
	}
	path = find_key(conn, cfg->id, error);
	if (path == NULL)
		return NULL;
	state = g_new0(OpState, 1);
	state->cfg = cfg;
	state->conn = g_steal_pointer(&conn);
	state->path = path;
	state->method = kb_alg_is_decrypt(cfg->alg) ? "Decrypt" : "Sign";
	return state;
}

static gboolean
op_call(gpointer state_ptr, GByteArray *out, GError **error)
{
	OpState *state = state_ptr;
	g_autoptr(GVariant) ret = NULL;
	g_autoptr(GVariant) result = NULL;
	GVariantBuilder opts;
	const guint8 *p;
	gsize len;

	g_variant_builder_init(&opts, G_VARIANT_TYPE("a{sv}"));
	p = g_bytes_get_data(state->cfg->input, &len);
	ret = call(state->conn,
		   state->path,
		   KMX_PREFIX ".Key",
		   state->method,
		   g_variant_new("(s@ay@a{sv})",
				 kb_alg_to_string(state->cfg->alg),
				 bytes_variant(p, len),
				 g_variant_builder_end(&opts)),
		   "(ay)",
		   error);
	if (ret == NULL)
		return FALSE;
	g_variant_get(ret, "(@ay)", &result);
	p = g_variant_get_fixed_array(result, &len, 1);
	g_byte_array_append(out, p, len);
	return TRUE;
}

static void
op_close(gpointer state_ptr)
{
	OpState *state = state_ptr;
	g_object_unref(state->conn);
	g_free(state->path);
	g_free(state);
}

static const KbDriver op_driver = {op_open, op_call, op_close};

static int
cmd_bench(int argc, char **argv)
{
	KbCommonOptions opts = {0};
	g_autofree GOptionEntry *entries = kb_common_entries(&opts);
	g_autoptr(GOptionContext) ctx = g_option_context_new("bench - Key.Sign/Decrypt load");
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) ciphertext = NULL;
	GOptionEntry bus_entries[] = {
	    {"address", 0, 0, G_OPTION_ARG_STRING, &opt_address, "Bus address", "ADDR"},
	    {"name", 0, 0, G_OPTION_ARG_STRING, &opt_name, "Service bus name", "NAME"},
	    {"p2p",
	     0,
	     0,
	     G_OPTION_ARG_NONE,
	     &opt_p2p,
	     "Call over a peer connection (Manager.OpenConnection)",
	     NULL},
	    {NULL}};
	OpCfg cfg = {0};
	KbRun run = {.driver = &op_driver, .cfg = &cfg};

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_add_main_entries(ctx, bus_entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error))
		return kb_report_error("dbus", error);
	if (!kb_common_prepare(&opts, &run, &ciphertext, &error))
		return kb_report_error(opts.label, error);
	cfg.id = run.key->id;
	cfg.alg = run.alg;
	cfg.input = ciphertext != NULL ? g_bytes_ref(ciphertext) : kb_message();
	if (!kb_run(&run, &error))
		return kb_report_error(opts.label, error);
	return 0;
}

/* ---- import ---- */

static int
cmd_import(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new("import KEY.pem... - ImportKey");
	g_autoptr(GError) error = NULL;
	g_autoptr(GDBusConnection) conn = NULL;
	g_autofree gchar *device = NULL;
	GOptionEntry entries[] = {
	    {"address", 0, 0, G_OPTION_ARG_STRING, &opt_address, "Bus address", "ADDR"},
	    {"name", 0, 0, G_OPTION_ARG_STRING, &opt_name, "Service bus name", "NAME"},
	    {NULL}};

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error))
		return kb_report_error("import", error);
	conn = connect_bus(&error);
	if (conn == NULL)
		return kb_report_error("import", error);
	device = find_device(conn, "softkey:login", &error);
	if (device == NULL)
		return kb_report_error("import", error);
	for (int i = 2; i < argc; i++) {
		g_autoptr(GBytes) data = kb_read_file(argv[i], &error);
		g_autofree gchar *path = NULL;
		g_autofree gchar *label = NULL;
		if (data == NULL)
			return kb_report_error("import", error);
		label = g_path_get_basename(argv[i]);
		if (!import_data(conn,
				 device,
				 g_bytes_get_data(data, NULL),
				 g_bytes_get_size(data),
				 label,
				 &path,
				 &error)) {
			g_prefix_error(&error, "%s: ", argv[i]);
			return kb_report_error("import", error);
		}
		g_print("%s %s\n", argv[i], path);
	}
	return 0;
}

/* ---- seed: the slow but always correct way to fill a store ---- */

typedef struct {
	guint count;
	guint clients;
} SeedCfg;

typedef struct {
	GDBusConnection *conn;
	gchar *device;
	guint index;
	guint quota; /* this client's share of the keys */
	guint done;
	gboolean warmed;
} SeedState;

static gpointer
seed_open(gpointer cfg_ptr, guint index, GError **error)
{
	SeedCfg *cfg = cfg_ptr;
	g_autoptr(GDBusConnection) conn = connect_bus(error);
	SeedState *state;
	gchar *device;
	if (conn == NULL)
		return NULL;
	device = find_device(conn, "softkey:login", error);
	if (device == NULL)
		return NULL;
	state = g_new0(SeedState, 1);
	state->conn = g_steal_pointer(&conn);
	state->device = device;
	state->index = index;
	state->quota = cfg->count / cfg->clients + (index < cfg->count % cfg->clients ? 1 : 0);
	return state;
}

static gboolean
seed_op(gpointer state_ptr, GByteArray *out, GError **error)
{
	SeedState *state = state_ptr;
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_datum_t pem = {NULL, 0};
	g_autofree gchar *path = NULL;
	g_autofree gchar *label = NULL;
	gboolean ok;
	int rc;

	/* the runner's checked first call: the device lookup in open() was the check */
	if (!state->warmed) {
		state->warmed = TRUE;
		return TRUE;
	}
	/* FALSE without an error: this client has added its share */
	if (state->done >= state->quota)
		return FALSE;
	rc = gnutls_x509_privkey_init(&xkey);
	if (rc >= 0)
		rc = gnutls_x509_privkey_generate(xkey, GNUTLS_PK_EDDSA_ED25519, 256, 0);
	if (rc >= 0)
		rc = gnutls_x509_privkey_export2_pkcs8(xkey,
						       GNUTLS_X509_FMT_PEM,
						       NULL,
						       GNUTLS_PKCS_PLAIN,
						       &pem);
	gnutls_x509_privkey_deinit(xkey);
	if (rc < 0) {
		g_set_error(error,
			    KB_ERROR,
			    KB_ERROR_FAILED,
			    "generating a key: %s",
			    gnutls_strerror(rc));
		return FALSE;
	}
	label = g_strdup_printf("bench-seed-%u-%u", state->index, state->done);
	ok = import_data(state->conn, state->device, pem.data, pem.size, label, &path, error);
	gnutls_free(pem.data);
	if (ok)
		state->done++;
	return ok;
}

static void
seed_close(gpointer state_ptr)
{
	SeedState *state = state_ptr;
	g_object_unref(state->conn);
	g_free(state->device);
	g_free(state);
}

static const KbDriver seed_driver = {seed_open, seed_op, seed_close};

static int
cmd_seed(int argc, char **argv)
{
	g_autoptr(GOptionContext)
	    ctx = g_option_context_new("seed - ImportKey of new ed25519 keys");
	g_autoptr(GError) error = NULL;
	gint count = 100, clients = 8;
	gdouble seconds = 600;
	GOptionEntry entries[] = {
	    {"address", 0, 0, G_OPTION_ARG_STRING, &opt_address, "Bus address", "ADDR"},
	    {"name", 0, 0, G_OPTION_ARG_STRING, &opt_name, "Service bus name", "NAME"},
	    {"count", 'n', 0, G_OPTION_ARG_INT, &count, "Keys to add", "N"},
	    {"clients", 'c', 0, G_OPTION_ARG_INT, &clients, "Parallel clients", "N"},
	    {"seconds", 's', 0, G_OPTION_ARG_DOUBLE, &seconds, "Give up after", "S"},
	    {NULL}};
	SeedCfg cfg = {0};
	KbRun run = {.driver = &seed_driver,
		     .cfg = &cfg,
		     .alg = KB_ALG_ED25519,
		     .check = KB_CHECK_NONE,
		     .label = "seed"};

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error))
		return kb_report_error("seed", error);
	if (count < 1 || clients < 1) {
		g_set_error_literal(&error,
				    KB_ERROR,
				    KB_ERROR_FAILED,
				    "--count and --clients >= 1");
		return kb_report_error("seed", error);
	}
	run.clients = MIN(clients, count);
	run.seconds = seconds;
	cfg.count = count;
	cfg.clients = run.clients;
	if (!kb_run(&run, &error))
		return kb_report_error("seed", error);
	return 0;
}

/* ---- scale ---- */

typedef struct {
	GDBusConnection *conn;
	const gchar *iface;
	const gchar *method;
	const gchar *reply_type;
	GVariant *last; /* the last reply, for its size */
} ScaleCall;

static gboolean
scale_call(gpointer data, GError **error)
{
	ScaleCall *c = data;

	g_clear_pointer(&c->last, g_variant_unref);
	c->last = call(c->conn, MANAGER_PATH, c->iface, c->method, NULL, c->reply_type, error);
	return c->last != NULL;
}

static gboolean
time_calls(GDBusConnection *conn,
	   const gchar *iface,
	   const gchar *method,
	   const gchar *reply_type,
	   guint repeat,
	   gdouble seconds,
	   gdouble *p50_us,
	   gdouble *max_us,
	   GVariant **last,
	   GError **error)
{
	ScaleCall c = {conn, iface, method, reply_type, NULL};

	if (!kb_scale_time(scale_call, &c, repeat, seconds, p50_us, max_us, error)) {
		g_clear_pointer(&c.last, g_variant_unref);
		return FALSE;
	}
	*last = c.last;
	return TRUE;
}

static int
cmd_scale(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new("scale - listing latency");
	g_autoptr(GError) error = NULL;
	g_autoptr(GDBusConnection) bus = NULL;
	g_autoptr(GDBusConnection) conn = NULL;
	g_autoptr(GVariant) keys = NULL;
	g_autoptr(GVariant) objects = NULL;
	gint repeat = 20;
	gdouble seconds = 5;
	gdouble lk_p50 = 0, lk_max = 0, gmo_p50 = 0, gmo_max = 0;
	g_autofree gchar *methods = NULL;
	gboolean lk, gmo;
	GOptionEntry entries[] = {
	    {"address", 0, 0, G_OPTION_ARG_STRING, &opt_address, "Bus address", "ADDR"},
	    {"name", 0, 0, G_OPTION_ARG_STRING, &opt_name, "Service bus name", "NAME"},
	    {"repeat", 'r', 0, G_OPTION_ARG_INT, &repeat, "Calls of each", "N"},
	    {"seconds", 's', 0, G_OPTION_ARG_DOUBLE, &seconds, "At most this long each", "S"},
	    {"p2p",
	     0,
	     0,
	     G_OPTION_ARG_NONE,
	     &opt_p2p,
	     "Call over a Manager.OpenConnection peer connection",
	     NULL},
	    {"methods",
	     'm',
	     0,
	     G_OPTION_ARG_STRING,
	     &methods,
	     "listkeys, gmo or both (default): only those are called, e.g. to count one "
	     "call's instructions",
	     "WHICH"},
	    {NULL}};

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error))
		return kb_report_error("scale", error);
	if (!kb_scale_methods(methods, &lk, &gmo, &error))
		return kb_report_error("scale", error);
	if (repeat < 1)
		repeat = 1;
	bus = connect_bus(&error);
	if (bus == NULL)
		return kb_report_error("scale", error);
	conn = opt_p2p ? open_peer(bus, &error) : g_object_ref(bus);
	if (conn == NULL)
		return kb_report_error("scale", error);
	if ((lk && !time_calls(conn,
			       KMX_PREFIX ".Manager",
			       "ListKeys",
			       "(ao)",
			       repeat,
			       seconds,
			       &lk_p50,
			       &lk_max,
			       &keys,
			       &error)) ||
	    (gmo && !time_calls(conn,
				"org.freedesktop.DBus.ObjectManager",
				"GetManagedObjects",
				"(a{oa{sa{sv}}})",
				repeat,
				seconds,
				&gmo_p50,
				&gmo_max,
				&objects,
				&error)))
		return kb_report_error("scale", error);
	{
		g_autoptr(GVariant) list = keys != NULL ? g_variant_get_child_value(keys, 0) : NULL;
		g_autoptr(GVariant) map = objects != NULL ? g_variant_get_child_value(objects, 0)
							  : NULL;
		kb_scale_print(opt_p2p ? "scale-p2p" : "scale",
			       list != NULL ? g_variant_n_children(list) : 0,
			       map != NULL ? g_variant_n_children(map) : 0,
			       lk_p50,
			       lk_max,
			       gmo_p50,
			       gmo_max,
			       objects != NULL ? g_variant_get_size(objects) : 0);
	}
	return 0;
}

/* ---- wait-name ---- */

typedef struct {
	GMainLoop *loop;
	guint64 owned_ns;
} WaitCtx;

static void
on_owner_changed(GDBusConnection *conn,
		 const gchar *sender,
		 const gchar *path,
		 const gchar *iface,
		 const gchar *signal,
		 GVariant *params,
		 gpointer user_data)
{
	WaitCtx *w = user_data;
	const gchar *name, *old_owner, *new_owner;
	guint64 now = kb_now_ns();
	g_variant_get(params, "(&s&s&s)", &name, &old_owner, &new_owner);
	if (g_strcmp0(name, opt_name) == 0 && new_owner[0] != '\0') {
		w->owned_ns = now;
		g_main_loop_quit(w->loop);
	}
}

static gboolean
on_timeout(gpointer user_data)
{
	WaitCtx *w = user_data;
	g_main_loop_quit(w->loop);
	return G_SOURCE_REMOVE;
}

static int
cmd_wait_name(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new("wait-name - when a name is owned");
	g_autoptr(GError) error = NULL;
	g_autoptr(GDBusConnection) conn = NULL;
	g_autoptr(GVariant) has = NULL;
	g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
	gdouble timeout = 60;
	WaitCtx w = {loop, 0};
	GOptionEntry entries[] = {
	    {"address", 0, 0, G_OPTION_ARG_STRING, &opt_address, "Bus address", "ADDR"},
	    {"name", 0, 0, G_OPTION_ARG_STRING, &opt_name, "Bus name", "NAME"},
	    {"timeout", 't', 0, G_OPTION_ARG_DOUBLE, &timeout, "Give up after", "S"},
	    {NULL}};

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error))
		return kb_report_error("wait-name", error);
	conn = connect_bus(&error);
	if (conn == NULL)
		return kb_report_error("wait-name", error);
	g_dbus_connection_signal_subscribe(conn,
					   "org.freedesktop.DBus",
					   "org.freedesktop.DBus",
					   "NameOwnerChanged",
					   "/org/freedesktop/DBus",
					   opt_name,
					   G_DBUS_SIGNAL_FLAGS_NONE,
					   on_owner_changed,
					   &w,
					   NULL);
	/* the match rule is in place once a round trip after it has returned */
	has = g_dbus_connection_call_sync(conn,
					  "org.freedesktop.DBus",
					  "/org/freedesktop/DBus",
					  "org.freedesktop.DBus",
					  "NameHasOwner",
					  g_variant_new("(s)", opt_name),
					  G_VARIANT_TYPE("(b)"),
					  G_DBUS_CALL_FLAGS_NONE,
					  -1,
					  NULL,
					  &error);
	if (has == NULL)
		return kb_report_error("wait-name", error);
	{
		gboolean owned;
		g_variant_get(has, "(b)", &owned);
		if (owned) {
			g_set_error(&error,
				    KB_ERROR,
				    KB_ERROR_FAILED,
				    "%s already has an owner",
				    opt_name);
			return kb_report_error("wait-name", error);
		}
	}
	g_print("ready\n");
	fflush(stdout);
	g_timeout_add((guint)(timeout * 1000), on_timeout, &w);
	g_main_loop_run(loop);
	if (w.owned_ns == 0) {
		g_set_error(&error,
			    KB_ERROR,
			    KB_ERROR_FAILED,
			    "%s got no owner in %.0f s",
			    opt_name,
			    timeout);
		return kb_report_error("wait-name", error);
	}
	g_print("{\"ok\":true,\"owned_ns\":%" G_GUINT64_FORMAT "}\n", w.owned_ns);
	return 0;
}

int
main(int argc, char **argv)
{
	const gchar *cmd = argc > 1 ? argv[1] : "";
	opt_name = g_strdup(KMX_PREFIX);
	if (g_strcmp0(cmd, "bench") == 0)
		return cmd_bench(argc, argv);
	if (g_strcmp0(cmd, "import") == 0)
		return cmd_import(argc, argv);
	if (g_strcmp0(cmd, "seed") == 0)
		return cmd_seed(argc, argv);
	if (g_strcmp0(cmd, "scale") == 0)
		return cmd_scale(argc, argv);
	if (g_strcmp0(cmd, "wait-name") == 0)
		return cmd_wait_name(argc, argv);
	g_printerr("usage: %s bench|import|seed|scale|wait-name [OPTIONS]\n", argv[0]);
	return 1;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux test: libkeymux against a real keymuxd (run by tests/test-lib.sh)
 *
 *   kmx-test-lib p2p|bus OUTDIR
 *   kmx-test-lib async-new PID   keymux_client_new() while keymuxd (PID) is
 *                                stopped: it returns at once, the client
 *                                comes once keymuxd runs again
 *   kmx-test-lib flags ADDRESS   keymux_client_new_for_bus(): the flags on
 *                                the session bus, and on the bus at
 *                                ADDRESS, which has no keymuxd
 *
 * Expects keymuxd on the session bus with an unprotected, empty
 * softkey:login store; "p2p" or "bus" is the connection the client must
 * have got.  Writes OUTDIR/{sync,async}.{msg,sig,pub} for openssl to check.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymux.h"

#define check(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, "\n");                                                     \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define check_ok(ret, error) check((ret), "%s", (error) != NULL ? (error)->message : "no error")
#define check_error(error, code)                                                                   \
	check(g_error_matches((error), KEYMUX_ERROR, (code)),                                      \
	      "wanted code %d, got %s",                                                            \
	      (code),                                                                              \
	      (error) != NULL ? (error)->message : "success")

static GMainLoop *loop;
static GAsyncResult *last_result;

static void
done_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	last_result = g_object_ref(res);
	g_main_loop_quit(loop);
}

static gboolean
too_long_cb(gpointer data)
{
	fprintf(stderr, "FAIL: %s never came\n", (const char *)data);
	exit(1);
}

/* runs the loop until done_cb or a signal handler quits it */
static GAsyncResult *
wait_for(const char *what)
{
	guint id = g_timeout_add_seconds(60, too_long_cb, (gpointer)what);

	g_clear_object(&last_result);
	g_main_loop_run(loop);
	g_source_remove(id);
	return last_result;
}

static void
write_file(const char *dir, const char *name, GBytes *bytes)
{
	g_autofree char *path = g_build_filename(dir, name, NULL);
	g_autoptr(GError) error = NULL;
	gsize len = 0;
	const char *data = g_bytes_get_data(bytes, &len);

	check_ok(g_file_set_contents(path, data != NULL ? data : "", (gssize)len, &error), error);
}

static void
write_file_take(const char *dir, const char *name, GBytes *bytes)
{
	write_file(dir, name, bytes);
	g_bytes_unref(bytes);
}

static void
quit_cb(void)
{
	g_main_loop_quit(loop);
}

static guint notified;

static void
label_notify_cb(GObject *key, GParamSpec *pspec, gpointer data)
{
	notified++;
	g_main_loop_quit(loop);
}

/* a prompter that keeps its question and never answers it */
static KeymuxPromptRequest *asked;
static char *withdrawn_path;
static guint withdrawn_count;

static gboolean
keep_ask_cb(KeymuxPrompter *prompter, KeymuxPromptRequest *request, gpointer data)
{
	check(asked == NULL, "asked twice");
	asked = g_object_ref(request);
	g_main_loop_quit(loop);
	return TRUE;
}

static void
withdrawn_cb(KeymuxPrompter *prompter, const char *device_path, gpointer data)
{
	withdrawn_count++;
	g_free(withdrawn_path);
	withdrawn_path = g_strdup(device_path);
	g_main_loop_quit(loop);
}

/* every round trip of the setup is asynchronous: keymux_client_new()
 * returns while keymuxd cannot answer (a synchronous one waits for the
 * D-Bus timeouts, then fails) */
static int
cmd_async_new(pid_t pid)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KeymuxClient) client = NULL;
	g_autoptr(KeymuxDevice) device = NULL;

	check(kill(pid, SIGSTOP) == 0, "SIGSTOP %d: %s", (int)pid, g_strerror(errno));
	keymux_client_new(NULL, done_cb, NULL);
	check(kill(pid, SIGCONT) == 0, "SIGCONT %d: %s", (int)pid, g_strerror(errno));
	client = keymux_client_new_finish(wait_for("the client"), &error);
	check_ok(client != NULL, error);
	check(keymux_client_get_peer_to_peer(client), "no peer connection");
	device = keymux_client_lookup_device(client, "softkey:login");
	check(device != NULL, "no softkey:login");
	printf("ok async-new\n");
	return 0;
}

/* keymux_client_new_for_bus() and its flags */
static int
cmd_flags(const char *bare_address)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KeymuxClient) client = NULL;
	g_autoptr(KeymuxClient) waiting = NULL;
	g_autoptr(GDBusConnection) bare = NULL;
	g_autoptr(KeymuxDevice) device = NULL;
	g_autoptr(KeymuxKey) key = NULL;
	g_auto(GStrv) backends = NULL;
	g_autofree char *label = NULL;
	g_autolist(GObject) devices = NULL;

	/* BUS_ONLY on the session bus: no connection of its own */
	keymux_client_new_for_bus(NULL, KEYMUX_CLIENT_FLAGS_BUS_ONLY, NULL, done_cb, NULL);
	client = keymux_client_new_for_bus_finish(wait_for("the bus client"), &error);
	check_ok(client != NULL, error);
	check(!keymux_client_get_peer_to_peer(client), "a peer connection despite BUS_ONLY");
	check(keymux_client_get_running(client), "keymuxd is not running, says the client");
	backends = keymux_client_dup_backends(client);
	check(backends != NULL && g_strv_contains((const char *const *)backends, "softkey"),
	      "no softkey backend");
	device = keymux_client_lookup_device(client, "softkey:login");
	check(device != NULL, "no softkey:login");
	key = keymux_device_generate_key_full_sync(device,
						   "ed25519",
						   NULL,
						   NULL,
						   NULL,
						   KEYMUX_CALL_FLAGS_NONE,
						   NULL,
						   &error);
	check_ok(key != NULL, error);
	label = keymux_key_dup_label(key);
	/* keymuxd names a key given no label */
	check(label != NULL && *label != '\0', "no label");
	check_ok(keymux_key_delete_sync(key, NULL, &error), error);

	/* a bus without keymuxd: REQUIRE_SERVICE fails at once, sync and async */
	bare = g_dbus_connection_new_for_address_sync(
	    bare_address,
	    G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
		G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
	    NULL,
	    NULL,
	    &error);
	check_ok(bare != NULL, error);
	check(keymux_client_new_for_bus_sync(bare,
					     KEYMUX_CLIENT_FLAGS_REQUIRE_SERVICE,
					     NULL,
					     &error) == NULL,
	      "a client with no keymuxd");
	check_error(error, KEYMUX_ERROR_UNAVAILABLE);
	check(strstr(error->message, "keymuxd is not running") != NULL, "%s", error->message);
	g_clear_error(&error);
	keymux_client_new_for_bus(bare, KEYMUX_CLIENT_FLAGS_REQUIRE_SERVICE, NULL, done_cb, NULL);
	check(keymux_client_new_for_bus_finish(wait_for("the failure"), &error) == NULL,
	      "a client with no keymuxd, async");
	check_error(error, KEYMUX_ERROR_UNAVAILABLE);
	g_clear_error(&error);
	/* without it, the client waits for keymuxd: not running, no devices */
	waiting = keymux_client_new_for_bus_sync(bare, KEYMUX_CLIENT_FLAGS_NONE, NULL, &error);
	check_ok(waiting != NULL, error);
	check(!keymux_client_get_peer_to_peer(waiting), "a peer connection with no keymuxd");
	check(!keymux_client_get_running(waiting), "keymuxd runs on a bus without it");
	devices = keymux_client_get_devices(waiting);
	check(devices == NULL, "devices with no keymuxd");
	printf("ok flags\n");
	return 0;
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KeymuxClient) client = NULL;
	g_autoptr(KeymuxClient) other = NULL;
	g_autoptr(KeymuxDevice) device = NULL;
	g_autoptr(KeymuxKey) key = NULL;
	g_autoptr(KeymuxKey) rsa = NULL;
	g_autoptr(GBytes) msg = g_bytes_new_static("signed through libkeymux\n", 25);
	g_autoptr(GBytes) sig = NULL;
	g_autoptr(GList) found = NULL;
	g_autolist(GObject) keys = NULL;
	g_autolist(GObject) devices = NULL;
	g_autofree char *label = NULL;
	const char *outdir;
	gboolean want_p2p;

	loop = g_main_loop_new(NULL, FALSE);
	if (argc == 3 && g_str_equal(argv[1], "async-new"))
		return cmd_async_new((pid_t)atoi(argv[2]));
	if (argc == 3 && g_str_equal(argv[1], "flags"))
		return cmd_flags(argv[2]);
	check(argc == 3, "usage: kmx-test-lib p2p|bus OUTDIR");
	want_p2p = g_str_equal(argv[1], "p2p");
	outdir = argv[2];

	/* ---- the client, async, on the connection it should have ---- */
	keymux_client_new(NULL, done_cb, NULL);
	client = keymux_client_new_finish(wait_for("the client"), &error);
	check_ok(client != NULL, error);
	check(keymux_client_get_peer_to_peer(client) == want_p2p,
	      "peer-to-peer is %d, wanted %d",
	      keymux_client_get_peer_to_peer(client),
	      want_p2p);
	check(keymux_client_get_version(client) != NULL, "no Version");
	devices = keymux_client_get_devices(client);
	check(g_list_length(devices) >= 1, "no devices");
	device = keymux_client_lookup_device(client, "softkey:login");
	check(device != NULL, "no softkey:login");
	check(g_str_equal(keymux_device_get_id(device), "softkey:login"), "id");
	check(!keymux_device_get_locked(device), "an unprotected store is open");
	check(keymux_device_get_pin_retries(device) == -1, "no PIN retries on a soft store");
	check(keymux_client_lookup_device(client, "softkey:nothing") == NULL,
	      "a device from nowhere");
	check(keymux_client_lookup_key(client, "not a path") == NULL, "a key from nowhere");

	/* ---- generate, async: the key is among the client's objects from the
	 * signals that announced it, before the reply ---- */
	keymux_device_generate_key(device,
				   "ed25519",
				   "lib key",
				   KEYMUX_CALL_FLAGS_NONE,
				   NULL,
				   done_cb,
				   NULL);
	key = keymux_device_generate_key_finish(device, wait_for("GenerateKey"), &error);
	check_ok(key != NULL, error);
	{
		g_autoptr(KeymuxKey) known =
		    keymux_client_lookup_key(client,
					     g_dbus_proxy_get_object_path(G_DBUS_PROXY(key)));
		check(known != NULL, "the new key is not among the client's objects");
	}
	check(g_str_equal(keymux_key_get_algorithm(key), "ed25519"), "algorithm");
	label = keymux_key_dup_label(key);
	check(g_str_equal(label, "lib key"), "label %s", label);
	keys = keymux_device_get_keys(device);
	check(g_list_length(keys) == 1, "the device's Keys followed: %u", g_list_length(keys));

	/* ---- sign: sync and async; the shell checks them with openssl ---- */
	sig = keymux_key_sign_sync(key, "ed25519", msg, KEYMUX_CALL_FLAGS_NONE, NULL, &error);
	check_ok(sig != NULL, error);
	write_file(outdir, "sync.sig", sig);
	write_file(outdir, "msg", msg);
	write_file_take(outdir, "ed.pub", keymux_key_dup_public_key(key));
	g_clear_pointer(&sig, g_bytes_unref);
	keymux_key_sign(key, "ed25519", msg, KEYMUX_CALL_FLAGS_NONE, NULL, done_cb, NULL);
	sig = keymux_key_sign_finish(key, wait_for("Sign"), &error);
	check_ok(sig != NULL, error);
	write_file(outdir, "async.sig", sig);

	/* ---- decrypt through the library, an RSA key ---- */
	rsa = keymux_device_generate_key_sync(device,
					      "rsa2048",
					      "lib rsa",
					      KEYMUX_CALL_FLAGS_NONE,
					      NULL,
					      &error);
	check_ok(rsa != NULL, error);
	write_file_take(outdir, "rsa.pub", keymux_key_dup_public_key(rsa));

	/* ---- find, list ---- */
	found = keymux_client_find_key_sync(client, keymux_key_get_id(key), NULL, &error);
	check_ok(found != NULL, error);
	check(g_list_length(found) == 1, "FindKey");
	g_list_free_full(g_steal_pointer(&found), g_object_unref);
	keymux_client_find_key(client, keymux_key_get_id(rsa), NULL, done_cb, NULL);
	found = keymux_client_find_key_finish(client, wait_for("FindKey"), &error);
	check_ok(found != NULL, error);
	g_list_free_full(g_steal_pointer(&found), g_object_unref);
	keymux_client_list_keys(client, NULL, done_cb, NULL);
	found = keymux_client_list_keys_finish(client, wait_for("ListKeys"), &error);
	check(g_list_length(found) == 2, "ListKeys: %u", g_list_length(found));
	g_list_free_full(g_steal_pointer(&found), g_object_unref);

	/* ---- errors, mapped into KEYMUX_ERROR ---- */
	g_clear_pointer(&sig, g_bytes_unref);
	sig = keymux_key_sign_sync(key, "ed448", msg, KEYMUX_CALL_FLAGS_NONE, NULL, &error);
	check(sig == NULL, "ed448");
	check_error(error, KEYMUX_ERROR_INVALID_ARGUMENT);
	check(strstr(error->message, "org.keymux") == NULL,
	      "a stripped message: %s",
	      error->message);
	g_clear_error(&error);
	keymux_key_decrypt(key, "rsa-pkcs1", msg, KEYMUX_CALL_FLAGS_NONE, NULL, done_cb, NULL);
	sig = keymux_key_decrypt_finish(key, wait_for("Decrypt"), &error);
	check_error(error, KEYMUX_ERROR_NOT_SUPPORTED);
	g_clear_error(&error);
	found = keymux_client_find_key_sync(client, "abc", NULL, &error);
	check_error(error, KEYMUX_ERROR_INVALID_ARGUMENT);
	g_clear_error(&error);
	found = keymux_client_find_key_sync(client, "0123456789abcdef", NULL, &error);
	check_error(error, KEYMUX_ERROR_NOT_FOUND);
	g_clear_error(&error);
	{
		g_autoptr(GBytes) junk = g_bytes_new_static("not a key", 9);
		G_GNUC_UNUSED g_autoptr(GList)
		    none = keymux_device_import_key_sync(device, junk, NULL, NULL, NULL, &error);
		check_error(error, KEYMUX_ERROR_INVALID_ARGUMENT);
		g_clear_error(&error);
	}

	/* ---- objects follow changes made by another client, no polling ---- */
	other = keymux_client_new_sync(NULL, &error);
	check_ok(other != NULL, error);
	g_signal_connect(key, "notify::label", G_CALLBACK(label_notify_cb), NULL);
	{
		g_autoptr(KeymuxKey) theirs =
		    keymux_client_lookup_key(other,
					     g_dbus_proxy_get_object_path(G_DBUS_PROXY(key)));
		check(theirs != NULL, "the other client does not see the key");
		check_ok(keymux_key_set_label_sync(theirs, "renamed elsewhere", NULL, &error),
			 error);
	}
	while (notified == 0)
		wait_for("notify::label");
	g_free(label);
	label = keymux_key_dup_label(key);
	check(g_str_equal(label, "renamed elsewhere"), "label after the signal: %s", label);

	/* a key deleted by the other client: key-removed */
	g_signal_connect_swapped(client, "key-removed", G_CALLBACK(quit_cb), NULL);
	{
		g_autoptr(KeymuxKey) theirs =
		    keymux_client_lookup_key(other,
					     g_dbus_proxy_get_object_path(G_DBUS_PROXY(rsa)));
		check_ok(keymux_key_delete_sync(theirs, NULL, &error), error);
	}
	wait_for("key-removed");
	g_list_free_full(keys, g_object_unref);
	keys = keymux_client_get_keys(client);
	check(g_list_length(keys) == 1, "after the delete: %u keys", g_list_length(keys));

	/* ---- secrets: change, lock, unlock wrong and right, lock all ---- */
	check_ok(keymux_device_change_secret_sync(device, "", "lib secret", NULL, &error), error);
	check_ok(keymux_device_lock_sync(device, NULL, &error), error);
	/* Locked comes with PropertiesChanged */
	while (!keymux_device_get_locked(device))
		g_main_context_iteration(NULL, TRUE);
	check(!keymux_device_unlock_sync(device, "wrong", KEYMUX_CALL_FLAGS_NONE, NULL, &error),
	      "a wrong secret");
	check_error(error, KEYMUX_ERROR_BAD_SECRET);
	g_clear_error(&error);
	sig = keymux_key_sign_sync(key,
				   "ed25519",
				   msg,
				   KEYMUX_CALL_FLAGS_NO_INTERACTION,
				   NULL,
				   &error);
	check_error(error, KEYMUX_ERROR_LOCKED);
	g_clear_error(&error);
	keymux_device_unlock(device, "lib secret", KEYMUX_CALL_FLAGS_NONE, NULL, done_cb, NULL);
	check_ok(keymux_device_unlock_finish(device, wait_for("Unlock"), &error), error);
	keymux_client_lock_all(client, NULL, done_cb, NULL);
	check_ok(keymux_client_lock_all_finish(client, wait_for("LockAll"), &error), error);
	check_ok(
	    keymux_device_unlock_sync(device, "lib secret", KEYMUX_CALL_FLAGS_NONE, NULL, &error),
	    error);

	/* ---- a question withdrawn: the device is unlocked by another client
	 * while the prompter's dialog is open; ::cancelled tells it, its late
	 * answer is harmless ---- */
	{
		g_autoptr(KeymuxPrompter) prompter = keymux_prompter_new(client);
		g_autoptr(KeymuxDevice)
		    theirs = keymux_client_lookup_device(other, "softkey:login");
		const char *device_path = g_dbus_proxy_get_object_path(G_DBUS_PROXY(device));

		g_signal_connect(prompter, "ask-secret", G_CALLBACK(keep_ask_cb), NULL);
		g_signal_connect(prompter, "cancelled", G_CALLBACK(withdrawn_cb), NULL);
		check_ok(keymux_prompter_register_sync(prompter, NULL, &error), error);
		check_ok(keymux_device_lock_sync(device, NULL, &error), error);
		while (!keymux_device_get_locked(device))
			g_main_context_iteration(NULL, TRUE);
		keymux_key_sign(key, "ed25519", msg, KEYMUX_CALL_FLAGS_NONE, NULL, done_cb, NULL);
		while (asked == NULL)
			wait_for("AskSecret");
		check(g_str_equal(keymux_prompt_request_get_device_path(asked), device_path),
		      "asked for %s",
		      keymux_prompt_request_get_device_path(asked));
		check(withdrawn_count == 0, "withdrawn before anything happened");
		check(theirs != NULL, "the other client has no softkey:login");
		check_ok(keymux_device_unlock_sync(theirs,
						   "lib secret",
						   KEYMUX_CALL_FLAGS_NONE,
						   NULL,
						   &error),
			 error);
		/* the signature goes on without the prompter's answer */
		while (withdrawn_count == 0 || last_result == NULL) {
			guint id =
			    g_timeout_add_seconds(60, too_long_cb, (gpointer) "cancelled and Sign");

			g_main_loop_run(loop);
			g_source_remove(id);
		}
		check(withdrawn_count == 1, "cancelled %u times", withdrawn_count);
		check(g_str_equal(withdrawn_path, device_path), "cancelled for %s", withdrawn_path);
		g_clear_pointer(&withdrawn_path, g_free);
		g_clear_pointer(&sig, g_bytes_unref);
		sig = keymux_key_sign_finish(key, last_result, &error);
		check_ok(sig != NULL, error);
		/* the answer after the withdrawal, and a decline: ignored */
		keymux_prompt_request_reply(asked, "lib secret");
		keymux_prompt_request_cancel(asked);
		g_clear_object(&asked);
		check_ok(keymux_prompter_unregister_sync(prompter, NULL, &error), error);
	}
	check_ok(keymux_device_change_secret_sync(device, "lib secret", "", NULL, &error), error);

	/* ---- a cancelled call ---- */
	{
		g_autoptr(GCancellable) cancellable = g_cancellable_new();
		g_cancellable_cancel(cancellable);
		sig = keymux_key_sign_sync(key,
					   "ed25519",
					   msg,
					   KEYMUX_CALL_FLAGS_NONE,
					   cancellable,
					   &error);
		check(g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED), "cancelled");
		g_clear_error(&error);
	}
	printf("ok %s\n", want_p2p ? "p2p" : "bus");
	g_clear_object(&last_result);
	g_main_loop_unref(loop);
	return 0;
}
